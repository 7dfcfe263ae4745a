"""The prompt × checkpoint grid: the same prompt and seed side by side across checkpoints.

A LoRA trainer's first look at a run is kohya's or A1111's X/Y grid: one row per prompt (and
seed), one column per checkpoint. This module builds that grid as facts from the consolidated
result and the manifests, and writes it as JPEG contact sheets; `render.py` shows its rows.

- Rows are the pairing keys of `ckpt_eval.analysis.pairing` (prompt and seed, or prompt and
  position among that prompt's images): a row holds exactly the images the paired evidence pairs.
  A key that some checkpoint lacks has no row; its images are listed as unmatched, not dropped.
- Columns follow the result's order (training step), with the base-model reference first when
  there is one; the recommended column is marked.
- A cell's scores are the registry's per-image quantities (`Quantity.per_image`) that the
  checkpoint has: no metric is named here.
- The page shows at most `report.grid_rows` rows, drawn without replacement from a stream seeded
  by the run's seed (`ckpt_eval.seeding.stream`) and shown in row order; the contact sheets in
  `results/<run>/grids/` hold every row.
- The sheets are JPEG at quality 95 without chroma subsampling: their cells are 160-pixel
  previews, where that is visually lossless, and a sheet takes 9 ms to write and ~0.8 MB where
  lossless PNG took 75 ms and ~1.7 MB (bench/RESULTS.md). Every sheet gets a new column when a
  checkpoint is added, so their writing was most of the report job's time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from ckpt_eval import cpus
from ckpt_eval.analysis.pairing import pairing_keys
from ckpt_eval.atomic import atomic_write
from ckpt_eval.metrics.registry import Quantity, quantities
from ckpt_eval.report.inputs import previews_folder, report_inputs
from ckpt_eval.report.previews import CELL, Previews
from ckpt_eval.seeding import stream

SEP = "\x1f"  # pairing_keys' separator between prompt, seed/position and occurrence
SHEET_ROWS = 8  # grid rows per contact sheet (a sheet of 20 checkpoints stays a few MB)
SHEET_CELL = 160  # pixels of a contact sheet's image cell
SHEET_LABEL = 260  # pixels of a contact sheet's prompt column
SHEET_NAME = "grid-{:03d}.jpg"  # results/<run>/grids/grid-001.jpg, ... (a stable path)
SHEET_GLOB = "grid-*.jpg"  # every sheet of a grids folder (what the export sends)
SHEET_QUALITY = 95  # JPEG quality of the sheets, written without chroma subsampling
SHEET_THREADS = 4  # at most this many sheets drawn at once (fewer on fewer CPUs)


@dataclass(frozen=True)
class Column:
    name: str
    step: int | None
    epoch: int | None
    recommended: bool
    reference: bool


@dataclass(frozen=True)
class Cell:
    file: str
    path: str | None  # None without a manifest: the cell says so
    scores: tuple[tuple[Quantity, float], ...]  # the registry's per-image values it has


@dataclass(frozen=True)
class Row:
    key: str
    prompt: str
    which: str  # `seed 3`, `image 2` (with `#1` for a repeated seed)
    cells: tuple[Cell, ...]  # one per column


@dataclass(frozen=True)
class Unmatched:
    checkpoint: str
    file: str
    prompt: str
    which: str
    missing_from: tuple[str, ...]  # the checkpoints that have no image with its key


@dataclass(frozen=True)
class Grid:
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]  # every matched row, in order
    shown: tuple[int, ...]  # indices of `rows` the page shows
    unmatched: tuple[Unmatched, ...]
    seed: int
    limit: int | None  # report.grid_rows; None: every row is shown (the contact sheets)

    @property
    def shown_rows(self) -> list[Row]:
        return [self.rows[i] for i in self.shown]


def split_key(key: str) -> tuple[str, str]:
    """(prompt, `seed 3` / `image 2` / `seed 3 #1`) of a pairing key."""
    prompt, *rest = key.split(SEP)
    which = rest[0] if rest else ""
    if len(rest) > 1:
        which += f" #{rest[1]}"
    return prompt, which


def cell_quantities(rows: Sequence[Mapping[str, Any]]) -> list[Quantity]:
    """The registry's per-image quantities that some image of some checkpoint has a value of."""
    return [
        q
        for q in quantities()
        if q.per_image
        and any(img.get(q.per_image) is not None for r in rows for img in r.get("per_image", []))
    ]


def ordered_columns(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The result's checkpoints in its (step) order, the base-model reference first."""
    reference = result["recommendation"].get("reference")
    rows = list(result["checkpoints"])
    return [r for r in rows if r["name"] == reference] + [r for r in rows if r["name"] != reference]


def choose_rows(n: int, limit: int | None, seed: int) -> tuple[int, ...]:
    """`limit` of `n` row indices, drawn reproducibly from `seed`, in row order (all if n <=
    limit, or with no limit)."""
    if limit is None or n <= limit:
        return tuple(range(n))
    drawn = stream(seed, "report grid rows").choice(n, size=limit, replace=False)
    return tuple(sorted(int(i) for i in drawn))


def build_grid(
    result: Mapping[str, Any],
    manifests: Mapping[str, Mapping[str, Any]],
    limit: int | None = None,
    seed: int = 0,
) -> Grid:
    """The grid of `result`'s checkpoints; image paths come from their manifests. The page
    shows `limit` rows drawn with `seed`; without a limit, every row."""
    rows = ordered_columns(result)
    reference = result["recommendation"].get("reference")
    chosen = result["recommendation"].get("checkpoint")
    columns = tuple(
        Column(
            r["name"], r.get("step"), r.get("epoch"), r["name"] == chosen, r["name"] == reference
        )
        for r in rows
    )
    scored = cell_quantities(rows)
    cells: list[dict[str, Cell]] = []
    order: dict[str, int] = {}  # key -> first appearance over the columns, in their order
    for r in rows:
        # a checkpoint's manifest gives its image files (a test may render without them)
        images = (manifests.get(r["name"]) or {}).get("images", [])
        paths = {img["file"]: img["path"] for img in images}
        keyed = {}
        for key, img in zip(pairing_keys(r["per_image"]), r["per_image"], strict=True):
            scores = tuple(
                (q, float(img[q.per_image])) for q in scored if img.get(q.per_image) is not None
            )
            keyed[key] = Cell(img["file"], paths.get(img["file"]), scores)
            order.setdefault(key, len(order))
        cells.append(keyed)
    # rows grouped by prompt (in the order prompts first appear), then seed or position
    prompt_order: dict[str, int] = {}
    for key in order:
        prompt_order.setdefault(split_key(key)[0], len(prompt_order))
    keys = sorted(order, key=lambda k: (prompt_order[split_key(k)[0]], order[k]))
    matched = [k for k in keys if all(k in c for c in cells)]
    grid_rows = tuple(Row(k, *split_key(k), tuple(c[k] for c in cells)) for k in matched)
    unmatched = []
    for column, keyed in zip(columns, cells, strict=True):
        for key, cell in keyed.items():
            lacking = tuple(c.name for c, o in zip(columns, cells, strict=True) if key not in o)
            if lacking:
                unmatched.append(Unmatched(column.name, cell.file, *split_key(key), lacking))
    return Grid(
        columns,
        grid_rows,
        choose_rows(len(grid_rows), limit, seed),
        tuple(unmatched),
        seed,
        limit,
    )


# --- contact sheets ------------------------------------------------------------------------------


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int, lines: int) -> list[str]:
    """`text` in at most `lines` lines of at most `width` pixels (the last one cut with …)."""
    words, out, line = text.split(), [], ""
    for word in words:
        candidate = f"{line} {word}".strip()
        if draw.textlength(candidate, font=font) <= width:
            line = candidate
            continue
        if line:
            out.append(line)
        line = word
    if line:
        out.append(line)
    if len(out) > lines:
        out = out[:lines]
        out[-1] = out[-1] + " …"
    cut = []
    for text_line in out:
        while draw.textlength(text_line, font=font) > width and len(text_line) > 1:
            text_line = text_line[:-2] + "…"
        cut.append(text_line)
    return cut


def score_text(cell: Cell) -> str:
    """The cell's scores as one line, e.g. `CLIP score 31.20 · PickScore 21.03`."""
    return " · ".join(f"{q.label} {value:.{q.digits}f}" for q, value in cell.scores)


def contact_sheet(grid: Grid, rows: Sequence[Row], previews: Previews | None = None) -> Image.Image:
    """One page of the grid: a header of checkpoints, a prompt column, one image per cell
    (shrunk to SHEET_CELL, aspect kept, kept between runs by `previews`) with its scores
    below."""
    previews = previews or Previews(None)
    pad, cell = 6, SHEET_CELL
    small, normal = ImageFont.load_default(11), ImageFont.load_default(13)
    score_lines = 2 if any(c.scores for r in rows for c in r.cells) else 0
    row_height = cell + pad + score_lines * 13 + pad
    header = 44
    width = SHEET_LABEL + len(grid.columns) * (cell + pad) + pad
    height = header + len(rows) * row_height + pad
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    for j, column in enumerate(grid.columns):
        x = SHEET_LABEL + j * (cell + pad)
        mark = (
            " (recommended)" if column.recommended else " (base model)" if column.reference else ""
        )
        colour = "#047857" if column.recommended else "#111827"
        for i, line in enumerate(_wrap(draw, column.name + mark, normal, cell, 2)):
            draw.text((x, pad + i * 16), line, fill=colour, font=normal)
    for i, row in enumerate(rows):
        y = header + i * row_height
        draw.line([(0, y - 2), (width, y - 2)], fill="#e5e7eb")
        label = _wrap(draw, row.prompt, normal, SHEET_LABEL - 2 * pad, 6)
        for k, line in enumerate([*label, row.which]):
            draw.text(
                (pad, y + k * 16),
                line,
                fill="#111827" if k < len(label) else "#6b7280",
                font=normal,
            )
        for j, c in enumerate(row.cells):
            x = SHEET_LABEL + j * (cell + pad)
            if c.path:
                sheet.paste(previews.cell(c.path, cell), (x, y))
            else:
                draw.rectangle([x, y, x + cell - 1, y + cell - 1], outline="#9ca3af")
                draw.text((x + pad, y + pad), "no image file", fill="#6b7280", font=small)
            words = [f"{q.label} {v:.{q.digits}f}" for q, v in c.scores]
            text = _wrap(draw, "  ".join(words), small, cell, score_lines) if words else []
            for k, line in enumerate(text):
                draw.text((x, y + cell + 2 + k * 13), line, fill="#374151", font=small)
    return sheet


def sheet_pages(grid: Grid) -> list[Sequence[Row]]:
    """Every matched row, SHEET_ROWS to a sheet."""
    return [grid.rows[start : start + SHEET_ROWS] for start in range(0, len(grid.rows), SHEET_ROWS)]


def sheet_files(grid: Grid, folder: str | Path) -> list[str]:
    """The sheets' names as the reports link them (relative to the run folder,
    `grids/grid-001.jpg`), known before any is drawn."""
    return [
        f"{Path(folder).name}/{SHEET_NAME.format(n + 1)}" for n in range(len(sheet_pages(grid)))
    ]


def write_contact_sheets(
    grid: Grid, folder: str | Path, previews: Previews | None = None
) -> list[str]:
    """Every matched row in sheets of SHEET_ROWS rows, `grid-001.jpg`, ...; their
    `sheet_files` names in order. Stale sheets are removed (the PNG sheets of earlier versions
    too)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in [*folder.glob(SHEET_GLOB), *folder.glob("grid-*.png")]:
        old.unlink()
    pages = sheet_pages(grid)

    def write(number: int) -> None:
        with atomic_write(folder / SHEET_NAME.format(number + 1), "wb") as handle:
            contact_sheet(grid, pages[number], previews).save(
                handle, format="JPEG", quality=SHEET_QUALITY, subsampling=0
            )

    # Each sheet is drawn on its own (the same bytes in any order); PIL decodes, shrinks and
    # compresses without the GIL, so on two CPUs the sheets take about half the time.
    with ThreadPoolExecutor(max_workers=max(1, min(SHEET_THREADS, cpus.available()))) as pool:
        list(pool.map(write, range(len(pages))))
    return sheet_files(grid, folder)


def contact_sheet_files(
    result_path: str | Path, manifest_paths: Sequence[str | Path], grids_dir: str | Path
) -> list[str]:
    """The contact_sheets job: every row of the grid in `grids_dir`, each cell's preview kept
    in the run folder's previews (`ckpt_eval.report.inputs`). A job of its own beside the
    report's: the page only links the sheets by name, so on two CPUs they are drawn while the
    page is made."""
    from ckpt_eval.timing import phase

    result, manifests = report_inputs(result_path, manifest_paths)
    previews = Previews(previews_folder(Path(grids_dir).parent), manifests.values())
    with phase("grids"):
        written = write_contact_sheets(build_grid(result, manifests), grids_dir, previews)
    previews.prune(CELL)
    previews.warn_not_kept("contact sheets")
    return written
