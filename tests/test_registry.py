"""The metric registry: every metric declared once, and a new metric is one module.

The proof of the second claim: a metric module written to a temporary folder on the metrics
package's path (nothing else edited) is evaluated, bootstrapped, compared between checkpoints,
ranked on, written to the CSV, charted, and shown in both renderings of the report.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from checkpoint_eval import config, evaluate_arrays, through_every_output, write_png

import ckpt_eval.metrics as metrics_package
from ckpt_eval.analysis.checkpoint import analysis_settings
from ckpt_eval.analysis.consolidate import csv_columns
from ckpt_eval.metrics import registry
from ckpt_eval.metrics.registry import lookup, measures, quantities, quantity
from ckpt_eval.report.prose import NOTICES, notice_text

TOY = textwrap.dedent(
    '''
    """Mean squared feature norm of the samples: a toy metric, declared in one module."""

    import numpy as np

    from ckpt_eval.metrics.registry import Measure, Notice, Outcome, Quantity, mean_replicates


    def _norms(data):
        return (np.asarray(data.fake, np.float64) ** 2).sum(axis=1)


    def _compute(data):
        return Outcome(
            {"toy_norm": float(_norms(data).mean())},
            notices=[Notice("toy.seen", {"n": data.n})],
        )


    MEASURE = Measure(
        key="toy",
        order=35,
        quantities=(
            Quantity(
                key="toy",
                label="Toy norm",
                better="lower",
                point="toy_norm",
                interval="toy_ci",
                compare=True,
                rankable=True,
            ),
        ),
        compute=_compute,
        replicates=lambda data, counts: {"toy": mean_replicates(_norms(data), counts)},
        describe=lambda config: [("Toy norm", "the mean squared feature norm.")],
        notices={"toy.seen": "The toy metric saw {n} images."},
    )
    '''
)


def test_the_registry_holds_every_metric_once() -> None:
    keys = [m.key for m in measures()]
    assert keys == [
        "fid",
        "kid",
        "clip",
        "cmmd",
        "dinov2",
        "pickscore",
        "prdc",
        "vendi",
        "memorization",
        "fid_infinity",
    ]
    qkeys = [q.key for q in quantities()]
    assert len(qkeys) == len(set(qkeys))
    # exactly one anchor (what a ranked checkpoint must have) and one overfitting metric
    assert [q.key for q in quantities() if q.anchor] == ["fid"]
    assert [q.key for q in quantities() if q.overfitting] == ["fid"]
    assert {q.key for q in quantities() if q.rankable} == {
        "fid",
        "kid",
        "clip",
        "cmmd",
        "fd_dinov2",
        "kd_dinov2",
        "pickscore",
    }
    # every notice code has exactly one template
    codes = [c for m in measures() for c in m.notices]
    assert len(codes) == len(set(codes)) and not set(codes) & set(NOTICES)
    with pytest.raises(KeyError, match="no metric 'nope'"):
        quantity("nope")


def test_lookup_follows_dotted_paths() -> None:
    row = {"a": {"b": {"c": 1.5}}, "x": None}
    assert lookup(row, "a.b.c") == 1.5
    assert lookup(row, "a.missing") is None
    assert lookup(row, "x.y") is None
    assert lookup(row, None) is None


def _config() -> dict[str, Any]:
    return config(bootstrap={"resamples": 200}, ranking={"weights": {"fid": 0.5, "toy": 0.5}})


@pytest.fixture
def toy_metric(tmp_path: Path):
    """The toy module on the metrics package's path, the registry re-read, then undone."""
    folder = tmp_path / "extra_metrics"
    folder.mkdir()
    (folder / "toy_norm.py").write_text(TOY, encoding="utf-8")
    metrics_package.__path__.append(str(folder))
    registry.measures.cache_clear()
    yield
    metrics_package.__path__.remove(str(folder))
    sys.modules.pop("ckpt_eval.metrics.toy_norm", None)
    registry.measures.cache_clear()


def test_a_new_metric_is_one_module(toy_metric, tmp_path: Path) -> None:
    assert [m.key for m in measures()][:4] == ["fid", "kid", "clip", "toy"]
    run_config = _config()
    settings = analysis_settings(run_config)
    rng = np.random.default_rng(0)
    real = rng.normal(size=(30, 8))
    png = write_png(tmp_path)
    rows, replicates = [], {}
    # the toy norm grows with the scale of the samples: step-100 best, step-300 worst
    for name, scale in (("step-100", 1.0), ("step-200", 1.6), ("step-300", 2.4)):
        fake = rng.normal(size=(20, 8)) * scale
        row, reps = evaluate_arrays(name, fake, real, settings, image=png)
        # the value is the module's formula, its interval the module's replicates
        assert row["toy_norm"] == pytest.approx(float((fake**2).sum(axis=1).mean()))
        assert row["toy_ci"]["low"] < row["toy_norm"] < row["toy_ci"]["high"]
        assert "toy" in reps and len(reps["toy"]) == 200
        assert {"code": "toy.seen", "n": 20} in row["notices"]
        assert "The toy metric saw 20 images." in row["warnings"]
        rows.append(row)
        replicates[name] = reps
    out = through_every_output(rows, replicates, run_config, tmp_path)
    by_name = out.by_name
    # ranked on, compared, tiered: the toy metric takes part in the decision
    assert out.result["ranking"]["weights_used"]["metrics"] == ["fid", "toy"]
    assert set(by_name["step-300"]["vs_top"]) == {"fid", "kid", "toy"}
    assert by_name["step-300"]["vs_top"]["toy"]["significant"]
    assert out.result["recommendation"]["metrics"] == ["fid", "toy"]
    # the CSV has its columns, in the main block and with its interval
    names = [c for c, _ in csv_columns()]
    assert names.index("toy") < names.index("score") < names.index("toy_ci_low")
    assert [float(r["toy"]) for r in out.table] == pytest.approx(
        [by_name[n]["toy_norm"] for n in ("step-100", "step-200", "step-300")]
    )
    # charted, and shown in both renderings with its methodology entry
    assert "toy" in out.pngs and out.pngs["toy"].startswith(b"\x89PNG")
    for text in (out.markdown, out.html):
        assert "Toy norm" in text and "Toy norm − top" in text
        assert "the mean squared feature norm." in text
    assert f"{by_name['step-100']['toy_norm']:.2f}" in out.markdown
    assert notice_text({"code": "toy.seen", "n": 3}) == "The toy metric saw 3 images."


def test_the_toy_metric_is_gone_after_the_fixture() -> None:
    assert "toy" not in [m.key for m in measures()]
