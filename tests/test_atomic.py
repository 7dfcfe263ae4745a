"""Every writer of results is atomic (ckpt_eval.atomic): a disk that fills up half-way through a
file, or a folder that cannot be written, leaves nothing half-written under the real name nor a
temporary file, says so and what to do; after the fix the same write completes."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import numpy as np
import pytest

from ckpt_eval import atomic
from ckpt_eval.analysis.consolidate import write_csv
from ckpt_eval.atomic import atomic_write, write_bytes, write_text
from ckpt_eval.caches import damage
from ckpt_eval.errors import CkptEvalError
from ckpt_eval.features.cache import load_features, save_features
from ckpt_eval.jsonio import read_json, write_json


class _FullDisk(io.RawIOBase):
    """A file that takes `room` bytes, then fails as a full disk does (ENOSPC) mid-write."""

    def __init__(self, raw, room: int) -> None:
        self.raw, self.room = raw, room

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        data = bytes(data)
        if len(data) > self.room:
            self.raw.write(data[: self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.raw.write(data)

    def fileno(self) -> int:
        return self.raw.fileno()

    def close(self) -> None:
        self.raw.close()
        super().close()


def _full_disk(monkeypatch: pytest.MonkeyPatch, room: int) -> None:
    real = os.fdopen

    def fdopen(fd, mode="r", **kwargs):
        raw = real(fd, "wb", buffering=0)
        stream = io.BufferedWriter(_FullDisk(raw, room), buffer_size=64)
        if "b" in mode:
            return stream
        return io.TextIOWrapper(
            stream, encoding=kwargs.get("encoding"), newline=kwargs.get("newline")
        )

    monkeypatch.setattr(atomic.os, "fdopen", fdopen)


WRITERS = {
    "json": (lambda p: write_json({"rows": list(range(500))}, p), read_json),
    "npz": (
        lambda p: save_features(p, {"inception": np.ones((40, 64), np.float32)}, {"set": "s"}),
        load_features,
    ),
    "csv": (lambda p: write_csv({"checkpoints": []}, p), lambda p: p.read_text()),
    "html": (lambda p: write_text(p, "<html>" + "x" * 5000 + "</html>"), lambda p: p.read_text()),
    "png": (lambda p: write_bytes(p, b"\x89PNG" + b"0" * 5000), lambda p: p.read_bytes()),
}


@pytest.mark.parametrize("kind", list(WRITERS))
def test_a_full_disk_mid_file_leaves_nothing_half_written_and_a_rerun_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    write, read = WRITERS[kind]
    path = tmp_path / "results" / f"out.{kind}"
    room = 200 if kind == "csv" else 1000  # the CSV's header alone is a few hundred bytes
    with monkeypatch.context() as patch:
        _full_disk(patch, room)
        with pytest.raises(CkptEvalError) as info:
            write(path)
    assert info.value.path == str(path)
    assert "the disk is full" in info.value.what
    assert "Nothing half-written was left" in info.value.what
    assert "free space" in info.value.fix and "run the same command again" in info.value.fix
    assert list(path.parent.iterdir()) == []  # neither the file nor a temporary one
    # the fix, followed: space freed, the same write again
    write(path)
    read(path)
    assert damage(path) is None
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_a_full_disk_keeps_the_previous_complete_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "metrics.json"
    write_json({"fid": 1.0}, path)
    with monkeypatch.context() as patch:
        _full_disk(patch, 10)
        with pytest.raises(CkptEvalError):
            write_json({"fid": 2.0, "pad": "x" * 100}, path)
    assert read_json(path) == {"fid": 1.0}


@pytest.mark.parametrize(
    ("code", "what"),
    [(errno.EACCES, "not writable"), (errno.EROFS, "read-only"), (errno.EDQUOT, "quota")],
)
def test_a_folder_that_cannot_be_written_is_named_with_its_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, what: str
) -> None:
    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    with pytest.raises(CkptEvalError) as info:
        write_json({}, tmp_path / "x.json")
    assert what in info.value.what and info.value.path == str(tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_for_real(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(CkptEvalError) as info:
            write_json({}, tmp_path / "x.json")
    finally:
        tmp_path.chmod(0o700)
    assert "not writable" in info.value.what and "chmod" in info.value.fix


def test_other_errors_propagate_and_leave_no_temp_file(tmp_path: Path) -> None:
    with pytest.raises(ZeroDivisionError), atomic_write(tmp_path / "x.txt") as handle:
        handle.write("half")
        1 / 0  # noqa: B018
    assert list(tmp_path.iterdir()) == []


def test_written_files_get_the_usual_permissions(tmp_path: Path) -> None:
    write_json({}, tmp_path / "x.json")
    mode = (tmp_path / "x.json").stat().st_mode & 0o777
    assert mode == 0o666 & ~atomic._UMASK


def test_a_job_on_a_full_disk_stops_with_one_message_and_its_rerun_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through run_job, as a metrics job writes its two outputs: one readable message on the
    terminal (no traceback), no output left; the same job again (space freed) writes both."""
    import logging
    from types import SimpleNamespace

    from ckpt_eval.jobs import run_job

    out = tmp_path / "results"
    smk = SimpleNamespace(log=[str(tmp_path / "job.log")], rule="metrics_checkpoint")

    def body(smk) -> None:
        save_features(out / "replicates.npz", {"fid": np.ones((200, 4))}, {"set": "step-1"})
        write_json({"name": "step-1", "fid": 1.5}, out / "metrics.json")

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with monkeypatch.context() as patch:
            _full_disk(patch, 3000)
            with pytest.raises(SystemExit) as info:
                run_job(smk, body)
        err = capsys.readouterr().err
        assert info.value.code == 1 and "Traceback" not in err
        assert err.count("ckpt-eval error in rule metrics_checkpoint") == 1
        assert "the disk is full" in err and "Nothing half-written was left" in err
        assert f"file: {out / 'replicates.npz'}" in err
        assert list(out.iterdir()) == []
        run_job(smk, body)  # the fix followed: the same job again
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert load_features(out / "replicates.npz")[1] == {"set": "step-1"}
    assert read_json(out / "metrics.json")["fid"] == 1.5


def test_only_a_durable_write_is_synced(tmp_path: Path, monkeypatch) -> None:
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    with atomic_write(tmp_path / "kept.bin", "wb") as handle:
        handle.write(b"kept")
    with atomic_write(tmp_path / "preview.bin", "wb", durable=False) as handle:
        handle.write(b"preview")
    assert len(synced) == 1
    assert (tmp_path / "preview.bin").read_bytes() == b"preview"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.bin", "preview.bin"]
