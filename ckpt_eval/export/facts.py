"""What every tracker exports, decided once: scalars at each checkpoint's training step, the
recommendation, and the images (the prompt x checkpoint grids, then the report's charts).

Every scalar comes from the metrics registry (`quantities()`: each point estimate, and the ends
of its bootstrap interval where it has one) plus the ranking's `score` and `rank`; no metric
is named here, so a new metric module is exported without a change to this file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ckpt_eval.inputs.steps import scale_text, split_candidate
from ckpt_eval.jsonio import read_json
from ckpt_eval.metrics.registry import quantities
from ckpt_eval.report.grid import SHEET_GLOB
from ckpt_eval.report.prose import recommendation_summary

PREFIX = "ckpt-eval/"
# the ranking's own numbers, exported beside the metrics (results schema: every row has them)
RANKING_FIELDS = ("score", "rank")


@dataclass(frozen=True)
class Point:
    """One checkpoint's scalars at its position on the training axis."""

    checkpoint: str
    step: int
    scalars: dict[str, float]


@dataclass(frozen=True)
class ExportFacts:
    run: str
    axis: str  # "step", or "epoch" when no checkpoint has a step
    points: tuple[Point, ...]  # in training order (several at one step in a strength sweep)
    skipped: tuple[str, ...]  # checkpoints with no position on the axis: no scalars
    recommendation: dict[str, Any]  # checkpoint, step, summary, reasons
    images: tuple[tuple[str, Path], ...]  # (tag, image file: JPEG sheets, PNG charts)
    result_path: Path

    @property
    def last_step(self) -> int:
        """Where the run-level items (recommendation, images) go: the latest checkpoint."""
        return max((p.step for p in self.points), default=0)

    def markdown(self) -> str:
        """The recommendation as Markdown: its one-line summary, then its reasons."""
        reasons = "\n".join(f"- {r}" for r in self.recommendation["reasons"])
        return f"**{self.recommendation['summary']}**\n\n{reasons}\n"

    def record(self) -> dict[str, Any]:
        """What was exported, for `export/<tracker>/export.json`."""
        return {
            "run": self.run,
            "axis": self.axis,
            "steps": {p.checkpoint: p.step for p in self.points},
            "scalars": sorted({t for p in self.points for t in p.scalars}),
            "skipped": list(self.skipped),
            "recommendation": self.recommendation["checkpoint"],
            "images": [tag for tag, _ in self.images],
        }


def series(name: str) -> str:
    """The tags' prefix of a candidate: `ckpt-eval/`, or in a LoRA strength sweep
    `ckpt-eval/scale-0.8/` for `step-100@0.8`, so each scale is its own curve over the steps
    (no tracker allows `@` in a name: MLflow's metric names are letters, digits, `_-. /`)."""
    scale = split_candidate(name)[1]
    return PREFIX if scale is None else f"{PREFIX}scale-{scale_text(scale)}/"


def scalars(row: dict[str, Any]) -> dict[str, float]:
    """A checkpoint's scalars: every registry quantity it has, with its interval's ends."""
    out: dict[str, float] = {}
    prefix = series(row["name"])
    for q in quantities():
        value = q.value(row)
        if value is not None:
            out[f"{prefix}{q.key}"] = value
        ci = q.ci(row)
        if ci:
            out[f"{prefix}{q.key}_ci_low"] = ci["low"]
            out[f"{prefix}{q.key}_ci_high"] = ci["high"]
    for name in RANKING_FIELDS:
        if row.get(name) is not None:
            out[f"{prefix}{name}"] = row[name]
    return {k: float(v) for k, v in out.items() if math.isfinite(float(v))}


def images(grids_dir: str | Path, plots_dir: str | Path) -> tuple[tuple[str, Path], ...]:
    """The grids' contact sheets (results/<run>/grids/grid-*.jpg, when the report has them) and
    the charts (results/<run>/plots/*.png), tagged `grids/<name>` and `charts/<name>`."""
    found = []
    for kind, folder, pattern in (
        ("grids", Path(grids_dir), SHEET_GLOB),
        ("charts", Path(plots_dir), "*.png"),
    ):
        if folder.is_dir():
            found += [(f"{kind}/{p.stem}", p) for p in sorted(folder.glob(pattern))]
    return tuple(found)


def export_facts(
    result_path: str | Path, grids_dir: str | Path, plots_dir: str | Path
) -> ExportFacts:
    """The facts of consolidated_results.json. The axis is the training step; a run whose
    checkpoints are named by epoch only is exported at its epochs; a checkpoint with neither
    (e.g. `final`) has no place on the axis and is listed in `skipped`."""
    result = read_json(result_path)
    rows = result["checkpoints"]
    axis = "step" if any(r.get("step") is not None for r in rows) else "epoch"
    points, skipped = [], []
    for row in rows:
        position = row.get(axis)
        if position is None:
            skipped.append(row["name"])
        else:
            points.append(Point(row["name"], int(position), scalars(row)))
    rec = result["recommendation"]
    return ExportFacts(
        run=result["run"],
        axis=axis,
        points=tuple(sorted(points, key=lambda p: p.step)),
        skipped=tuple(skipped),
        recommendation={
            "checkpoint": rec.get("checkpoint"),
            "step": rec.get("step"),
            "summary": recommendation_summary(result),
            "reasons": list(rec.get("reasons") or []),
        },
        images=images(grids_dir, plots_dir),
        result_path=Path(result_path),
    )
