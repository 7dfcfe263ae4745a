"""Finding checkpoint folders and their images on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.inputs.discover import discover_checkpoints, list_images

EXTS = ["png", "jpg", "jpeg"]


def image(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path, format="PNG")
    return path


def test_checkpoints_sorted_by_step_not_by_name(tmp_path: Path) -> None:
    for name in ["step-10000", "step-1500", "step-500"]:
        image(tmp_path / name / "a.png")
    found = discover_checkpoints(tmp_path, EXTS)
    # By name the order would be step-10000, step-1500, step-500.
    assert list(found) == ["step-500", "step-1500", "step-10000"]


def test_steps_then_epochs_then_unknown_then_name(tmp_path: Path) -> None:
    for name in ["final", "e000002", "step-20", "best", "step-3"]:
        image(tmp_path / name / "a.png")
    assert list(discover_checkpoints(tmp_path, EXTS)) == [
        "step-3",
        "step-20",
        "e000002",
        "best",
        "final",
    ]


def test_images_listed_per_checkpoint_ignoring_hidden_and_non_images(tmp_path: Path) -> None:
    ckpt = tmp_path / "step-100"
    a = image(ckpt / "a.png")
    b = image(ckpt / "sub" / "b.png")
    image(ckpt / ".hidden.png")
    image(ckpt / ".thumbs" / "c.png")
    (ckpt / "notes.txt").write_text("not an image")
    (ckpt / "meta.json").write_text("{}")
    image(tmp_path / ".cache" / "x.png")  # hidden checkpoint folder
    (tmp_path / "README.md").write_text("a file beside the checkpoint folders")
    found = discover_checkpoints(tmp_path, EXTS)
    assert list(found) == ["step-100"]
    assert found["step-100"] == [a, b]


def test_empty_checkpoint_folder_raises_naming_it(tmp_path: Path) -> None:
    image(tmp_path / "step-100" / "a.png")
    (tmp_path / "step-200").mkdir()
    with pytest.raises(CkptEvalError) as info:
        discover_checkpoints(tmp_path, EXTS)
    assert "step-200" in str(info.value)
    assert info.value.path == str(tmp_path / "step-200")


def test_checkpoint_folder_with_only_non_images_raises(tmp_path: Path) -> None:
    image(tmp_path / "step-100" / "a.png")
    (tmp_path / "step-200").mkdir()
    (tmp_path / "step-200" / "a.txt").write_text("x")
    image(tmp_path / "step-200" / ".hidden.png")
    with pytest.raises(CkptEvalError, match="step-200"):
        discover_checkpoints(tmp_path, EXTS)


def test_missing_root_raises(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(CkptEvalError) as info:
        discover_checkpoints(missing, EXTS)
    assert str(missing) in str(info.value)


def test_root_that_is_a_file_raises(tmp_path: Path) -> None:
    file = tmp_path / "samples"
    file.write_text("x")
    with pytest.raises(CkptEvalError):
        discover_checkpoints(file, EXTS)


def test_root_without_checkpoint_folders_raises(tmp_path: Path) -> None:
    image(tmp_path / "loose.png")
    image(tmp_path / ".hidden" / "a.png")
    with pytest.raises(CkptEvalError, match="No checkpoint folders"):
        discover_checkpoints(tmp_path, EXTS)


def test_list_images_recursive_and_case_insensitive(tmp_path: Path) -> None:
    upper = image(tmp_path / "A.PNG")
    mixed = image(tmp_path / "deep" / "er" / "b.JpG")
    jpeg = image(tmp_path / "c.jpeg")
    image(tmp_path / "d.gif")
    image(tmp_path / "e.png.bak")
    (tmp_path / "f.txt").write_text("x")
    (tmp_path / "dir.png").mkdir()  # a folder named like an image is not an image
    found = list_images(tmp_path, ["png", ".JPG", "jpeg"])
    assert sorted(found) == sorted([upper, mixed, jpeg])


def test_list_images_order_is_stable_and_sorted_by_relative_path(tmp_path: Path) -> None:
    paths = [image(tmp_path / n) for n in ["b.png", "a/z.png", "a.png", "c/a.png"]]
    found = list_images(tmp_path, ["png"])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a.png",
        "a/z.png",
        "b.png",
        "c/a.png",
    ]
    assert set(found) == set(paths)


def test_list_images_missing_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(CkptEvalError) as info:
        list_images(tmp_path / "real", ["png"])
    assert str(tmp_path / "real") in str(info.value)


def test_list_images_hidden_folder_itself_is_allowed_as_root(tmp_path: Path) -> None:
    # Only parts below the folder count as hidden; a root like `.data/real` still works.
    root = tmp_path / ".data" / "real"
    a = image(root / "a.png")
    assert list_images(root, ["png"]) == [a]
