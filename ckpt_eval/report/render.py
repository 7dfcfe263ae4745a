"""Render the consolidated result as Markdown and as one self-contained HTML page.

The HTML is one file that opens from a USB stick on an offline machine: every image, chart,
style and script is inline, and its Content-Security-Policy allows no request at all (`default-src
'none'`; images only from `data:`, the one script only by its sha256). With the default
`report.grid_rows` a run of 20 checkpoints × 64 images stays under SIZE_BUDGET bytes (checked by
tests/test_render.py; its first paint is measured in bench/report_paint.py): grid thumbnails are
THUMB pixels, the enlarged view LARGE pixels, JPEG quality JPEG_QUALITY.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any

import jinja2

from ckpt_eval.analysis.bootstrap import MIN_IMAGES
from ckpt_eval.analysis.consolidate import is_sweep
from ckpt_eval.atomic import write_bytes, write_text
from ckpt_eval.features.extractors import CLIP_MAX_TOKENS
from ckpt_eval.metrics.registry import Quantity, quantities
from ckpt_eval.report.charts import metric_chart
from ckpt_eval.report.grid import build_grid, ordered_columns, score_text, sheet_files
from ckpt_eval.report.inputs import previews_folder, report_inputs
from ckpt_eval.report.previews import PAGE, Previews
from ckpt_eval.report.prose import (
    grid_text,
    insights,
    methodology,
    ranking_metrics,
    ranking_text,
    significance_notes,
    unmatched_text,
)

TEMPLATES = Path(__file__).resolve().parent / "templates"
SIZE_BUDGET = 15_000_000  # bytes of report.html for 20 checkpoints x 64 images, default config
THUMB = 128  # longest side of a thumbnail (grid, samples, close pairs)
LARGE = 320  # longest side of the enlarged view of a grid image
JPEG_QUALITY = 80


def thumbnail_uri(previews: Previews, path: str | Path, size: int = THUMB) -> str:
    """The image shrunk to `size` (aspect kept, never enlarged) as a JPEG data URI (made once
    per report and kept between runs by `previews`)."""
    data = previews.jpeg(path, size, JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


def script_hash(script: str) -> str:
    """The CSP source that lets exactly this inline script run."""
    return (
        "'sha256-"
        + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
        + "'"
    )


def charts(result: dict[str, Any]) -> dict[str, bytes]:
    """One chart per charted registry metric that some checkpoint has, named by its key."""
    chosen = result["recommendation"]["checkpoint"]
    out = {}
    for q in quantities():
        if not q.chart:
            continue
        rows = [
            {
                "name": r["name"],
                "step": r.get("step"),
                "epoch": r.get("epoch"),
                "lora_scale": r.get("lora_scale"),
                "value": q.value(r),
                "interval": q.ci(r),
            }
            for r in result["checkpoints"]
        ]
        png = metric_chart(rows, "value", q.label, q.better, "interval", chosen)
        if png is not None:
            out[q.key] = png
    return out


def shown(rows: list[dict[str, Any]], table: str) -> list[Quantity]:
    """The registry's metrics of one results table that at least one checkpoint has."""
    return [
        q for q in quantities() if q.table == table and any(q.value(r) is not None for r in rows)
    ]


def compared(rows: list[dict[str, Any]]) -> list[Quantity]:
    """The metrics whose differences the significance table shows (those compared)."""
    keys = {k for r in rows for c in (r.get("vs_top"), r.get("vs_previous")) if c for k in c}
    return [q for q in quantities() if q.key in keys]


def _md_escape(value: Any) -> str:
    """Text as Markdown (GitHub's) shows it, with no HTML entity: backslash escapes for what
    would otherwise be markup (`<` of a tag, `|` of a table cell, emphasis, code, links, an
    entity's `&`), a leading quote, heading or list marker; newlines become spaces."""
    text = "" if value is None else str(value)
    text = re.sub(r"([\\`*\[\]<|])", r"\\\1", text.replace("\n", " "))
    text = re.sub(r"&(?=#?\w+;)", r"\\&", text)
    text = re.sub(r"^(\s*)(>|[#+-](?=\s|$))", r"\1\\\2", text)
    return re.sub(r"^(\s*\d+)([.)])(?=\s|$)", r"\1\\\2", text)


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _with_ci(value: Any, ci: dict[str, float] | None, digits: int = 2) -> str:
    """`value [low, high]`, or just the value when there is no interval."""
    text = _fmt(value, digits)
    if ci and value is not None:
        text += f" [{ci['low']:.{digits}f}, {ci['high']:.{digits}f}]"
    return text


def _cell(q: Quantity, row: dict[str, Any]) -> str:
    """A metric's value in a table: with its interval, or its spread (±) where it has none."""
    value = q.value(row)
    if value is not None and q.spread and not q.ci(row) and row.get(q.spread) is not None:
        return f"{value:.{q.digits}f} ± {row[q.spread]:.{q.digits}f}"
    return _with_ci(value, q.ci(row), q.digits)


def _difference(comparison: dict[str, Any] | None, digits: int = 2) -> str:
    """A difference with its interval, starred when significant."""
    if not comparison:
        return "–"
    text = f"{comparison['difference']:+.{digits}f} [{comparison['low']:+.{digits}f}, "
    text += f"{comparison['high']:+.{digits}f}]"
    return text + (" *" if comparison["significant"] else "")


def _sortable(value: Any) -> str:
    """A table cell's sort key (its data-sort attribute): the number, or '' for none."""
    return "" if value is None or isinstance(value, bool) else repr(float(value))


def _environment(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = _fmt
    env.filters["md"] = _md_escape
    env.filters["ci"] = _with_ci
    env.filters["diff"] = _difference
    env.globals["cell"] = _cell
    env.globals["sortable"] = _sortable
    return env


def per_prompt_view(result: dict[str, Any]) -> list[dict[str, Any]]:
    """For each registry metric with per-prompt values: its prompts (in order of first
    appearance) × checkpoints (grid order), each cell that checkpoint's entry for the prompt
    (mean, std, n, t interval) or None, and its `tone` (0 = the prompt's worst mean over the
    checkpoints, 1 = its best; None when all are equal) for shading."""
    columns = ordered_columns(result)
    views = []
    for q in quantities():
        if not q.per_prompt or not any(r.get(q.per_prompt) for r in columns):
            continue
        by_column = [{p["prompt"]: p for p in r.get(q.per_prompt) or []} for r in columns]
        prompts = list(dict.fromkeys(p for entries in by_column for p in entries))
        table = []
        for prompt in prompts:
            found = [entries.get(prompt) for entries in by_column]
            means = [c["mean"] for c in found if c]
            low, high = min(means), max(means)
            cells = []
            for c in found:
                if c is None:
                    cells.append(None)
                    continue
                tone = (c["mean"] - low) / (high - low) if high > low else None
                if tone is not None and q.better == "lower":
                    tone = 1 - tone
                cells.append(dict(c, tone=tone))
            table.append({"prompt": prompt, "cells": cells})
        views.append({"quantity": q, "prompts": table})
    return views


def grid_context(
    result: dict[str, Any],
    config: dict[str, Any],
    manifests: dict[str, dict[str, Any]],
    previews: Previews | None = None,
) -> dict[str, Any]:
    """The grid's facts, with the images of its shown rows as data URIs and its sentences."""
    previews = previews or Previews(None)
    grid = build_grid(result, manifests, config["report"]["grid_rows"], config["seed"])
    names = [c.name for c in grid.columns]
    rows = []
    for index in grid.shown:
        row = grid.rows[index]
        cells = [
            {
                "cell": cell,
                "thumb": thumbnail_uri(previews, cell.path) if cell.path else None,
                "full": thumbnail_uri(previews, cell.path, LARGE) if cell.path else None,
                "scores": score_text(cell),
                "caption": " · ".join(
                    t for t in (name, row.prompt, row.which, cell.file, score_text(cell)) if t
                ),
            }
            for name, cell in zip(names, row.cells, strict=True)
        ]
        rows.append({"row": row, "cells": cells})
    return {"grid": grid, "rows": rows}


def render(
    result: dict[str, Any],
    config: dict[str, Any],
    manifests: dict[str, dict[str, Any]],
    pngs: dict[str, bytes],
    chart_files: dict[str, str],
    sheet_files: list[str] | None = None,
    previews: Previews | None = None,
) -> tuple[str, str]:
    """Markdown (charts and contact sheets as files beside it, `sheet_files`) and HTML (charts
    and images embedded, one inline script; their previews kept between runs by `previews`)."""
    previews = previews or Previews(None)
    n_thumbs = config["report"]["thumbnails"]
    thumbs = {
        name: [
            {"uri": thumbnail_uri(previews, img["path"]), "file": img["file"]}
            for img in manifest["images"][:n_thumbs]
        ]
        for name, manifest in manifests.items()
    }
    # the closest sample/real pairs side by side: the evidence a person checks by eye
    pairs = {
        row["name"]: [
            {
                **p,
                "sample_uri": thumbnail_uri(previews, p["sample_path"]),
                "real_uri": thumbnail_uri(previews, p["real_path"]),
            }
            for p in row["memorization"]["inception"]["pairs"]
        ]
        for row in result["checkpoints"]
        if row.get("memorization")
    }
    grid = grid_context(result, config, manifests, previews)
    sheets = list(sheet_files or [])
    facts = grid["grid"]
    script = (TEMPLATES / "report.js").read_text(encoding="utf-8")
    if "</" in script:  # it is pasted between <script> tags as it is
        raise ValueError("report.js must not contain '</'")
    context = {
        "result": result,
        "config": config,
        "rows": result["checkpoints"],
        "rec": result["recommendation"],
        "chart_uris": {
            k: "data:image/png;base64," + base64.b64encode(v).decode("ascii")
            for k, v in pngs.items()
        },
        "chart_files": {k: chart_files[k] for k in pngs if k in chart_files},
        "thumbs": thumbs,
        "pairs": pairs,
        "grid": facts,
        "grid_rows": grid["rows"],
        "grid_text": grid_text(
            len(facts.rows),
            len(facts.shown),
            len(facts.columns),
            facts.limit,
            facts.seed,
            sorted({(r.get("pairing") or {}).get("by") for r in result["checkpoints"]} - {None}),
            sheets,
        ),
        "unmatched_text": unmatched_text(len(facts.unmatched)),
        "sheet_files": sheets,
        "per_prompt": per_prompt_view(result),
        "script": script,
        "script_hash": script_hash(script),
        "methodology": methodology(config, result),
        "insights": insights(config, result),
        "tiers": result.get("significance", {}).get("tiers"),
        "main_metrics": shown(result["checkpoints"], "main"),
        "secondary_metrics": shown(result["checkpoints"], "secondary"),
        "compared": compared(result["checkpoints"]),
        "banded": [q for q in quantities() if q.band],
        "significance_notes": significance_notes(result, bool(config.get("generate"))),
        "sweep": is_sweep(result["checkpoints"]),
        "min_images": MIN_IMAGES,
        "max_tokens": CLIP_MAX_TOKENS,
        "ranking_used": ranking_text(
            {k: result["ranking"]["weights_used"][k] for k in ranking_metrics(result)},
            result["ranking"]["weights_used"].get("dropped", []),
        ),
    }
    markdown = _environment(False).get_template("report.md.j2").render(**context)
    html = _environment(True).get_template("report.html.j2").render(**context)
    return markdown, html


def write_charts(pngs: dict[str, bytes], folder: str | Path) -> dict[str, str]:
    """The charts as PNG files too, for the Markdown report and for people's own slides."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, png in pngs.items():
        write_bytes(folder / f"{name}.png", png)
        written[name] = f"{folder.name}/{name}.png"
    return written


def render_files(
    result_path: str,
    manifest_paths: list[str],
    config: dict[str, Any],
    out_md: str,
    out_html: str,
    plots_dir: str,
    grids_dir: str,
) -> None:
    """Both reports and the charts (`plots_dir`), linking the grid's contact sheets in
    `grids_dir` by name (the contact_sheets job draws them, `grid.contact_sheet_files`); the
    page's image previews are kept in the run folder's previews (`ckpt_eval.report.inputs`)."""
    from ckpt_eval.timing import phase

    result, manifests = report_inputs(result_path, manifest_paths)
    grid = build_grid(result, manifests, config["report"]["grid_rows"], config["seed"])
    previews = Previews(previews_folder(Path(out_md).parent), manifests.values())
    with phase("charts"):
        pngs = charts(result)
        files = write_charts(pngs, plots_dir)
    with phase("render"):
        markdown, html = render(
            result, config, manifests, pngs, files, sheet_files(grid, grids_dir), previews
        )
    write_text(out_md, markdown)
    write_text(out_html, html)
    previews.prune(PAGE)
    previews.warn_not_kept("report")
