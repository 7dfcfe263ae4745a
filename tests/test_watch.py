"""`python -m ckpt_eval watch`: complete checkpoints only, incremental runs, one line per evaluated
checkpoint, and a clean stop on Ctrl-C; the whole loop against a fake trainer that saves five
checkpoints over about a minute, watched to a finished report with TensorBoard scalars."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, make_project, snakemake
from fake_trainer import FakeTrainer, image_names
from trainer_outputs import lora_file as dummy_lora

from ckpt_eval.__main__ import main
from ckpt_eval.config import validate_config
from ckpt_eval.report.prose import recommendation_summary, watch_line
from ckpt_eval.watch import Settling, checkpoint_files, to_evaluate

CHECKPOINTS = [f"step-{k}00" for k in range(1, 6)]
IMAGES = 5


def test_a_checkpoint_is_complete_once_unchanged_and_settled(tmp_path: Path) -> None:
    folder = tmp_path / "step-100"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"12")
    files = {"step-100": [folder / "a.png"]}
    mtime = (folder / "a.png").stat().st_mtime
    settling = Settling(settle=5)
    assert settling.look(files, mtime + 60) == {}  # first look: nothing to compare with
    assert settling.look(files, mtime + 1) == {}  # unchanged, but written a second ago
    assert list(settling.look(files, mtime + 6)) == ["step-100"]
    (folder / "a.png").write_bytes(b"1234")  # the trainer rewrites it
    os.utime(folder / "a.png", (mtime, mtime))  # even with an old mtime (cp -p, rsync)
    assert settling.look(files, mtime + 60) == {}  # the size changed since the last look
    assert list(settling.look(files, mtime + 60)) == ["step-100"]
    (folder / "a.png").unlink()
    assert settling.look(files, mtime + 60) == {}  # listed, then gone


def test_new_and_changed_checkpoints_are_evaluated() -> None:
    a, b = frozenset({("a", 1, 1)}), frozenset({("a", 2, 2)})
    assert to_evaluate({"s1": a, "s2": a}, {"s1": a}) == ["s2"]
    assert to_evaluate({"s1": b, "s2": a}, {"s1": a, "s2": a}) == ["s1"]
    assert to_evaluate({"s1": a}, {"s1": a}) == []


def test_what_is_watched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sample images as the layout reads them; with generate: the LoRA files; nothing yet is
    nothing, not an error."""
    make_project(tmp_path, {"step-100": 2, "step-200": 1})
    monkeypatch.chdir(tmp_path)
    config = validate_config(yaml.safe_load((tmp_path / "config.yaml").read_text()))
    files = checkpoint_files(config)
    assert {n: [p.name for p in v] for n, v in files.items()} == {
        "step-100": ["img_000.png", "img_001.png"],
        "step-200": ["img_000.png"],
    }
    assert checkpoint_files({**config, "samples": {**config["samples"], "root": "none"}}) == {}
    loras = tmp_path / "loras"
    dummy_lora(loras / "step-300.safetensors")
    dummy_lora(loras / "step-400" / "pytorch_lora_weights.safetensors")
    generating = validate_config(
        {
            "run": "g",
            "real_images": "real",
            "samples": {"root": str(loras)},
            "generate": {"base_model": "base", "prompts": ["x"]},
        }
    )
    assert checkpoint_files(generating) == {
        "step-300": [loras / "step-300.safetensors"],
        "step-400": [loras / "step-400" / "pytorch_lora_weights.safetensors"],
    }


def test_the_line_of_a_checkpoint() -> None:
    row = {
        "name": "step-300",
        "step": 300,
        "epoch": None,
        "n_images": 5,
        "rank": 2,
        "score": 0.4,
        "fid": 77.2899,
        "fid_ci": {"low": 70.0, "high": 90.25, "level": 0.95},
        "kid_mean": 0.0123,
        "kid_std": 0.0041,
    }
    best = {**row, "name": "step-100", "step": 100, "rank": 1, "score": 1.0}
    result = {"checkpoints": [best, row], "recommendation": {"checkpoint": "step-100"}}
    line = watch_line(row, result)
    assert line.startswith("step-300 (step 300, 5 images): FID 77.29 [70.00, 90.25], KID ")
    assert line.endswith("Recommended: step-100 (rank 1 of 2, score 1.000).")
    assert recommendation_summary({**result, "recommendation": {"checkpoint": None}}) == (
        "No checkpoint could be ranked."
    )


def test_cli_errors_name_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: t\nnot_a_key: 1\n")
    assert main(["watch", "--configfile", str(bad)]) == 1
    assert "not_a_key" in capsys.readouterr().err
    config = make_project(tmp_path, {"step-100": 1})
    assert main(["watch", "--configfile", str(config), "--snakefile", "nope/Snakefile"]) == 1
    assert "--snakefile" in capsys.readouterr().err


# --- the whole loop ------------------------------------------------------------------------------


class Watch:
    """`python -m ckpt_eval watch` in `root`, its output lines collected by a thread."""

    def __init__(self, root: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ckpt_eval", "watch", "--configfile", "config.yaml", *args],
            cwd=root,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, done, timeout: float) -> None:
        end = time.monotonic() + timeout
        while not done() and time.monotonic() < end:
            assert self.process.poll() is None, "\n".join(self.lines)
            time.sleep(0.5)
        assert done(), "\n".join(self.lines)

    def interrupt(self, timeout: float = 180) -> int:
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def checkpoint_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if re.match(r"^step-\d+ \(", line)]


def rule_wildcards(log: Path) -> list[tuple[str, str | None]]:
    """(rule, ckpt wildcard or None) of every job a Snakemake run log shows."""
    jobs: list[tuple[str, str | None]] = []
    for line in log.read_text().splitlines():
        if match := re.match(r"^(?:local)?rule (\w+):", line.strip()):
            jobs.append((match.group(1), None))
        elif jobs and (match := re.match(r"wildcards: ckpt=(\S+)", line.strip())):
            jobs[-1] = (jobs[-1][0], match.group(1))
    return jobs


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def all_results_read(out: Path) -> None:
    """Every JSON and NPZ result file under `out` is whole."""
    for path in out.rglob("*.json"):
        json.loads(path.read_text())
    for path in out.rglob("*.npz"):
        with np.load(path, allow_pickle=False) as data:
            [data[k] for k in data.files]


@pytest.mark.workflow
def test_a_training_run_is_watched_to_a_finished_report(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    make_project(tmp_path, {}, export={"tensorboard": True})
    with open(tmp_path / "prompts.csv", "a", encoding="utf-8") as handle:  # the trainer's list
        for name in CHECKPOINTS:
            handle.writelines(
                f"{name}/{f},a picture number {f[:-4]}\n" for f in image_names(IMAGES)
            )
    trainer = FakeTrainer(tmp_path / "samples", CHECKPOINTS, IMAGES, every=12.0)
    watch = Watch(tmp_path, "--interval", "1", "--settle", "4", "--cores", "2")
    try:
        trainer.start()
        watch.wait_for(lambda: len(checkpoint_lines(watch.lines)) >= len(CHECKPOINTS), 900)
        trainer.join(timeout=60)
        assert watch.interrupt() == 0
    finally:
        trainer.stop.set()
        watch.kill()
    lines = watch.lines
    assert "stopped; 5 checkpoint(s) evaluated" in lines[-1], lines
    out = tmp_path / "results" / "t"
    result = json.loads((out / "consolidated_results.json").read_text())
    assert [r["name"] for r in result["checkpoints"]] == CHECKPOINTS
    # one line per checkpoint, in training order, each ending with the recommendation then
    printed = checkpoint_lines(lines)
    assert [line.split()[0] for line in printed] == CHECKPOINTS
    rows = {r["name"]: r for r in result["checkpoints"]}
    assert all(f"FID {rows[line.split()[0]]['fid']:.2f}" in line for line in printed)
    assert all("Recommended: step-" in line for line in printed)
    assert printed[-1].endswith(recommendation_summary(result))

    # nothing was read half-way: every image the manifests hold is the trainer's whole file
    for name in CHECKPOINTS:
        manifest = json.loads((out / "manifests" / f"checkpoint_{name}.json").read_text())
        assert len(manifest["images"]) == IMAGES == rows[name]["n_images"]
        for image in manifest["images"]:
            assert image["sha256"] == sha256(tmp_path / image["path"])

    # incremental: each run made the jobs of the checkpoints it named, and no other's
    runs = [line for line in lines if "evaluating" in line]
    logs = sorted((out / "watch").glob("run-*.log"))
    assert len(runs) == len(logs) >= 2
    for said, log in zip(runs, logs, strict=True):
        named = set(said.split("evaluating ", 1)[1].split(" (log:")[0].split(", "))
        jobs = rule_wildcards(log)
        assert {c for _, c in jobs if c} == named, (said, jobs)
        assert ("report", None) in jobs and ("export", None) in jobs
    assert ("inception_real", None) in rule_wildcards(logs[0])
    assert all(("inception_real", None) not in rule_wildcards(log) for log in logs[1:])

    # TensorBoard: the scalars at the five steps, as the results have them
    events = EventAccumulator(str(out / "export" / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    fid = events.Scalars("ckpt-eval/fid")
    assert [s.step for s in fid] == [100, 200, 300, 400, 500]
    assert [s.value for s in fid] == pytest.approx([rows[n]["fid"] for n in CHECKPOINTS], rel=1e-6)
    assert (out / "report.html").is_file()
    assert not list((tmp_path / ".snakemake" / "locks").glob("*"))


@pytest.mark.workflow
def test_ctrl_c_during_a_run_leaves_no_lock_and_no_half_result(tmp_path: Path) -> None:
    config = make_project(tmp_path, {"step-100": 5, "step-200": 5})
    watch = Watch(tmp_path, "--interval", "0.5", "--settle", "0", "--cores", "2")
    log = tmp_path / "results" / "t" / "watch" / "run-001.log"
    try:
        # interrupted once Snakemake is running jobs
        watch.wait_for(lambda: log.is_file() and "Execute " in log.read_text(), 300)
        assert watch.interrupt() == 130
    finally:
        watch.kill()
    assert "stopped during a run" in "\n".join(watch.lines)
    assert "Terminating processes on user request" in log.read_text()
    assert not list((tmp_path / ".snakemake" / "locks").glob("*"))
    all_results_read(tmp_path / "results")
    # the same run again finishes it: no lock to remove, the interrupted jobs are redone
    selection = tmp_path / "results" / "t" / "watch" / "checkpoints.yaml"
    snakemake(tmp_path, config, "--configfile", str(config), str(selection))
    result = json.loads((tmp_path / "results" / "t" / "consolidated_results.json").read_text())
    assert [r["name"] for r in result["checkpoints"]] == ["step-100", "step-200"]
