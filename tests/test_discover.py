"""Finding checkpoint folders and their images on disk."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.inputs.discover import (
    check_distinct_names,
    check_separate_folders,
    discover_checkpoints,
    list_images,
    relative_file,
)
from ckpt_eval.inputs.images import sha256_file
from ckpt_eval.inputs.layouts import folders
from ckpt_eval.inputs.layouts.base import Options
from ckpt_eval.inputs.manifest import build_manifest

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


# --- symbolic links: followed, never walked forever, never counted twice -----------------------


def test_linked_images_and_folders_are_followed_and_named_under_the_root(tmp_path: Path) -> None:
    """A store of linked images (git-annex, DVC) and a checkpoint folder linked from elsewhere:
    every image is found, named by where it sits under samples.root, hashed through the link."""
    store = tmp_path / "store"
    one, two = image(store / "one.png", 10), image(store / "deep" / "two.png", 20)
    samples = tmp_path / "samples"
    own = image(samples / "step-100" / "own.png", 30)
    (samples / "step-100" / "linked.png").symlink_to(one)
    (samples / "step-100" / "sub").symlink_to(store / "deep", target_is_directory=True)
    (samples / "step-200").symlink_to(store, target_is_directory=True)
    found = discover_checkpoints(samples, EXTS)
    assert {
        name: [p.relative_to(samples).as_posix() for p in paths] for name, paths in found.items()
    } == {
        "step-100": ["step-100/linked.png", "step-100/own.png", "step-100/sub/two.png"],
        "step-200": ["step-200/deep/two.png", "step-200/one.png"],
    }
    manifest = build_manifest("step-100", found["step-100"], samples)
    entries = {e["file"]: e["sha256"] for e in manifest["images"]}
    assert entries == {
        "step-100/linked.png": sha256_file(one),
        "step-100/own.png": sha256_file(own),
        "step-100/sub/two.png": sha256_file(two),
    }
    layout = folders.read(Options(root=samples, extensions=tuple(EXTS)))
    assert {s.file for s in layout.samples} == {
        "step-100/linked.png",
        "step-100/own.png",
        "step-100/sub/two.png",
        "step-200/deep/two.png",
        "step-200/one.png",
    }


@pytest.mark.parametrize("target", [".", "..", "../.."])
def test_a_symlink_loop_is_refused_naming_the_link_and_deleting_it_works(
    tmp_path: Path, target: str
) -> None:
    ckpt = tmp_path / "samples" / "step-100"
    image(ckpt / "a.png")
    link = ckpt / "sub" / "again"
    image(ckpt / "sub" / "b.png")
    link.symlink_to(target, target_is_directory=True)
    with pytest.raises(CkptEvalError) as info:
        discover_checkpoints(tmp_path / "samples", EXTS)
    assert info.value.path == str(link) and "loop" in info.value.what
    assert "delete the link" in info.value.fix
    link.unlink()  # the fix
    assert len(discover_checkpoints(tmp_path / "samples", EXTS)["step-100"]) == 2


def test_one_folder_reached_twice_is_refused_naming_the_link(tmp_path: Path) -> None:
    """Two ways into one folder would count its images twice; the link is named, whichever of
    the two the walk meets first."""
    root = tmp_path / "real"
    image(root / "photos" / "a.png")
    for name in ("a-link", "z-link"):
        (root / name).symlink_to(root / "photos", target_is_directory=True)
        with pytest.raises(CkptEvalError) as info:
            list_images(root, EXTS)
        assert info.value.path == str(root / name)
        assert "reached twice" in info.value.what and "count twice" in info.value.what
        (root / name).unlink()  # the fix
        assert list_images(root, EXTS) == [root / "photos" / "a.png"]


@pytest.mark.parametrize("kind", ["missing target", "link to itself"])
def test_a_broken_link_is_refused_naming_it(tmp_path: Path, kind: str) -> None:
    """A link to an unmounted drive must not quietly mean fewer images."""
    image(tmp_path / "step-100" / "a.png")
    link = tmp_path / "step-100" / ("gone" if kind == "missing target" else "b.png")
    link.symlink_to(tmp_path / "nowhere" if kind == "missing target" else link)
    with pytest.raises(CkptEvalError) as info:
        discover_checkpoints(tmp_path, EXTS)
    assert info.value.path == str(link) and "Broken symbolic link" in info.value.what
    link.unlink()  # the fix
    assert list(discover_checkpoints(tmp_path, EXTS)) == ["step-100"]


def test_a_broken_link_to_a_checkpoint_folder_is_refused(tmp_path: Path) -> None:
    image(tmp_path / "step-100" / "a.png")
    (tmp_path / "step-200").symlink_to(tmp_path / "unmounted" / "step-200")
    with pytest.raises(CkptEvalError) as info:
        discover_checkpoints(tmp_path, EXTS)
    assert info.value.path == str(tmp_path / "step-200")


def test_a_folder_that_cannot_be_listed_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image(tmp_path / "step-100" / "a.png")
    locked = tmp_path / "step-100" / "locked"
    image(locked / "b.png")
    scandir = os.scandir

    def refusing(path):  # root may read any folder, so the refusal is simulated
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    with pytest.raises(CkptEvalError) as info:
        discover_checkpoints(tmp_path, EXTS)
    assert info.value.path == str(locked) and "permission denied" in info.value.what


def test_the_walk_lists_each_folder_once_and_stats_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plan time stays linear: one listing and one stat per folder, none per file (timed in
    bench/, figure 7; here the system calls are counted)."""
    calls = {"scandir": 0, "stat": 0}
    scandir, stat = os.scandir, os.stat

    def counting(name, real):
        def call(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)

        return call

    for files in (5, 50):
        root = tmp_path / f"tree-{files}"
        for d in range(20):
            for f in range(files):
                (root / f"d{d}" / "inner").mkdir(parents=True, exist_ok=True)
                (root / f"d{d}" / "inner" / f"{f}.png").touch()
        monkeypatch.setattr(os, "scandir", counting("scandir", scandir))
        monkeypatch.setattr(os, "stat", counting("stat", stat))
        found = list_images(root, EXTS)
        monkeypatch.undo()
        assert len(found) == 20 * files
        folders_walked = 1 + 20 * 2
        # one more stat: whether the folder exists at all; the same for 5 and 50 files a folder
        assert calls == {"scandir": folders_walked, "stat": folders_walked + 1}, files
        calls = dict.fromkeys(calls, 0)


# --- the real images, the samples and the results are separate folders ------------------------


def project(tmp_path: Path) -> tuple[Path, Path, Path]:
    real, samples = tmp_path / "data" / "real", tmp_path / "data" / "samples"
    image(real / "r.png")
    image(samples / "step-100" / "a.png")
    return real, samples, tmp_path / "results" / "t"


@pytest.mark.parametrize(
    ("real", "samples", "results", "words"),
    [
        (
            "data",
            "data/samples",
            "results/t",
            "every sample image would also count as a real image",
        ),
        ("data/samples/real", "data/samples", "results/t", "read as samples of a checkpoint"),
        ("data/samples", "data/samples", "results/t", "is the same folder as"),
        (".", "../elsewhere", "results/t", "the report's charts would count as real images"),
        ("../elsewhere", ".", "results/t", "the report's charts would be read as samples"),
    ],
)
def test_overlapping_folders_are_refused(
    tmp_path: Path, real: str, samples: str, results: str, words: str
) -> None:
    with pytest.raises(CkptEvalError) as info:
        check_separate_folders(tmp_path / real, tmp_path / samples, tmp_path / results)
    assert words in info.value.what
    assert "move" in info.value.fix  # says what to move where


def test_moving_the_samples_out_of_the_real_folder_fixes_it(tmp_path: Path) -> None:
    real, samples, results = project(tmp_path)
    with pytest.raises(CkptEvalError):
        check_separate_folders(tmp_path / "data", samples, results)
    check_separate_folders(real, samples, results)  # the fix: real_images holds only real ones
    # generated samples live in the results folder: allowed
    check_separate_folders(real, results / "generated", results)


def test_a_link_from_the_real_folder_into_the_samples_is_refused(tmp_path: Path) -> None:
    real, samples, results = project(tmp_path)
    (real / "more").symlink_to(samples, target_is_directory=True)
    check_separate_folders(real, samples, results)  # the folders themselves are apart
    outside = {"samples.root": samples, "the results folder": results}
    with pytest.raises(CkptEvalError) as info:
        list_images(real, EXTS, outside=outside)
    assert info.value.path == str(real / "more") and "samples.root" in info.value.what
    (real / "more").unlink()
    assert list_images(real, EXTS, outside=outside) == [real / "r.png"]


# --- checkpoint names that differ only by case -----------------------------------------------


def test_checkpoint_names_differing_only_by_case_are_refused(tmp_path: Path) -> None:
    """`Step-100` and `step-100` would share result files on macOS or Windows."""
    image(tmp_path / "step-100" / "a.png")
    image(tmp_path / "Step-100" / "a.png")
    names = list(discover_checkpoints(tmp_path, EXTS))
    with pytest.raises(CkptEvalError) as info:
        check_distinct_names(names, tmp_path)
    assert "'Step-100' and 'step-100' differ only by case" in info.value.what
    (tmp_path / "Step-100").rename(tmp_path / "step-100-b")  # the fix the message suggests
    check_distinct_names(discover_checkpoints(tmp_path, EXTS), tmp_path)


def test_relative_file_names_a_path_as_abspath_would(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The lexical shortcut (a path spelled as root + "/" + a plain remainder) gives the same
    name as the full abspath route, or the same refusal, for paths made of every awkward part:
    `.`, `..`, empty parts, absolute and relative roots, a trailing slash."""

    def by_abspath(path: str, root: str) -> str:
        full, base = os.path.abspath(path), os.path.abspath(root)
        if full == base or not full.startswith(base.rstrip(os.sep) + os.sep):
            raise ValueError(path)
        return full[len(base.rstrip(os.sep)) + 1 :].replace(os.sep, "/")

    def named(fn: Callable[[str, str], str], path: str, root: str) -> str:
        try:
            return fn(path, root)
        except ValueError:
            return "refused"

    monkeypatch.chdir(tmp_path)
    parts = ["a", "b", ".", "..", "", "samples", "x.png", "/tmp", "/", "tmp"]
    rng = random.Random(3)
    names = 0
    for _ in range(20_000):
        root = "/".join(rng.choice(parts) for _ in range(rng.randint(1, 3)))
        path = "/".join(rng.choice(parts) for _ in range(rng.randint(1, 5)))
        if rng.random() < 0.5:
            path = f"{root}/{path}"
        for spelled in (root, root + "/"):
            expected = named(by_abspath, path, spelled)
            assert named(relative_file, path, spelled) == expected, (path, spelled)
            names += expected != "refused"
    assert names > 5_000  # most cases name a file: the shortcut is what is tested
    assert relative_file("samples/step-1/a.png", "samples") == "step-1/a.png"
    assert relative_file("samples/./step-1/../b.png", "samples/") == "b.png"
