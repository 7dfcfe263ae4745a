"""Metric-versus-step charts as PNG bytes, to be embedded in the self-contained report."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ckpt_eval.inputs.steps import scale_text  # noqa: E402


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

    `err_key` names either a symmetric error (a number, e.g. a std) or an interval (a dict with
    `low` and `high`, e.g. a bootstrap interval), drawn as asymmetric error bars.
    """
    points = [r for r in rows if r.get(key) is not None]
    if not points:
        return None
    xs, xlabel = _x(points)
    ys = [r[key] for r in points]
    fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=100)
    scales = sorted({r["lora_scale"] for r in points if r.get("lora_scale") is not None})
    # a LoRA strength sweep: one line per scale (the rows without one, the base model, as
    # their own points); otherwise the one line of the checkpoints
    groups = [None, *scales] if scales else [None]
    for number, scale in enumerate(groups):
        members = [i for i, r in enumerate(points) if r.get("lora_scale") == scale]
        if not members:
            continue
        errs = None
        if err_key:
            bars = [_error_bar(points[i][key], points[i].get(err_key)) for i in members]
            errs = [[e[0] for e in bars], [e[1] for e in bars]]
        style: dict[str, Any] = {"color": "#2563eb"}
        if scales:  # (`label` stays the metric's: the title and axis name it)
            line = "base model" if scale is None else f"LoRA scale {scale_text(scale)}"
            style = {"color": f"C{number}", "label": line}
        ax.errorbar(
            [xs[i] for i in members],
            [ys[i] for i in members],
            yerr=errs,
            marker="o",
            capsize=3,
            **style,
        )
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
    if scales or highlight in {r["name"] for r in points}:
        ax.legend(loc="best")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()
