"""metric_chart: PNG bytes of a metric against step (or epoch, or order), reproducibly."""

from __future__ import annotations

import io
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

import ckpt_eval.report.charts as plots
from ckpt_eval.report.charts import metric_chart

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _rows() -> list[dict[str, Any]]:
    return [
        {
            "name": "step-100",
            "step": 100,
            "epoch": None,
            "fid": 40.0,
            "kid_mean": 0.04,
            "kid_std": 0.01,
        },
        {
            "name": "step-300",
            "step": 300,
            "epoch": None,
            "fid": 25.0,
            "kid_mean": 0.02,
            "kid_std": None,
        },
        {
            "name": "step-200",
            "step": 200,
            "epoch": None,
            "fid": None,
            "kid_mean": None,
            "kid_std": None,
        },
        {
            "name": "step-400",
            "step": 400,
            "epoch": None,
            "fid": 30.0,
            "kid_mean": 0.03,
            "kid_std": 0.005,
        },
    ]


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The (figure, axes) pairs metric_chart draws on, kept for inspection after it is done."""
    made: list[Any] = []

    class Recording(plots.Figure):
        def subplots(self, *args, **kwargs):
            ax = super().subplots(*args, **kwargs)
            made.append((self, ax))
            return ax

    monkeypatch.setattr(plots, "Figure", Recording)
    return made


def test_png_bytes_for_rows_with_steps(figures: list[Any]) -> None:
    png = metric_chart(_rows(), "fid", "FID", "lower", None, "step-300")
    assert isinstance(png, bytes) and png.startswith(PNG_MAGIC)
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        assert image.size == (640, 340)  # figsize 6.4 x 3.4 at 100 dpi
    ((fig, ax),) = figures
    assert ax.get_xlabel() == "training step"
    assert ax.get_ylabel() == "FID (lower is better)"
    assert ax.get_title() == "FID per checkpoint"
    # the row without a value is left out; the others keep their order and step
    line = ax.lines[0]
    assert line.get_xdata().tolist() == [100, 300, 400]
    assert line.get_ydata().tolist() == [40.0, 25.0, 30.0]
    # the recommended checkpoint is ringed at its own point, and named in the legend
    rings = [ln for ln in ax.lines if ln.get_label() == "recommended"]
    assert len(rings) == 1
    assert rings[0].get_xdata().tolist() == [300] and rings[0].get_ydata().tolist() == [25.0]
    legend = ax.get_legend()
    assert legend is not None and [t.get_text() for t in legend.get_texts()] == ["recommended"]
    # a figure of its own, not pyplot's: nothing pyplot keeps across many charts
    assert fig.canvas.figure is fig and plt.get_fignums() == []


def test_error_bars_from_err_key(figures: list[Any]) -> None:
    metric_chart(_rows(), "kid_mean", "KID", "lower", "kid_std", None)
    ((_, ax),) = figures
    # the vertical error bars span y ± std; a missing std is drawn as 0
    segments = [seg for coll in ax.collections for seg in coll.get_segments()]
    spans = sorted((float(s[0][1]), float(s[1][1])) for s in segments)
    expected = sorted([(0.03, 0.05), (0.02, 0.02), (0.025, 0.035)])
    np.testing.assert_allclose(spans, expected)
    assert ax.get_legend() is None  # nothing highlighted


def test_none_when_nothing_to_plot() -> None:
    rows = _rows()
    assert metric_chart(rows, "clip_score_mean", "CLIP score", "higher") is None
    assert metric_chart([], "fid", "FID", "lower") is None
    assert metric_chart([dict(r, fid=None) for r in rows], "fid", "FID", "lower") is None


def test_x_falls_back_to_epochs(figures: list[Any]) -> None:
    rows = [
        {"name": "e000001", "step": None, "epoch": 1, "fid": 30.0},
        {"name": "e000004", "step": None, "epoch": 4, "fid": 20.0},
    ]
    assert metric_chart(rows, "fid", "FID", "lower").startswith(PNG_MAGIC)
    ((_, ax),) = figures
    assert ax.get_xlabel() == "epoch"
    assert ax.lines[0].get_xdata().tolist() == [1, 4]


def test_x_falls_back_to_order(figures: list[Any]) -> None:
    # one checkpoint has neither step nor epoch, so neither axis is meaningful for all
    rows = [
        {"name": "step-100", "step": 100, "epoch": None, "fid": 30.0},
        {"name": "e000002", "step": None, "epoch": 2, "fid": 25.0},
        {"name": "final", "step": None, "epoch": None, "fid": 20.0},
    ]
    assert metric_chart(rows, "fid", "FID", "lower", None, "final").startswith(PNG_MAGIC)
    ((_, ax),) = figures
    assert ax.get_xlabel() == "checkpoint (in order)"
    assert ax.lines[0].get_xdata().tolist() == [1, 2, 3]
    ring = [ln for ln in ax.lines if ln.get_label() == "recommended"][0]
    assert ring.get_xdata().tolist() == [3]


def test_deterministic_bytes() -> None:
    first = metric_chart(_rows(), "fid", "FID", "lower", None, "step-300")
    second = metric_chart(_rows(), "fid", "FID", "lower", None, "step-300")
    assert first == second
    # and the bytes do depend on the data and the highlight
    assert metric_chart(_rows(), "fid", "FID", "lower", None, "step-100") != first
    changed = _rows()
    changed[0]["fid"] = 41.0
    assert metric_chart(changed, "fid", "FID", "lower", None, "step-300") != first
    # no creation time or software version in the file
    assert b"Software" not in first and b"matplotlib" not in first.lower()


def test_a_strength_sweep_draws_one_line_per_scale(figures: list[Any]) -> None:
    rows = [{"name": "base-step-000000", "step": 0, "epoch": None, "fid": 50.0}] + [
        {
            "name": f"step-{step}@{scale}",
            "step": step,
            "epoch": None,
            "lora_scale": scale,
            "fid": fid,
        }
        for step, scale, fid in [
            (100, 0.5, 40.0),
            (100, 1.0, 35.0),
            (200, 0.5, 30.0),
            (200, 1.0, 38.0),
        ]
    ]
    metric_chart(rows, "fid", "FID", "lower", None, "step-200@0.5")
    ((_, ax),) = figures
    lines = {c.get_label(): c.lines[0] for c in ax.containers}  # one errorbar per scale
    assert lines["base model"].get_xdata().tolist() == [0]
    assert lines["LoRA scale 0.5"].get_xdata().tolist() == [100, 200]
    assert lines["LoRA scale 0.5"].get_ydata().tolist() == [40.0, 30.0]
    assert lines["LoRA scale 1.0"].get_ydata().tolist() == [35.0, 38.0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(labels) == ["LoRA scale 0.5", "LoRA scale 1.0", "base model", "recommended"]
    # the chart is still the metric's (a line's label must not become the title)
    assert ax.get_title() == "FID per checkpoint"
    assert ax.get_ylabel() == "FID (lower is better)"


def test_intervals_are_drawn_as_a_band(figures: list[Any]) -> None:
    rows = _rows()
    rows[0]["fid_ci"] = {"low": 35.0, "high": 47.0, "level": 0.95}
    rows[1]["fid_ci"] = {"low": 20.0, "high": 31.0, "level": 0.95}
    rows[3]["fid_ci"] = None  # too few images: a point on the line, outside the band
    metric_chart(rows, "fid", "FID", "lower", "fid_ci", "step-300")
    ((_, ax),) = figures
    (band,) = ax.collections
    vertices = band.get_paths()[0].vertices
    # the band's outline runs along the interval ends at steps 100 and 300
    for x, low, high in ((100, 35.0, 47.0), (300, 20.0, 31.0)):
        ys = {float(y) for vx, y in vertices if vx == x}
        assert {low, high} <= ys
    assert {float(vx) for vx, _ in vertices} == {100.0, 300.0}
    line = ax.lines[0]
    assert line.get_xdata().tolist() == [100, 300, 400]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["95% interval", "recommended"]
