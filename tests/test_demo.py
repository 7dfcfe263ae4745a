"""Tests for the demo data set builder and for the committed ``demo/`` folder.

The demo is what the workflow's own tests and the README walk-through run on, so a
silently changed layout or a missing prompt would surface far away from its cause.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ckpt_eval.demo import BEST_CHECKPOINT, CHECKPOINTS, build_demo, main

REPO_ROOT = Path(__file__).resolve().parents[1]
COMMITTED_DEMO = REPO_ROOT / "demo"

TINY = {"n_real": 4, "n_per_checkpoint": 3, "size": 32}


def _read_prompts(root: Path) -> list[dict[str, str]]:
    with open(root / "prompts.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["file", "prompt"]
        return list(reader)


def _sample_files(root: Path) -> set[str]:
    return {p.relative_to(root / "samples").as_posix() for p in (root / "samples").rglob("*.png")}


def _all_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _check_layout(root: Path, n_real: int, n_per_checkpoint: int, size: int) -> None:
    """Shared structural assertions for a built demo folder."""
    real = sorted((root / "real").glob("*.png"))
    assert [p.name for p in real] == [f"real_{i:04d}.png" for i in range(n_real)]

    ckpt_dirs = sorted(p.name for p in (root / "samples").iterdir() if p.is_dir())
    assert ckpt_dirs == sorted(CHECKPOINTS)
    for ckpt in CHECKPOINTS:
        assert len(list((root / "samples" / ckpt).glob("img_*.png"))) == n_per_checkpoint

    for path in [real[0], root / "samples" / BEST_CHECKPOINT / "img_000.png"]:
        with Image.open(path) as img:
            assert img.mode == "RGB"
            assert img.size == (size, size)

    rows = _read_prompts(root)
    files = [row["file"] for row in rows]
    assert len(files) == len(set(files)), "duplicate rows in prompts.csv"
    assert set(files) == _sample_files(root), "prompts.csv must cover exactly the samples"
    assert all("\\" not in f for f in files)
    assert all(row["prompt"].strip() for row in rows)

    # Every checkpoint renders the same prompt list, as a real evaluation would.
    by_index: dict[str, set[str]] = {}
    for row in rows:
        by_index.setdefault(row["file"].split("/", 1)[1], set()).add(row["prompt"])
    assert all(len(prompts) == 1 for prompts in by_index.values())


def test_build_demo_layout(tmp_path: Path) -> None:
    build_demo(tmp_path / "demo", **TINY)
    _check_layout(tmp_path / "demo", **TINY)


def test_build_demo_is_byte_identical_for_same_seed(tmp_path: Path) -> None:
    build_demo(tmp_path / "a", **TINY)
    build_demo(tmp_path / "b", **TINY)
    a, b = _all_files(tmp_path / "a"), _all_files(tmp_path / "b")
    assert a.keys() == b.keys()
    assert [name for name in a if a[name] != b[name]] == []


def test_build_demo_seed_changes_images(tmp_path: Path) -> None:
    build_demo(tmp_path / "a", **TINY, seed=0)
    build_demo(tmp_path / "b", **TINY, seed=1)
    name = "real/real_0000.png"
    assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "b" / name).read_bytes()


def test_best_checkpoint_is_clean_and_others_differ(tmp_path: Path) -> None:
    """The other checkpoints are degraded copies of the best one's crops, never equal."""
    build_demo(tmp_path, **TINY)
    best = np.asarray(Image.open(tmp_path / "samples" / BEST_CHECKPOINT / "img_000.png"))
    for ckpt in CHECKPOINTS:
        if ckpt == BEST_CHECKPOINT:
            continue
        other = np.asarray(Image.open(tmp_path / "samples" / ckpt / "img_000.png"))
        assert not np.array_equal(best, other), ckpt


def test_rebuild_smaller_removes_stale_images(tmp_path: Path) -> None:
    build_demo(tmp_path, n_real=6, n_per_checkpoint=5, size=32)
    keep = tmp_path / "notes.txt"
    keep.write_text("not ours")
    build_demo(tmp_path, **TINY)
    _check_layout(tmp_path, **TINY)
    assert keep.read_text() == "not ours"


def test_main_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main([str(tmp_path / "out"), "--n-real", "4", "--n-per-checkpoint", "3", "--size", "32"])
    _check_layout(tmp_path / "out", **TINY)
    assert "wrote demo data set" in capsys.readouterr().out


@pytest.mark.skipif(not COMMITTED_DEMO.is_dir(), reason="demo/ folder not present")
def test_committed_demo_structure() -> None:
    _check_layout(COMMITTED_DEMO, n_real=100, n_per_checkpoint=40, size=128)


@pytest.mark.skipif(not COMMITTED_DEMO.is_dir(), reason="demo/ folder not present")
def test_committed_demo_matches_builder(tmp_path: Path) -> None:
    """The committed folder is exactly what the builder makes, so nobody hand-edited it.

    Byte equality depends on the PNG/JPEG/zlib builds, so a mismatch on another platform
    is compared on decoded pixels before failing.
    """
    build_demo(tmp_path)
    built, committed = _all_files(tmp_path), _all_files(COMMITTED_DEMO)
    assert built.keys() == committed.keys()
    for name, data in built.items():
        if data == committed[name]:
            continue
        assert name.endswith(".png"), f"{name} differs from a fresh build"
        fresh = np.asarray(Image.open(tmp_path / name), dtype=np.int16)
        stored = np.asarray(Image.open(COMMITTED_DEMO / name), dtype=np.int16)
        # Tolerate small drift from a different libjpeg/scipy build (JPEG round trip, blur).
        assert fresh.shape == stored.shape, name
        assert np.abs(fresh - stored).mean() < 2.0, f"{name} differs from a fresh build"
