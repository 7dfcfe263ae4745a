"""The plan-time look at the files of a run (ckpt_eval.caches): a complete file as the workflow
writes it passes, a truncated, emptied or overwritten one is named with why, a missing one is
Snakemake's to rebuild; and a job's unusable input is removed before the error says run again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ckpt_eval.analysis.consolidate import write_csv
from ckpt_eval.atomic import write_text
from ckpt_eval.caches import damage, damaged, remove_damaged, unusable
from ckpt_eval.errors import CkptEvalError
from ckpt_eval.features.cache import save_features
from ckpt_eval.jsonio import read_json, write_json

NESTED = {"name": "step-1", "images": [{"file": "a.png", "nested": {"x": [1, {"y": "}\n"}]}}]}


def _written(tmp_path: Path) -> dict[str, Path]:
    """One file of every kind a run keeps, written by the workflow's own writers."""
    files = {
        "json": tmp_path / "manifest.json",
        "npz": tmp_path / "features.npz",
        "csv": tmp_path / "metrics.csv",
        "md": tmp_path / "report.md",
        "html": tmp_path / "report.html",
    }
    write_json(NESTED, files["json"])
    save_features(files["npz"], {"inception": np.ones((3, 8), np.float32)}, {"set": "step-1"})
    write_csv({"checkpoints": []}, files["csv"])
    write_text(files["md"], "# Report\n\ntext\n")
    write_text(files["html"], "<!doctype html>\n<html><body>x</body>\n</html>")
    return files


def test_complete_files_pass_and_missing_ones_are_left_to_snakemake(tmp_path: Path) -> None:
    files = _written(tmp_path)
    assert damaged([*files.values(), tmp_path / "absent.json", tmp_path]) == {}


@pytest.mark.parametrize("kind", ["json", "npz", "csv", "md", "html"])
def test_every_cut_of_a_file_is_damage(tmp_path: Path, kind: str) -> None:
    path = _written(tmp_path)[kind]
    data = path.read_bytes()
    # every cut of the file, apart from the text formats' cuts that end at a line end (a
    # report or CSV cut after a whole line looks complete from its last bytes)
    for size in range(len(data)):
        path.write_bytes(data[:size])
        if kind in ("csv", "md") and data[:size].endswith(b"\n"):
            continue
        assert damage(path) is not None, (kind, size)
    path.write_bytes(data)
    assert damage(path) is None


def test_an_npz_written_over_with_other_bytes_or_without_meta_is_damage(tmp_path: Path) -> None:
    path = tmp_path / "f.npz"
    path.write_bytes(b"not a zip at all" * 20)
    assert "not a complete .npz" in damage(path)
    np.savez(path, inception=np.ones(3))
    assert "no `meta`" in damage(path)


def test_damaged_files_are_removed_and_named_with_why(tmp_path: Path) -> None:
    files = _written(tmp_path)
    assert remove_damaged(files.values()) is None
    files["json"].write_bytes(b"")
    files["npz"].write_bytes(files["npz"].read_bytes()[:100])
    assert set(damaged(files.values())) == {str(files["json"]), str(files["npz"])}
    text = remove_damaged(files.values())
    assert "2 damaged file(s)" in text and "this run rewrites them" in text
    assert f"{files['json']}: it is empty" in text and str(files["npz"]) in text
    assert not files["json"].exists() and not files["npz"].exists()
    assert all(files[kind].exists() for kind in ("csv", "md", "html"))


def test_unusable_removes_the_file_and_says_run_again(tmp_path: Path) -> None:
    path = tmp_path / "prompts.json"
    path.write_text("{ half", encoding="utf-8")
    other = tmp_path / "other.json"
    write_json({}, other)
    with pytest.raises(CkptEvalError) as info:
        read_json(path)
    assert not path.exists() and other.exists()
    assert info.value.path == str(path)
    assert "not valid JSON" in info.value.what and "removed without being used" in info.value.what
    assert info.value.fix.startswith("run the same command again")
    assert "gone" in unusable(path, "x").what  # removed already: nothing else to do
