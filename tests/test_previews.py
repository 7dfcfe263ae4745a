from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from conftest import refuse_decoding, write_images
from PIL import Image

from ckpt_eval.inputs.images import sha256_file
from ckpt_eval.report.previews import CELL, PAGE, Previews

SIDE = 32


@pytest.fixture
def images(tmp_path: Path) -> tuple[list[Path], dict]:
    # wider than tall and larger than SIDE: the shrink keeps the aspect
    paths = write_images(tmp_path / "ckpt", 3, seed=4, size=(120, 80))
    manifest = {"images": [{"path": str(p), "sha256": sha256_file(p)} for p in paths]}
    return paths, manifest


def shrunk_now(path: Path, side: int) -> Image.Image:
    """Written out here: the image's RGB pixels shrunk by Pillow's own thumbnail()."""
    image = Image.open(path).convert("RGB")
    image.thumbnail((side, side))
    return image


def test_a_kept_cell_has_the_pixels_of_the_image_shrunk_now(images, tmp_path, monkeypatch):
    paths, manifest = images
    made = Previews(tmp_path / "previews", [manifest]).cell(paths[0], SIDE)
    assert made.size == (32, 21)
    assert np.array_equal(np.asarray(made), np.asarray(shrunk_now(paths[0], SIDE)))
    refuse_decoding(monkeypatch)  # the next report reads it back, not the image
    kept = Previews(tmp_path / "previews", [manifest]).cell(paths[0], SIDE)
    assert np.array_equal(np.asarray(kept), np.asarray(made))


def test_a_kept_page_thumbnail_is_the_same_jpeg(images, tmp_path, monkeypatch):
    paths, manifest = images
    buffer = io.BytesIO()
    shrunk_now(paths[1], SIDE).save(buffer, format="JPEG", quality=80)
    made = Previews(tmp_path / "previews", [manifest]).jpeg(paths[1], SIDE, 80)
    assert made == buffer.getvalue()
    refuse_decoding(monkeypatch)
    assert Previews(tmp_path / "previews", [manifest]).jpeg(paths[1], SIDE, 80) == made


def test_without_a_folder_or_a_manifest_nothing_is_kept(images, tmp_path):
    paths, manifest = images
    Previews(None, [manifest]).cell(paths[0], SIDE)
    Previews(tmp_path / "previews").cell(paths[0], SIDE)  # an image no manifest lists
    assert not (tmp_path / "previews").exists()


def test_an_unreadable_preview_is_made_again(images, tmp_path):
    paths, manifest = images
    previews = Previews(tmp_path / "previews", [manifest])
    previews.cell(paths[0], SIDE)
    previews.jpeg(paths[0], SIDE, 80)
    (npy,), (jpg,) = (list(previews.folder.glob(f"*{ext}")) for ext in (".npy", ".jpg"))
    npy.write_bytes(npy.read_bytes()[:200])
    jpg.write_bytes(jpg.read_bytes()[:-10])
    again = Previews(tmp_path / "previews", [manifest])
    assert np.array_equal(
        np.asarray(again.cell(paths[0], SIDE)), np.asarray(shrunk_now(paths[0], SIDE))
    )
    assert again.jpeg(paths[0], SIDE, 80) == Previews(None).jpeg(paths[0], SIDE, 80)
    assert np.load(npy).shape == (21, 32, 3) and jpg.read_bytes().endswith(b"\xff\xd9")


def test_an_edited_image_gets_a_new_preview_and_the_old_one_is_pruned(images, tmp_path):
    paths, manifest = images
    first = Previews(tmp_path / "previews", [manifest])
    first.cell(paths[0], SIDE)
    first.cell(paths[1], SIDE)
    old = {p.name for p in first.folder.iterdir()}
    Image.new("RGB", (120, 80), "red").save(paths[0])
    edited = {"images": [{"path": str(paths[0]), "sha256": sha256_file(paths[0])}]}
    second = Previews(tmp_path / "previews", [edited])
    assert np.asarray(second.cell(paths[0], SIDE))[0, 0].tolist() == [255, 0, 0]
    # a leftover of another Pillow version or format and a temp file of a killed write go too;
    # what is not this module's is left
    stale = tmp_path / "previews" / "pillow-0.0-f0" / "x-32.npy"
    stale.parent.mkdir()
    stale.write_bytes(b"x")
    (second.folder / ".y-32.npy.a1b2c3.tmp").write_bytes(b"")
    (second.folder / "a folder").mkdir()
    (tmp_path / "previews" / "notes.txt").write_text("mine")
    assert second.prune(CELL) == 4
    assert sorted(p.name for p in second.folder.iterdir()) == [
        f"{edited['images'][0]['sha256']}-{SIDE}.npy",
        "a folder",
    ]
    assert not set(p.name for p in second.folder.iterdir()) & old
    assert not stale.parent.exists() and (tmp_path / "previews" / "notes.txt").exists()


def test_an_image_replaced_after_organize_is_shown_but_not_kept(images, tmp_path):
    paths, manifest = images  # the manifest hashed the first image; it is replaced since
    Image.new("RGB", (120, 80), "blue").save(paths[0])
    previews = Previews(tmp_path / "previews", [manifest])
    assert np.asarray(previews.cell(paths[0], SIDE))[0, 0].tolist() == [0, 0, 255]
    previews.jpeg(paths[0], SIDE, 80)
    assert not previews.folder.exists() and previews.not_kept is None


def test_a_folder_that_cannot_be_written_leaves_the_previews_unkept(images, tmp_path):
    paths, manifest = images
    (tmp_path / "previews").write_text("a file where the folder should be")
    previews = Previews(tmp_path / "previews", [manifest])
    made = previews.cell(paths[0], SIDE)
    assert np.array_equal(np.asarray(made), np.asarray(shrunk_now(paths[0], SIDE)))
    assert previews.jpeg(paths[0], SIDE, 80) == Previews(None).jpeg(paths[0], SIDE, 80)
    assert "previews" in previews.not_kept
    assert previews.prune(CELL) == previews.prune(PAGE) == 0


def test_the_two_jobs_prune_only_their_own_kind(images, tmp_path):
    """The page (PAGE) and the contact sheets (CELL) are jobs that may run at once on the same
    folder: neither removes what the other has kept or is writing."""
    paths, manifest = images
    sheets = Previews(tmp_path / "previews", [manifest])
    sheets.cell(paths[0], SIDE)
    page = Previews(tmp_path / "previews", [manifest])
    page.jpeg(paths[1], SIDE, 80)
    (page.folder / f".{paths[2].name}-{SIDE}.npy.x1y2z3.tmp").write_bytes(b"")  # being written
    assert page.prune(PAGE) == 0
    assert len(list(page.folder.iterdir())) == 3
    assert sheets.prune(CELL) == 1  # the other job's JPEG stays; the cut write of a cell goes
    assert sorted(p.suffix for p in page.folder.iterdir()) == [PAGE, CELL]
