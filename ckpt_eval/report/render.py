"""Render the consolidated result as Markdown and as one self-contained HTML page."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import jinja2
from PIL import Image

from ckpt_eval.analysis.bootstrap import MIN_IMAGES
from ckpt_eval.analysis.consolidate import is_sweep
from ckpt_eval.atomic import write_bytes, write_text
from ckpt_eval.features.extractors import CLIP_MAX_TOKENS
from ckpt_eval.inputs.images import load_rgb
from ckpt_eval.metrics.registry import Quantity, quantities
from ckpt_eval.report.charts import metric_chart
from ckpt_eval.report.prose import (
    insights,
    methodology,
    ranking_metrics,
    ranking_text,
    significance_notes,
)

TEMPLATES = Path(__file__).resolve().parent / "templates"


def thumbnail_uri(path: str | Path, size: int = 128) -> str:
    image = Image.fromarray(load_rgb(path))
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


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
    text = "" if value is None else str(value)
    for char, repl in (("\\", "\\\\"), ("|", "\\|"), ("<", "&lt;"), (">", "&gt;"), ("\n", " ")):
        text = text.replace(char, repl)
    return text


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
    return env


def render(
    result: dict[str, Any],
    config: dict[str, Any],
    manifests: dict[str, dict[str, Any]],
    pngs: dict[str, bytes],
    chart_files: dict[str, str],
) -> tuple[str, str]:
    """Markdown (charts as files beside it) and HTML (charts and thumbnails embedded)."""
    n_thumbs = config["report"]["thumbnails"]
    thumbs = {
        name: [
            {"uri": thumbnail_uri(img["path"]), "file": img["file"]}
            for img in manifest["images"][:n_thumbs]
        ]
        for name, manifest in manifests.items()
    }
    # the closest sample/real pairs side by side: the evidence a person checks by eye
    pairs = {
        row["name"]: [
            {
                **p,
                "sample_uri": thumbnail_uri(p["sample_path"]),
                "real_uri": thumbnail_uri(p["real_path"]),
            }
            for p in row["memorization"]["inception"]["pairs"]
        ]
        for row in result["checkpoints"]
        if row.get("memorization")
    }
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
        "methodology": methodology(config, result),
        "insights": insights(config, result),
        "tiers": result.get("significance", {}).get("tiers"),
        "main_metrics": shown(result["checkpoints"], "main"),
        "secondary_metrics": shown(result["checkpoints"], "secondary"),
        "compared": compared(result["checkpoints"]),
        "banded": [q for q in quantities() if q.band],
        "per_prompt_metrics": [q for q in quantities() if q.per_prompt],
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
) -> None:
    from ckpt_eval.inputs.manifest import read_manifest
    from ckpt_eval.jsonio import read_json
    from ckpt_eval.timing import phase

    result = read_json(result_path)
    manifests = {m["name"]: m for m in (read_manifest(p) for p in manifest_paths)}
    with phase("charts"):
        pngs = charts(result)
        files = write_charts(pngs, plots_dir)
    with phase("render"):
        markdown, html = render(result, config, manifests, pngs, files)
    write_text(out_md, markdown)
    write_text(out_html, html)
