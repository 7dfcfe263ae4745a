"""Metric-versus-step charts as PNG bytes, to be embedded in the self-contained report, with each
metric's interval as a band."""

from __future__ import annotations

import io
from typing import Any

# a Figure of its own, not pyplot's: no GUI backend, no global figure state, and ~0.2 s less
# to import (pyplot's backend machinery) in the report job, which is on the path of every run
from matplotlib.figure import Figure

from ckpt_eval.inputs.steps import scale_text


def _x(rows: list[dict[str, Any]]) -> tuple[list[float], str]:
    if all(r.get("step") is not None for r in rows):
        return [r["step"] for r in rows], "training step"
    if all(r.get("epoch") is not None for r in rows):
        return [r["epoch"] for r in rows], "epoch"
    return list(range(1, len(rows) + 1)), "checkpoint (in order)"


def _error_bar(value: float, err: Any) -> tuple[float, float]:
    """(below, above) the value: an interval's ends, a symmetric error, or none."""
    if isinstance(err, dict):
        return max(value - err["low"], 0.0), max(err["high"] - value, 0.0)
    return (err or 0.0, err or 0.0)


def metric_chart(
    rows: list[dict[str, Any]],
    key: str,
    label: str,
    better: str,
    err_key: str | None = None,
    highlight: str | None = None,
) -> bytes | None:
    """One metric against step; the recommended checkpoint is ringed. None if nothing to plot.
    Rows with a `lora_scale` (a strength sweep) are drawn as one line per scale.

    `err_key` names either an interval (a dict with `low`, `high` and `level`, e.g. a bootstrap
    interval), drawn as a shaded band between its ends, or a symmetric error (a number, e.g. a
    std), drawn as error bars. A band is drawn over the checkpoints that have an interval; a
    checkpoint without one (too few images) is a point on the line, outside the band.
    """
    points = [r for r in rows if r.get(key) is not None]
    if not points:
        return None
    xs, xlabel = _x(points)
    ys = [r[key] for r in points]
    fig = Figure(figsize=(6.4, 3.4), dpi=100)
    ax = fig.subplots()
    scales = sorted({r["lora_scale"] for r in points if r.get("lora_scale") is not None})
    # a LoRA strength sweep: one line per scale (the rows without one, the base model, as
    # their own points); otherwise the one line of the checkpoints
    groups = [None, *scales] if scales else [None]
    banded = False
    for number, scale in enumerate(groups):
        members = [i for i, r in enumerate(points) if r.get("lora_scale") == scale]
        if not members:
            continue
        gx, gy = [xs[i] for i in members], [ys[i] for i in members]
        errs = [points[i].get(err_key) for i in members] if err_key else []
        intervals = [(x, e) for x, e in zip(gx, errs, strict=False) if isinstance(e, dict)]
        style: dict[str, Any] = {"color": "#2563eb"}
        band = "#93c5fd"
        if scales:  # (`label` stays the metric's: the title and axis name it)
            line = "base model" if scale is None else f"LoRA scale {scale_text(scale)}"
            style = {"color": f"C{number}", "label": line}
            band = f"C{number}"
        if intervals:
            level = intervals[0][1].get("level")
            name = f"{100 * level:.0f}% interval" if level else "interval"
            ax.fill_between(
                [x for x, _ in intervals],
                [e["low"] for _, e in intervals],
                [e["high"] for _, e in intervals],
                color=band,
                alpha=0.45 if not scales else 0.2,
                linewidth=0,
                label=None if banded else name,
            )
            banded = True
            ax.plot(gx, gy, marker="o", **style)
        else:
            yerr = None
            if err_key:
                bars = [_error_bar(y, e) for y, e in zip(gy, errs, strict=True)]
                yerr = [[e[0] for e in bars], [e[1] for e in bars]]
            ax.errorbar(gx, gy, yerr=yerr, marker="o", capsize=3, **style)
    for x, y, r in zip(xs, ys, points, strict=True):
        if r["name"] == highlight:
            ax.plot(
                [x],
                [y],
                marker="o",
                markersize=14,
                markerfacecolor="none",
                markeredgecolor="#dc2626",
                markeredgewidth=2,
                label="recommended",
            )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{label} ({better} is better)")
    ax.set_title(f"{label} per checkpoint")
    ax.grid(alpha=0.3)
    if scales or banded or highlight in {r["name"] for r in points}:
        ax.legend(loc="best")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})  # drawn by Agg, for PNG
    return buffer.getvalue()
