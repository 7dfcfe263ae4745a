"""Vendi score: the vertaix/Vendi-Score README's values, the limiting cases (n identical rows give
1, n orthogonal rows n), a float64 recomputation from the n x n kernel, vendi_score's and
dgm-eval's code re-implemented literally, and end to end through the registry."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from checkpoint_eval import config, evaluate_arrays, through_every_output, write_png
from scipy import linalg

from ckpt_eval.analysis.checkpoint import analysis_settings
from ckpt_eval.analysis.consolidate import csv_columns
from ckpt_eval.metrics.registry import measures, quantity
from ckpt_eval.metrics.vendi import MEASURE, vendi, vendi_from_kernel


def test_readme_precomputed_kernel_example() -> None:
    """README: `vendi.score_K(K)` for this K prints 2.1573."""
    k = np.array([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert round(vendi_from_kernel(k), 4) == 2.1573


def test_readme_similarity_function_example() -> None:
    """README: samples [0, 0, 10, 10, 20, 20] with k(a, b) = exp(-|a - b|) print 2.9999 (three
    distinct values, each twice; the off-pairs' e^-10 keep it just below 3)."""
    samples = np.array([0, 0, 10, 10, 20, 20], np.float64)
    k = np.exp(-np.abs(samples[:, None] - samples[None, :]))
    value = vendi_from_kernel(k)
    assert math.floor(value * 1e4) / 1e4 == 2.9999 and value < 3.0


@pytest.mark.parametrize(("n", "d"), [(5, 3), (3, 5), (40, 2048)])
def test_identical_rows_give_one(n: int, d: int) -> None:
    row = np.random.default_rng(n).uniform(0.1, 1.0, size=d)
    # the same direction at different lengths is the same sample for a cosine kernel
    rows = row[None, :] * np.arange(1, n + 1)[:, None]
    assert vendi(rows) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize(("n", "d"), [(4, 4), (4, 9), (32, 2048)])
def test_orthogonal_rows_give_n(n: int, d: int) -> None:
    q, _ = np.linalg.qr(np.random.default_rng(d).normal(size=(d, n)))
    rows = q.T * np.random.default_rng(1).uniform(0.5, 3.0, size=(n, 1))
    assert vendi(rows) == pytest.approx(float(n), rel=1e-9)


def _recomputed(x: np.ndarray) -> float:
    """K_ij = cos(x_i, x_j) pair by pair in Python floats, eigenvalues of K/n (scipy), then
    exp(-Σ p log p) over p > 0."""
    rows = x.tolist()
    n = len(rows)
    norms = [math.sqrt(sum(v * v for v in r)) for r in rows]
    k = np.array(
        [
            [
                sum(a * b for a, b in zip(rows[i], rows[j], strict=True)) / (norms[i] * norms[j])
                for j in range(n)
            ]
            for i in range(n)
        ]
    )
    eigenvalues = linalg.eigvalsh(k / n)
    return math.exp(-sum(p * math.log(p) for p in eigenvalues if p > 0))


@pytest.mark.parametrize(("n", "d"), [(30, 8), (12, 40), (25, 25)])
def test_float64_recomputation_both_routes(n: int, d: int) -> None:
    """d < n decomposes the d x d Gram, d >= n the n x n one: both equal the n x n kernel."""
    rng = np.random.default_rng(n * d)
    x = rng.normal(size=(n, d)) + rng.uniform(0, 2, size=d)
    value = vendi(x)
    assert value == pytest.approx(_recomputed(x), rel=1e-10)
    assert 1.0 < value < min(n, d)


# --- vendi_score and dgm-eval, literally --------------------------------------------------------


def _sk_normalize(x: np.ndarray) -> np.ndarray:
    """sklearn.preprocessing.normalize(X, axis=1): rows over their L2 norm."""
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _entropy_q(p, q=1):
    p_ = p[p > 0]
    if q == 1:
        return -(p_ * np.log(p_)).sum()
    return np.log((p_**q).sum()) / (1 - q)


def _vendi_score_dual(X, q=1, normalize=True):  # noqa: N803 (vendi_score's names)
    if normalize:
        X = _sk_normalize(X)  # noqa: N806
    n = X.shape[0]
    S = X.T @ X  # noqa: N806
    w = linalg.eigvalsh(S / n)
    return np.exp(_entropy_q(w, q=q))


def _dgm_compute_vendi_score(X, q=1, normalize=True, kernel="linear"):  # noqa: N803
    if normalize:
        X = _sk_normalize(X)  # noqa: N806
    n = X.shape[0]
    S = X @ X.T  # noqa: N806
    w = linalg.eigvalsh(S / n)
    return np.exp(_entropy_q(w, q=q))


def test_matches_vendi_score_dual_and_dgm_eval() -> None:
    rng = np.random.default_rng(5)
    for n, d in ((50, 10), (16, 64)):
        x = np.abs(rng.normal(size=(n, d)))  # non-negative, as Inception pool3 features are
        assert vendi(x) == pytest.approx(_dgm_compute_vendi_score(x), rel=1e-10)
        assert vendi(x) == pytest.approx(_vendi_score_dual(x), rel=1e-10)


def test_rejects_zero_rows_and_nan() -> None:
    with pytest.raises(ValueError, match="zero feature row"):
        vendi(np.vstack([np.ones(3), np.zeros(3)]))
    with pytest.raises(ValueError, match="NaN"):
        vendi(np.full((2, 3), np.nan))


# --- through the registry ------------------------------------------------------------------------


def _config(**extra: Any) -> dict[str, Any]:
    return config(bootstrap={"resamples": 100}, kid={"subsets": 5, "subset_size": 10}, **extra)


def test_registry_lists_both_vendi_scores() -> None:
    assert "vendi" in [m.key for m in measures()]
    for key in ("vendi", "vendi_dinov2"):
        q = quantity(key)
        assert (q.better, q.point, q.table, q.chart) == ("higher", key, "secondary", True)
        assert not (q.rankable or q.compare or q.interval)


def test_end_to_end_json_csv_charts_reports(tmp_path: Path) -> None:
    run_config = _config(dinov2={"enabled": True})
    settings = analysis_settings(run_config)
    rng = np.random.default_rng(0)
    real = np.abs(rng.normal(size=(30, 16)))
    real_dino = rng.normal(size=(30, 12))
    png = write_png(tmp_path)
    rows, replicates = [], {}
    # step-300 collapses onto a few directions: its Vendi scores fall
    for name, modes in (("step-100", 20), ("step-200", 6), ("step-300", 2)):
        centres, dino_centres = np.abs(rng.normal(size=(modes, 16))), rng.normal(size=(modes, 12))
        pick = np.arange(20) % modes
        fake = centres[pick] + 0.05 * np.abs(rng.normal(size=(20, 16)))
        dino = dino_centres[pick] + 0.05 * rng.normal(size=(20, 12))
        row, replicates[name] = evaluate_arrays(
            name,
            fake,
            real,
            settings,
            image=png,
            features={"dinov2": {"image": dino}},
            real_features={"dinov2": {"image": real_dino}},
            status={"dinov2": {"available": True, "reason": None}},
        )
        assert row["vendi"] == pytest.approx(_recomputed(fake), rel=1e-10)
        assert row["vendi_dinov2"] == pytest.approx(_recomputed(dino), rel=1e-10)
        rows.append(row)
    out = through_every_output(rows, replicates, run_config, tmp_path)
    by_name = out.by_name
    order = [by_name[n]["vendi_dinov2"] for n in ("step-100", "step-200", "step-300")]
    assert order == sorted(order, reverse=True)
    names = [c for c, _ in csv_columns()]
    assert names.index("score") < names.index("vendi") < names.index("vendi_dinov2")
    assert [float(r["vendi"]) for r in out.table] == pytest.approx(
        [by_name[n]["vendi"] for n in ("step-100", "step-200", "step-300")]
    )
    assert {"vendi", "vendi_dinov2"} <= set(out.pngs)
    for text in (out.markdown, out.html):
        assert "Vendi score (DINOv2)" in text and "effective number of distinct samples" in text
        assert "DINOv2 features (facebook/dinov2-base)" in text
    assert f"{by_name['step-100']['vendi']:.2f}" in out.markdown


def test_dinov2_off_or_unavailable_leaves_only_the_inception_score() -> None:
    settings = analysis_settings(_config())
    rng = np.random.default_rng(2)
    real, fake = np.abs(rng.normal(size=(20, 6))), np.abs(rng.normal(size=(12, 6)))
    for features, status in (
        ({}, {}),
        ({"dinov2": {}}, {"dinov2": {"available": False, "reason": "no weights"}}),
    ):
        row, _ = evaluate_arrays("step-1", fake, real, settings, features=features, status=status)
        assert row["vendi"] == pytest.approx(_recomputed(fake)) and row["vendi_dinov2"] is None
        # the unavailable model is said once, by the DINOv2 metrics, not again here
        assert not [n for n in row["notices"] if n["code"].startswith("vendi")]


def test_methodology_names_dinov2_only_when_enabled() -> None:
    ((term, text),) = MEASURE.describe(_config())
    assert term == "Vendi score" and "Inception features" in text and "DINOv2" not in text
    ((_, text),) = MEASURE.describe({**_config(), "dinov2": {"enabled": True}})
    assert "DINOv2 features" in text
