"""Render the consolidated result as Markdown and as one self-contained HTML page."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import jinja2
from PIL import Image

from ckpt_eval.analysis.consolidate import flat_row
from ckpt_eval.inputs.images import load_rgb
from ckpt_eval.report.charts import metric_chart
from ckpt_eval.report.prose import insights, methodology

TEMPLATES = Path(__file__).resolve().parent / "templates"

# (file name, key in a checkpoint's row, label, which way is better, error bars: interval key)
CHARTS = [
    ("fid", "fid", "FID", "lower", "fid_ci"),
    ("kid", "kid_mean", "KID", "lower", "kid_ci"),
    ("clip", "clip_score_mean", "CLIP score", "higher", "clip_ci"),
    ("precision", "precision", "Precision", "higher", None),
    ("recall", "recall", "Recall", "higher", None),
    ("memorization", "memorization_share", "Share of near copies", "lower", None),
]


def thumbnail_uri(path: str | Path, size: int = 128) -> str:
    image = Image.fromarray(load_rgb(path))
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def charts(result: dict[str, Any]) -> dict[str, bytes]:
    rows = [flat_row(r) for r in result["checkpoints"]]
    chosen = result["recommendation"]["checkpoint"]
    out = {}
    for name, key, label, better, err in CHARTS:
        png = metric_chart(rows, key, label, better, err, chosen)
        if png is not None:
            out[name] = png
    return out


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
        (folder / f"{name}.png").write_bytes(png)
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
    from ckpt_eval.jsonio import read_json

    result = read_json(result_path)
    manifests = {m["name"]: m for m in (read_json(p) for p in manifest_paths)}
    pngs = charts(result)
    files = write_charts(pngs, plots_dir)
    markdown, html = render(result, config, manifests, pngs, files)
    Path(out_md).write_text(markdown, encoding="utf-8")
    Path(out_html).write_text(html, encoding="utf-8")
