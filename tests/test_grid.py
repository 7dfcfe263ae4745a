"""The prompt × checkpoint grid (ckpt_eval.report.grid): rows are the pairing keys every
checkpoint has, columns the checkpoints in step order (the base model first), cells carry the
registry's per-image scores, the rows shown are drawn reproducibly, unmatched images are listed,
and the contact sheets hold every row."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import refuse_decoding, write_images
from PIL import Image

import ckpt_eval.report.grid as grid_module
from ckpt_eval.analysis.pairing import pairing_keys
from ckpt_eval.inputs.images import sha256_file
from ckpt_eval.inputs.manifest import sealed
from ckpt_eval.jsonio import write_json
from ckpt_eval.metrics.registry import Quantity, quantities, quantity
from ckpt_eval.report.grid import (
    SHEET_CELL,
    SHEET_LABEL,
    SHEET_ROWS,
    build_grid,
    choose_rows,
    contact_sheet,
    contact_sheet_files,
    split_key,
    write_contact_sheets,
)
from ckpt_eval.report.inputs import previews_folder
from ckpt_eval.report.previews import CELL, PAGE, Previews

BASE = "base-step-000000"
SCRIPT = "<script>alert(1)</script>"


def _per_image(files: list[str], prompts: list[str], seeds: list[int | None], scale: float):
    return [
        {
            "file": f,
            "prompt": p,
            "seed": s,
            "fallback": False,
            "clip_score": 20.0 + scale * i,
            "pickscore": 18.0 + scale * i / 10,
            "dino_nearest": 0.5 + scale * i / 100,
        }
        for i, (f, p, s) in enumerate(zip(files, prompts, seeds, strict=True))
    ]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Four checkpoints (the base model among them, listed after the others): the same two
    prompts x two seeds, in different file orders; step-200 lacks one, step-300 has one more."""
    root = tmp_path_factory.mktemp("grid")
    layout = {
        BASE: (["a cat", "a cat", SCRIPT, SCRIPT], [1, 2, 1, 2]),
        "step-100": ([SCRIPT, "a cat", SCRIPT, "a cat"], [2, 2, 1, 1]),
        "step-200": (["a cat", "a cat", SCRIPT], [2, 1, 1]),
        "step-300": (["a cat", "a cat", SCRIPT, SCRIPT, "a dog"], [1, 2, 1, 2, 7]),
    }
    rows, manifests = [], {}
    for index, (name, (prompts, seeds)) in enumerate(layout.items()):
        paths = write_images(root / name, len(prompts), seed=index, size=(64, 48))
        files = [f"{name}/{p.name}" for p in paths]
        manifests[name] = {
            "name": name,
            "images": [
                {"file": f, "path": str(p), "sha256": sha256_file(p)}
                for f, p in zip(files, paths, strict=True)
            ],
        }
        step = 0 if name == BASE else int(name.split("-")[1])
        rows.append(
            {
                "name": name,
                "step": step,
                "epoch": None,
                "per_image": _per_image(files, prompts, seeds, index + 1),
            }
        )
    # consolidate sorts by step; put the base model last to see the grid move it first
    rows = rows[1:] + rows[:1]
    result = {
        "checkpoints": rows,
        "recommendation": {"checkpoint": "step-200", "reference": BASE},
    }
    return {"result": result, "manifests": manifests, "layout": layout}


def test_columns_in_step_order_the_base_model_first_the_recommended_marked(run) -> None:
    grid = build_grid(run["result"], run["manifests"], limit=16, seed=0)
    assert [c.name for c in grid.columns] == [BASE, "step-100", "step-200", "step-300"]
    assert [c.reference for c in grid.columns] == [True, False, False, False]
    assert [c.recommended for c in grid.columns] == [False, False, True, False]


def test_rows_are_the_pairing_keys_every_checkpoint_has(run) -> None:
    """Each cell of a row is the image whose pairing key (ckpt_eval.analysis.pairing) is the
    row's: same prompt and seed, wherever the file sits in its folder."""
    grid = build_grid(run["result"], run["manifests"], limit=16, seed=0)
    by_name = {r["name"]: r for r in run["result"]["checkpoints"]}
    shared = set.intersection(*(set(pairing_keys(r["per_image"])) for r in by_name.values()))
    assert {row.key for row in grid.rows} == shared
    # grouped by prompt in order of first appearance (the base model's column first), then seed
    assert [(row.prompt, row.which) for row in grid.rows] == [
        ("a cat", "seed 1"),
        ("a cat", "seed 2"),
        (SCRIPT, "seed 1"),  # step-200 has no seed 2 of the script prompt
    ]
    for row in grid.rows:
        for column, cell in zip(grid.columns, row.cells, strict=True):
            images = by_name[column.name]["per_image"]
            (image,) = [
                i for i, k in zip(images, pairing_keys(images), strict=True) if k == row.key
            ]
            assert cell.file == image["file"]
            assert cell.path == next(
                m["path"] for m in run["manifests"][column.name]["images"] if m["file"] == cell.file
            )


def test_unmatched_images_are_listed_with_the_checkpoints_that_lack_them(run) -> None:
    grid = build_grid(run["result"], run["manifests"], limit=16, seed=0)
    listed = {(u.checkpoint, u.prompt, u.which): u.missing_from for u in grid.unmatched}
    assert listed == {
        (BASE, SCRIPT, "seed 2"): ("step-200",),
        ("step-100", SCRIPT, "seed 2"): ("step-200",),
        ("step-300", SCRIPT, "seed 2"): ("step-200",),
        ("step-300", "a dog", "seed 7"): (BASE, "step-100", "step-200"),
    }
    # every image is in the grid or in the list: none is dropped
    images = sum(len(r["per_image"]) for r in run["result"]["checkpoints"])
    assert len(grid.rows) * len(grid.columns) + len(grid.unmatched) == images


def test_cells_carry_the_registrys_per_image_scores(run, monkeypatch) -> None:
    grid = build_grid(run["result"], run["manifests"], limit=16, seed=0)
    cell = grid.rows[0].cells[0]
    assert [q.key for q, _ in cell.scores] == [
        q.key for q in quantities() if q.per_image in {"clip_score", "pickscore", "dino_nearest"}
    ]
    assert {q.key for q, _ in cell.scores} == {"clip", "pickscore", "dino_nearest"}
    assert dict((q.key, v) for q, v in cell.scores)["clip"] == 20.0 + 1 * 0  # base: scale 1, i 0
    text = grid_module.score_text(cell)
    assert text.startswith(f"{quantity('clip').label} 20.00")
    # a metric added to the registry with per-image values shows up with nothing else changed
    extra = Quantity(key="sharp", label="Sharpness", better="higher", point="x", per_image="sharp")
    monkeypatch.setattr(grid_module, "quantities", lambda: (*quantities(), extra))
    for row in run["result"]["checkpoints"]:
        for image in row["per_image"]:
            image["sharp"] = 1.5
    try:
        cell = build_grid(run["result"], run["manifests"], 16, 0).rows[0].cells[0]
        assert "Sharpness 1.50" in grid_module.score_text(cell)
    finally:
        for row in run["result"]["checkpoints"]:
            for image in row["per_image"]:
                del image["sharp"]
    # a checkpoint without a score (its model off) shows none: no zero is made up
    for row in run["result"]["checkpoints"]:
        for image in row["per_image"]:
            image["saved"] = image.pop("pickscore")
            image["pickscore"] = None
    try:
        cell = build_grid(run["result"], run["manifests"], 16, 0).rows[0].cells[0]
        assert "PickScore" not in grid_module.score_text(cell)
    finally:
        for row in run["result"]["checkpoints"]:
            for image in row["per_image"]:
                image["pickscore"] = image.pop("saved")


def test_rows_shown_are_drawn_reproducibly() -> None:
    assert choose_rows(5, 16, 0) == (0, 1, 2, 3, 4)
    first = choose_rows(64, 16, 0)
    assert first == choose_rows(64, 16, 0)  # the same rows on every rerun
    assert len(first) == 16 == len(set(first)) and list(first) == sorted(first)
    assert all(0 <= i < 64 for i in first)
    assert choose_rows(64, 16, 1) != first  # another seed, other rows
    # drawn at random, not the first ones: over seeds every row is about equally likely
    counts = np.bincount(np.concatenate([choose_rows(64, 16, s) for s in range(400)]), minlength=64)
    assert counts.min() > 0.5 * 100 and counts.max() < 1.5 * 100  # expected 400 * 16 / 64 = 100


def test_split_key_reads_pairing_keys() -> None:
    keys = pairing_keys(
        [
            {"prompt": "p", "seed": 3},
            {"prompt": "p", "seed": 3},
            {"prompt": "q", "seed": None},
        ]
    )
    assert [split_key(k) for k in keys] == [("p", "seed 3"), ("p", "seed 3 #1"), ("q", "image 0")]


def test_contact_sheets_hold_every_row(run, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(grid_module, "SHEET_ROWS", 2)
    grid = build_grid(run["result"], run["manifests"], limit=1, seed=0)
    assert len(grid.shown) == 1 and len(grid.rows) == 3  # the page shows one, the sheets all
    (tmp_path / "grids").mkdir()
    (tmp_path / "grids" / "grid-009.jpg").write_bytes(b"stale")
    (tmp_path / "grids" / "grid-003.png").write_bytes(b"an earlier version's PNG sheet")
    written = write_contact_sheets(grid, tmp_path / "grids")
    assert written == ["grids/grid-001.jpg", "grids/grid-002.jpg"]
    assert sorted(p.name for p in (tmp_path / "grids").iterdir()) == [
        "grid-001.jpg",
        "grid-002.jpg",
    ]
    first = Image.open(tmp_path / written[0])
    assert first.format == "JPEG" and first.width == SHEET_LABEL + 4 * (SHEET_CELL + 6) + 6
    # the first row's first cell is the base model's image, shrunk into its cell: exact on the
    # page drawn, and within JPEG's loss at quality 95 (no chroma subsampling) in the file
    cell = grid.rows[0].cells[0]
    expected = Image.open(cell.path).convert("RGB")
    expected.thumbnail((SHEET_CELL, SHEET_CELL))
    box = (SHEET_LABEL, 44, SHEET_LABEL + expected.width, 44 + expected.height)
    drawn = contact_sheet(grid, grid.rows[:2])
    assert np.array_equal(np.asarray(drawn.crop(box)), np.asarray(expected))
    error = np.asarray(first, np.float64) - np.asarray(drawn, np.float64)
    assert 10 * np.log10(255.0**2 / np.mean(error**2)) > 40  # PSNR in dB
    assert all(h == v == 1 for _, h, v, _ in first.layer)  # no chroma subsampling
    # reproducible bytes, drawn one sheet at a time or several at once
    monkeypatch.setattr(grid_module, "SHEET_THREADS", 1)
    again = tmp_path / "again"
    assert write_contact_sheets(grid, again) == ["again/grid-001.jpg", "again/grid-002.jpg"]
    for name in ("grid-001.jpg", "grid-002.jpg"):
        assert (again / name).read_bytes() == (tmp_path / "grids" / name).read_bytes()
    assert (again / "grid-001.jpg").read_bytes() != (again / "grid-002.jpg").read_bytes()
    # the same bytes from previews made now and from previews kept by an earlier report
    for made_or_kept in ("made", "kept"):
        if made_or_kept == "kept":
            refuse_decoding(monkeypatch)
        folder = tmp_path / made_or_kept
        previews = Previews(tmp_path / "previews", run["manifests"].values())
        write_contact_sheets(grid, folder, previews)
        for name in ("grid-001.jpg", "grid-002.jpg"):
            assert (folder / name).read_bytes() == (again / name).read_bytes()
    assert len(list(previews.folder.iterdir())) == sum(len(r.cells) for r in grid.rows)
    assert SHEET_ROWS == 8  # the module's own value is what the workflow writes


def test_the_contact_sheets_job_draws_every_row_from_its_files(run, tmp_path, monkeypatch) -> None:
    """`contact_sheet_files` as the workflow's job calls it: the result and the sealed manifests
    read from their files, every row drawn (report.grid_rows only chooses the page's), the
    cells' previews kept in the run folder, and only previews of its own kind pruned (the
    report job keeps the page's in the same folder, at the same time)."""
    monkeypatch.setattr(grid_module, "SHEET_ROWS", 2)
    write_json(run["result"], tmp_path / "consolidated_results.json")
    paths = []
    for name, manifest in run["manifests"].items():
        paths.append(tmp_path / "manifests" / f"checkpoint_{name}.json")
        write_json(sealed(dict(manifest)), paths[-1])
    kept = Previews(previews_folder(tmp_path)).folder
    kept.mkdir(parents=True)
    (kept / f"{'0' * 64}-128-q80{PAGE}").write_bytes(b"the page's")
    (kept / f"{'1' * 64}-{SHEET_CELL}{CELL}").write_bytes(b"no image has it any more")
    written = contact_sheet_files(tmp_path / "consolidated_results.json", paths, tmp_path / "grids")
    drawn = write_contact_sheets(build_grid(run["result"], run["manifests"]), tmp_path / "here")
    assert len(written) == len(drawn) == 2  # three rows, two to a sheet
    for job, here in zip(written, drawn, strict=True):
        assert (tmp_path / job).read_bytes() == (tmp_path / here).read_bytes()
    assert sorted(p.suffix for p in kept.iterdir()) == [PAGE] + [CELL] * 12


def test_grid_context_embeds_the_rows_shown(run) -> None:
    """What render() puts in the page: the rows drawn (report.grid_rows, the run's seed), each
    cell a thumbnail, its enlarged image and a caption naming checkpoint, prompt and seed."""
    from ckpt_eval.config import validate_config
    from ckpt_eval.report.render import LARGE, THUMB, grid_context

    config = validate_config(
        {
            "run": "g",
            "real_images": "r",
            "samples": {"root": "s"},
            "prompts": "p.csv",
            "seed": 3,
            "report": {"grid_rows": 2},
        }
    )
    context = grid_context(run["result"], config, run["manifests"])
    grid = context["grid"]
    assert grid.shown == choose_rows(3, 2, 3) and len(grid.shown) == 2
    shown = context["rows"]
    assert [g["row"] for g in shown] == [grid.rows[i] for i in grid.shown]
    assert all(len(g["cells"]) == 4 for g in shown)
    row, cell = shown[0]["row"], shown[0]["cells"][0]
    for key, size in (("thumb", THUMB), ("full", LARGE)):
        data = base64.b64decode(cell[key].split(",", 1)[1])
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "JPEG" and max(image.size) <= size
    assert cell["caption"] == " · ".join(
        [BASE, row.prompt, row.which, row.cells[0].file, grid_module.score_text(row.cells[0])]
    )
