"""Every case of the "Inputs that are not clean" table (docs/inputs.md), at the library level.

The same corpus goes through the whole workflow in test_workflow_resilience.py.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from bad_inputs import CORPUS, plain_png
from PIL import Image

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.inputs.images import load_rgb, probe
from ckpt_eval.inputs.manifest import build_manifest
from ckpt_eval.inputs.prompts import pair_prompts, read_prompt_file


@pytest.mark.parametrize(("name", "maker", "outcome"), CORPUS, ids=[c[0] for c in CORPUS])
def test_each_corpus_file_has_its_documented_outcome(
    tmp_path: Path, name: str, maker, outcome: str
) -> None:
    path = maker(tmp_path / name)
    if outcome == "error":
        with pytest.raises(CkptEvalError) as info:
            probe(path)
        assert info.value.path == str(path)
        assert "on_bad_image: skip" in info.value.fix
        return
    info = probe(path)
    assert outcome in (info["note"] or "")
    pixels = load_rgb(path)
    assert pixels.dtype == np.uint8 and pixels.shape == (info["height"], info["width"], 3)


def test_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    from bad_inputs import bomb_header

    with pytest.raises(CkptEvalError) as info:
        load_rgb(bomb_header(tmp_path / "bomb.png"))
    assert "20000x20000" in info.value.what and "decompression bomb" in info.value.what


def test_exif_rotation_and_animation_follow_clean_fid(tmp_path: Path) -> None:
    """clean-fid reads `Image.open(f).convert("RGB")`: stored pixels of the first frame."""
    from bad_inputs import animated_gif, exif_rotated_jpeg

    for path in (exif_rotated_jpeg(tmp_path / "r.jpg"), animated_gif(tmp_path / "a.gif")):
        with Image.open(path) as image:
            expected = np.asarray(image.convert("RGB"))
        assert np.array_equal(load_rgb(path), expected)
        assert load_rgb(path).shape == (32, 40, 3)  # not rotated to 40 x 32


def test_skip_lists_every_bad_file_and_keeps_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "samples" / "step-1"
    folder.mkdir(parents=True)
    paths = [maker(folder / name) for name, maker, _ in CORPUS]
    manifest = build_manifest("step-1", paths, tmp_path / "samples", on_bad_image="skip")
    bad = {name for name, _, outcome in CORPUS if outcome == "error"}
    assert {Path(s["path"]).name for s in manifest["skipped"]} == bad
    kept = {Path(i["path"]).name for i in manifest["images"]}
    assert kept == {name for name, _, _ in CORPUS} - bad
    assert "step-1/spaced and ünïcødé name.png" in {i["file"] for i in manifest["images"]}
    with pytest.raises(CkptEvalError) as info:
        build_manifest("step-1", paths, tmp_path / "samples", on_bad_image="error")
    assert Path(info.value.path).name in bad


def test_duplicates_within_a_checkpoint_are_grouped(tmp_path: Path) -> None:
    folder = tmp_path / "step-1"
    folder.mkdir()
    a = plain_png(folder / "a.png", seed=1)
    (folder / "b.png").write_bytes(a.read_bytes())
    plain_png(folder / "c.png", seed=2)
    manifest = build_manifest("step-1", list(folder.iterdir()), tmp_path)
    assert manifest["duplicates"] == [["step-1/a.png", "step-1/b.png"]]
    assert len(manifest["images"]) == 3  # all kept: the generator made them


def _csv(path: Path, rows: list[tuple[str, str]], bom: bool = False) -> Path:
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "prompt"])
        writer.writerows(rows)
    return path


def test_prompt_csv_with_bom_quoted_commas_and_newlines(tmp_path: Path) -> None:
    prompt = 'a "red", shiny\nshoe, on grass'
    path = _csv(tmp_path / "p.csv", [("step-1/a.png", prompt)], bom=True)
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert read_prompt_file(path) == {"step-1/a.png": prompt}


@pytest.mark.parametrize("outside", ["../x.png", "step-1/../../x.png", "/etc/x.png"])
def test_a_prompt_file_naming_a_file_outside_the_root_is_an_error(
    tmp_path: Path, outside: str
) -> None:
    path = _csv(tmp_path / "p.csv", [("step-1/a.png", "ok"), (outside, "escape")])
    with pytest.raises(CkptEvalError) as info:
        read_prompt_file(path)
    assert outside in info.value.what and "outside samples.root" in info.value.what
    assert info.value.path == str(path)


def _manifest(files: list[str]) -> dict:
    return {"name": "step-1", "images": [{"file": f} for f in files], "skipped": []}


@pytest.mark.parametrize("empty", ["", "   ", "\n"])
def test_an_empty_prompt_is_a_missing_prompt(empty: str) -> None:
    manifest = _manifest(["step-1/a.png", "step-1/b.png"])
    prompts = {"step-1/a.png": "a shoe", "step-1/b.png": empty}
    with pytest.raises(CkptEvalError) as info:
        pair_prompts(manifest, prompts, "p.csv", None)
    assert "step-1/b.png" in info.value.what and "empty" in info.value.what
    pairs = pair_prompts(manifest, prompts, "p.csv", "a photo")
    assert [p["fallback"] for p in pairs["pairs"]] == [False, True]
    assert pairs["pairs"][1]["prompt"] == "a photo"
