"""Manifests of image sets (hash, size, mode, skipped files) and atomic JSON writing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ckpt_eval.jsonio as jsonio_mod
from ckpt_eval.errors import CkptEvalError
from ckpt_eval.inputs.manifest import build_manifest, in_order, read_manifest
from ckpt_eval.jsonio import read_json, write_json


def write_png(path: Path, size: tuple[int, int], mode: str = "RGB", seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    shape = (size[1], size[0], channels) if channels > 1 else (size[1], size[0])
    data = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    Image.fromarray(data, mode=mode).save(path)
    return path


@pytest.fixture
def samples(tmp_path: Path) -> tuple[Path, list[Path]]:
    root = tmp_path / "samples"
    paths = [
        write_png(root / "step-100" / "b.png", (20, 16), "RGB", 1),
        write_png(root / "step-100" / "a.png", (16, 24), "RGBA", 2),
        write_png(root / "step-100" / "sub" / "c.png", (17, 17), "L", 3),
    ]
    return root, paths


def test_manifest_records_every_image(samples: tuple[Path, list[Path]]) -> None:
    root, paths = samples
    manifest = build_manifest("step-100", paths, root)
    assert manifest["name"] == "step-100"
    assert manifest["root"] == str(root)
    assert manifest["skipped"] == []
    by_file = {entry["file"]: entry for entry in manifest["images"]}
    assert set(by_file) == {"step-100/a.png", "step-100/b.png", "step-100/sub/c.png"}
    expected = {
        "step-100/b.png": (20, 16, "RGB"),
        "step-100/a.png": (16, 24, "RGBA"),
        "step-100/sub/c.png": (17, 17, "L"),
    }
    for file, (width, height, mode) in expected.items():
        entry = by_file[file]
        path = root / file
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert (entry["width"], entry["height"], entry["mode"]) == (width, height, mode)
        assert Path(entry["path"]) == path
    assert by_file["step-100/b.png"]["note"] is None
    assert "alpha" in by_file["step-100/a.png"]["note"]


def test_manifest_order_is_independent_of_input_order(samples: tuple[Path, list[Path]]) -> None:
    root, paths = samples
    one = build_manifest("step-100", paths, root)
    two = build_manifest("step-100", list(reversed(paths)), root)
    assert one == two
    assert [e["file"] for e in one["images"]] == sorted(e["file"] for e in one["images"])


def test_file_is_relative_posix_even_with_relative_inputs(
    samples: tuple[Path, list[Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, paths = samples
    monkeypatch.chdir(root.parent)
    rel_paths = [str(p.relative_to(root.parent)) for p in paths]
    manifest = build_manifest("step-100", rel_paths, "samples")
    files = [e["file"] for e in manifest["images"]]
    assert files == ["step-100/a.png", "step-100/b.png", "step-100/sub/c.png"]
    assert all("\\" not in f and not f.startswith("/") for f in files)


def add_bad(root: Path) -> Path:
    bad = root / "step-100" / "broken.png"
    bad.write_bytes(b"not a png at all")
    return bad


def test_bad_image_with_error_policy_raises_naming_it(samples: tuple[Path, list[Path]]) -> None:
    root, paths = samples
    bad = add_bad(root)
    with pytest.raises(CkptEvalError) as info:
        build_manifest("step-100", [*paths, bad], root, on_bad_image="error")
    assert str(bad) in str(info.value)


def test_bad_image_error_is_the_default(samples: tuple[Path, list[Path]]) -> None:
    root, paths = samples
    bad = add_bad(root)
    with pytest.raises(CkptEvalError, match="broken.png"):
        build_manifest("step-100", [*paths, bad], root)


def test_bad_image_with_skip_policy_is_listed_and_rest_kept(
    samples: tuple[Path, list[Path]],
) -> None:
    root, paths = samples
    bad = add_bad(root)
    empty = root / "step-100" / "empty.png"
    empty.write_bytes(b"")
    manifest = build_manifest("step-100", [*paths, bad, empty], root, on_bad_image="skip")
    assert [e["file"] for e in manifest["images"]] == [
        "step-100/a.png",
        "step-100/b.png",
        "step-100/sub/c.png",
    ]
    skipped = {Path(s["path"]): s["reason"] for s in manifest["skipped"]}
    assert set(skipped) == {bad, empty}
    assert all(isinstance(reason, str) and reason for reason in skipped.values())
    assert "0 bytes" in skipped[empty]


def test_on_threads_the_manifest_and_the_first_bad_image_are_the_same(
    samples: tuple[Path, list[Path]],
) -> None:
    root, paths = samples
    more = [
        write_png(root / "step-100" / f"m{i:02d}.png", (30, 20), "RGB", 10 + i) for i in range(20)
    ]
    bad = add_bad(root)
    empty = root / "step-100" / "0-empty.png"  # sorted first: the error names it
    empty.write_bytes(b"")
    every = [*paths, *more, bad, empty]
    one = build_manifest("step-100", every, root, on_bad_image="skip")
    assert build_manifest("step-100", every, root, on_bad_image="skip", threads=3) == one
    for threads in (1, 3):
        with pytest.raises(CkptEvalError, match="0-empty.png"):
            build_manifest("step-100", every, root, threads=threads)


def test_in_order_keeps_the_order_with_a_bounded_number_in_flight() -> None:
    """The manifest of 50,000 images must not hold 50,000 pending futures (`pool.map` submits
    them all at once): when the k-th result is taken, at most k + ahead images were looked at,
    however far the threads could race ahead of a slow reader."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    started: list[int] = []
    lock = threading.Lock()

    def look(item: Path) -> int:
        with lock:
            started.append(int(item.name))
        return int(item.name) * 2

    items = [Path(str(k)) for k in range(200)]
    ahead = 5
    with ThreadPoolExecutor(max_workers=3) as pool:
        seen = []
        for k, value in enumerate(in_order(pool, look, items, ahead)):
            time.sleep(0.001)  # let the threads run ahead if they are allowed to
            with lock:
                assert len(started) <= k + 1 + ahead
            seen.append(value)
    assert seen == [2 * k for k in range(200)]
    assert sorted(started) == list(range(200))


def test_all_bad_raises_even_when_skipping(tmp_path: Path) -> None:
    root = tmp_path / "samples"
    (root / "step-1").mkdir(parents=True)
    bad = [root / "step-1" / "x.png", root / "step-1" / "y.png"]
    bad[0].write_bytes(b"")
    bad[1].write_text("text")
    with pytest.raises(CkptEvalError) as info:
        build_manifest("step-1", bad, root, on_bad_image="skip")
    assert "step-1" in str(info.value)
    assert "2 skipped" in str(info.value)


def test_no_images_raises(tmp_path: Path) -> None:
    with pytest.raises(CkptEvalError):
        build_manifest("step-1", [], tmp_path)


def test_write_json_round_trips_and_leaves_no_temp(tmp_path: Path) -> None:
    data = {
        "name": "step-100",
        "images": [{"file": "a.png", "w": 3}],
        "note": "ünïcode ✓",
        "x": None,
    }
    target = tmp_path / "out" / "deeper" / "manifest.json"
    write_json(data, target)
    assert read_json(target) == data
    assert sorted(p.name for p in target.parent.iterdir()) == ["manifest.json"]
    assert "ünïcode ✓" in target.read_text(encoding="utf-8")
    # Overwrite with new content.
    write_json({"v": 2}, target)
    assert read_json(target) == {"v": 2}
    assert sorted(p.name for p in target.parent.iterdir()) == ["manifest.json"]


def test_write_json_failure_keeps_the_old_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "manifest.json"
    write_json({"old": True}, target)
    before = target.read_bytes()

    def half_then_die(data, handle, **kwargs):
        handle.write('{"new": ')
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(jsonio_mod.json, "dump", half_then_die)
    with pytest.raises(RuntimeError):
        write_json({"new": True}, target)
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert json.loads(before) == {"old": True}


def test_manifest_survives_json_round_trip(
    samples: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    root, paths = samples
    manifest = build_manifest("step-100", paths, root)
    write_json(manifest, tmp_path / "m.json")
    assert read_json(tmp_path / "m.json") == manifest


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m["images"].pop(0),  # an image left out by hand
        lambda m: m["images"][0].update(sha256="0" * 64),  # a hash changed
        lambda m: m.update(name="step-2"),  # another checkpoint's name
        lambda m: m.pop("seal"),  # no seal at all
    ],
    ids=["image-removed", "hash-changed", "renamed", "seal-removed"],
)
def test_a_manifest_edited_by_hand_is_removed_never_used(samples, tmp_path: Path, edit) -> None:
    root, paths = samples
    path = tmp_path / "manifests" / "checkpoint_step-1.json"
    manifest = build_manifest("step-1", paths, root)
    write_json(manifest, path)
    assert read_manifest(path) == manifest
    edited = read_json(path)
    edit(edited)
    path.write_text(json.dumps(edited, indent=2) + "\n", encoding="utf-8")
    with pytest.raises(CkptEvalError) as info:
        read_manifest(path)
    assert info.value.path == str(path) and "changed after organize wrote it" in info.value.what
    assert info.value.fix.startswith("run the same command again") and not path.exists()
