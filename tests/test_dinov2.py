"""FD-DINOv2, KD-DINOv2 and the nearest-real similarity: against dgm-eval's formulas
re-implemented literally (`dgm_eval/metrics/fd.py`, `mmd.py`), float64 recomputations, the
replicates against explicit recomputation on the resampled rows, and end to end through the
registry.

dgm-eval's README values (CIFAR-10 train vs test, 512 samples: FD 862.53745, KD 0.01095) need
its DINOv2 ViT-L/14 features of those images, which cannot be made here (no weights, no
network); what is checked is that the formulas are the same, so the same features would give
the same numbers (to float32 rounding and the subsets' seeds).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from checkpoint_eval import (
    checkpoint_from_arrays,
    config,
    evaluate_arrays,
    evaluate_small,
    through_every_output,
    write_png,
)
from scipy import linalg

from ckpt_eval.analysis.bootstrap import resample_counts
from ckpt_eval.analysis.checkpoint import analysis_settings
from ckpt_eval.analysis.consolidate import csv_columns
from ckpt_eval.metrics.dinov2 import MEASURE
from ckpt_eval.metrics.fid import frechet_distance, frechet_distance_to_rows, statistics
from ckpt_eval.metrics.kid import kid, kid_replicates
from ckpt_eval.metrics.registry import measures, quantity


def _features(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """DINOv2-like CLS features: a shared offset (never near zero), correlated dimensions."""
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(99).normal(size=(d, d)) / np.sqrt(d)
    return 2.0 + shift + rng.normal(size=(n, d)) @ mix * (1.0 + 0.3 * shift)


# --- dgm-eval, re-implemented literally (numpy + scipy; sklearn's polynomial_kernel inlined) ----


def _dgm_compute_statistics(reps):
    mu = np.mean(reps, axis=0)
    sigma = np.cov(reps, rowvar=False)
    mu = np.atleast_1d(mu)
    sigma = np.atleast_2d(sigma)
    return mu, sigma


def _dgm_compute_fd_with_stats(mu1, mu2, sigma1, sigma2, eps=1e-6):
    """dgm-eval's FD as written (scipy's sqrtm of the product, with its `disp` argument)."""
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError("Imaginary component")
        covmean = covmean.real
    tr_covmean = np.trace(covmean)
    mean_term = diff.dot(diff)
    tr1, tr2 = np.trace(sigma1), np.trace(sigma2)
    cov_term = tr1 + tr2 - 2 * tr_covmean
    return mean_term + cov_term


def _dgm_compute_fd_with_reps(reps1, reps2):
    mu1, sigma1 = _dgm_compute_statistics(reps1)
    mu2, sigma2 = _dgm_compute_statistics(reps2)
    return _dgm_compute_fd_with_stats(mu1, mu2, sigma1, sigma2)


def _dgm_efficient_fd_with_reps(reps1, reps2):
    mu1, sigma1 = _dgm_compute_statistics(reps1)
    mu2, sigma2 = _dgm_compute_statistics(reps2)
    sqrt_trace = np.real(linalg.eigvals(sigma1 @ sigma2) ** 0.5).sum()
    return ((mu1 - mu2) ** 2).sum() + sigma1.trace() + sigma2.trace() - 2 * sqrt_trace


def _sklearn_polynomial_kernel(X, Y=None, degree=3, gamma=None, coef0=1):
    """sklearn.metrics.pairwise.polynomial_kernel: (gamma <X, Y> + coef0)^degree, gamma 1/d."""
    Y = X if Y is None else Y
    gamma = 1.0 / X.shape[1] if gamma is None else gamma
    return (X @ Y.T * gamma + coef0) ** degree


def _dgm_mmd2_and_variance(K_XX, K_XY, K_YY):  # noqa: N803 (dgm-eval's names)
    m = K_XX.shape[0]
    diag_X = np.diagonal(K_XX)
    diag_Y = np.diagonal(K_YY)
    Kt_XX_sums = K_XX.sum(axis=1) - diag_X
    Kt_YY_sums = K_YY.sum(axis=1) - diag_Y
    K_XY_sums_0 = K_XY.sum(axis=0)
    Kt_XX_sum = Kt_XX_sums.sum()
    Kt_YY_sum = Kt_YY_sums.sum()
    K_XY_sum = K_XY_sums_0.sum()
    mmd2 = (Kt_XX_sum + Kt_YY_sum) / (m * (m - 1))
    mmd2 -= 2 * K_XY_sum / (m * m)
    return mmd2


def _dgm_compute_polynomial_mmd(feat_r, feat_gen, degree=3, gamma=None, coef0=1):
    X, Y = feat_r, feat_gen  # noqa: N806
    K_XX = _sklearn_polynomial_kernel(X, degree=degree, gamma=gamma, coef0=coef0)  # noqa: N806
    K_YY = _sklearn_polynomial_kernel(Y, degree=degree, gamma=gamma, coef0=coef0)  # noqa: N806
    K_XY = _sklearn_polynomial_kernel(X, Y, degree=degree, gamma=gamma, coef0=coef0)  # noqa: N806
    return _dgm_mmd2_and_variance(K_XX, K_XY, K_YY)


def _dgm_compute_mmd(feat_real, feat_gen, n_subsets=100, subset_size=1000, choice=None):
    """compute_mmd, with `choice` injected (dgm-eval uses the global np.random.choice)."""
    m = min(feat_real.shape[0], feat_gen.shape[0])
    subset_size = min(subset_size, m)
    mmds = np.zeros(n_subsets)
    for i in range(n_subsets):
        g = feat_real[choice(len(feat_real), subset_size, replace=False)]
        r = feat_gen[choice(len(feat_gen), subset_size, replace=False)]
        mmds[i] = _dgm_compute_polynomial_mmd(g, r)
    return mmds


# --- the statistics ------------------------------------------------------------------------------


SQRTM_DISP = "ignore:The `disp` argument is deprecated:DeprecationWarning"


@pytest.mark.filterwarnings(SQRTM_DISP)
def test_fd_matches_dgm_eval_at_full_rank() -> None:
    real = _features(300, 16, seed=1)
    fake = _features(120, 16, seed=2, shift=0.4)
    ours = frechet_distance_to_rows(*statistics(real), fake)
    assert ours == pytest.approx(_dgm_compute_fd_with_reps(real, fake), rel=1e-9)
    assert ours == pytest.approx(_dgm_efficient_fd_with_reps(real, fake), rel=1e-9)
    assert ours > 1.0


@pytest.mark.filterwarnings(SQRTM_DISP)
def test_fd_at_32_images_matches_the_float64_d_by_d_route() -> None:
    """32 samples in 64 dimensions: rank 31. Ours equals the two-covariance route (symmetric
    eigendecompositions); dgm-eval's sqrtm agrees only loosely there, which is why fid.py
    avoids it."""
    real = _features(200, 64, seed=3)
    fake = _features(32, 64, seed=4, shift=0.3)
    ours = frechet_distance_to_rows(*statistics(real), fake)
    assert ours == pytest.approx(frechet_distance(*statistics(real), *statistics(fake)), rel=1e-9)
    assert ours == pytest.approx(_dgm_compute_fd_with_reps(real, fake), rel=1e-4)


@pytest.mark.parametrize(("n_real", "n_fake", "subset_size"), [(40, 25, 1000), (60, 30, 12)])
def test_kd_matches_dgm_eval_compute_mmd_on_the_same_subsets(
    n_real: int, n_fake: int, subset_size: int
) -> None:
    """dgm-eval's loop fed the same draws as ours (its `choice` is our seeded generator's):
    the same 100 values, so the same mean and std."""
    real = _features(n_real, 24, seed=5)
    fake = _features(n_fake, 24, seed=6, shift=0.5)
    ours = kid(real, fake, 100, subset_size, seed=7)
    theirs = _dgm_compute_mmd(real, fake, 100, subset_size, np.random.default_rng(7).choice)
    assert ours.mean == pytest.approx(theirs.mean(), rel=1e-10)
    assert ours.std == pytest.approx(theirs.std(), rel=1e-8)
    assert ours.subset_size == min(subset_size, n_fake)
    assert ours.mean > 0.01


def _cosine_nearest_loop(fake: np.ndarray, real: np.ndarray) -> list[float]:
    out = []
    for s in fake.tolist():
        best = -2.0
        for r in real.tolist():
            dot = sum(a * b for a, b in zip(s, r, strict=True))
            norm = math.sqrt(sum(a * a for a in s)) * math.sqrt(sum(b * b for b in r))
            best = max(best, dot / norm)
        out.append(best)
    return out


# --- through the registry ------------------------------------------------------------------------


def _config(**extra: Any) -> dict[str, Any]:
    return config(
        bootstrap={"resamples": 200},
        kid={"subsets": 20, "subset_size": 1000},
        ranking={"weights": {"fid": 0.4, "kd_dinov2": 0.3, "fd_dinov2": 0.3}},
        **extra,
    )


OK = {"dinov2": {"available": True, "reason": None, "truncated": []}}


def test_registry_lists_the_dinov2_quantities() -> None:
    assert "dinov2" in [m.key for m in measures()]
    fd, kd, near = (quantity(k) for k in ("fd_dinov2", "kd_dinov2", "dino_nearest"))
    assert (fd.better, fd.interval, fd.compare, fd.rankable) == (
        "lower",
        "fd_dinov2_ci",
        True,
        True,
    )
    assert (kd.better, kd.interval, kd.digits, kd.compare, kd.rankable) == (
        "lower",
        "kd_dinov2_ci",
        4,
        True,
        True,
    )
    assert (near.better, near.table, near.rankable, near.compare) == (
        "higher",
        "secondary",
        False,
        False,
    )


def test_end_to_end_json_csv_charts_reports(tmp_path: Path) -> None:
    run_config = _config(dinov2={"enabled": True})
    settings = analysis_settings(run_config)
    rng = np.random.default_rng(0)
    real = rng.normal(size=(30, 8))
    real_dino = _features(40, 12, seed=10)
    png = write_png(tmp_path)
    rows, replicates = [], {}
    for name, shift in (("step-100", 0.0), ("step-200", 0.6), ("step-300", 1.2)):
        fake = rng.normal(size=(24, 8))
        dino = _features(24, 12, seed=11 + int(10 * shift), shift=shift)
        row, reps = evaluate_arrays(
            name,
            fake,
            real,
            settings,
            image=png,
            prompts=[f"prompt {k % 4}" for k in range(24)],
            features={"dinov2": {"image": dino}},
            real_features={"dinov2": {"image": real_dino}},
            status=OK,
        )
        # the values are FID's, KID's and the brute-force nearest cosine on these features
        assert row["fd_dinov2"] == pytest.approx(
            frechet_distance(*statistics(real_dino), *statistics(dino)), rel=1e-9
        )
        k = kid(real_dino, dino, 20, 1000, seed=0)
        assert (row["kd_dinov2_mean"], row["kd_dinov2_std"]) == pytest.approx((k.mean, k.std))
        assert (row["kd_dinov2_subsets"], row["kd_dinov2_subset_size"]) == (20, 24)
        nearest = _cosine_nearest_loop(dino, real_dino)
        assert [r["dino_nearest"] for r in row["per_image"]] == pytest.approx(nearest, rel=1e-12)
        assert row["dino_nearest"] == pytest.approx(np.mean(nearest), rel=1e-12)
        for key in ("fd_dinov2", "kd_dinov2", "dino_nearest"):
            assert len(reps[key]) == 200
        assert row["fd_dinov2_ci"]["low"] < row["fd_dinov2"] < row["fd_dinov2_ci"]["high"]
        assert row["kd_dinov2_ci"]["low"] < row["kd_dinov2_mean"] < row["kd_dinov2_ci"]["high"]
        assert row["dino_nearest_ci"]["low"] < row["dino_nearest"] < row["dino_nearest_ci"]["high"]
        assert not [n for n in row["notices"] if n["code"].startswith("dinov2")]
        rows.append(row)
        replicates[name] = reps
    out = through_every_output(rows, replicates, run_config, tmp_path)
    by_name = out.by_name
    assert out.result["ranking"]["weights_used"]["metrics"] == ["fid", "kd_dinov2", "fd_dinov2"]
    top = by_name["step-300"]["vs_top"]
    assert {"fd_dinov2", "kd_dinov2"} <= set(top) and "dino_nearest" not in top
    assert top["kd_dinov2"]["significant"] and top["fd_dinov2"]["significant"]
    names = [c for c, _ in csv_columns()]
    for column in ("fd_dinov2", "kd_dinov2_mean", "kd_dinov2_std", "dino_nearest"):
        assert column in names
    assert names.index("kd_dinov2_mean") < names.index("score") < names.index("dino_nearest")
    assert [float(r["kd_dinov2_mean"]) for r in out.table] == pytest.approx(
        [by_name[n]["kd_dinov2_mean"] for n in ("step-100", "step-200", "step-300")]
    )
    assert {"fd_dinov2", "kd_dinov2", "dino_nearest"} <= set(out.pngs)
    for text in (out.markdown, out.html):
        for label in ("FD-DINOv2", "KD-DINOv2", "DINOv2 nearest-real similarity"):
            assert label in text
        assert "FD-DINOv2 − top" in text and "facebook/dinov2-base" in text
    assert f"{by_name['step-100']['kd_dinov2_mean']:.4f}" in out.markdown
    assert f"{by_name['step-100']['dino_nearest']:.3f}" in out.markdown


def _explicit_kd(real: np.ndarray, rows: np.ndarray, source: np.ndarray) -> float:
    """The complete unbiased MMD² over the resampled rows, pairs of copies left out, one pair
    at a time."""

    def k(a, b) -> float:
        return (float(a @ b) / len(a) + 1.0) ** 3

    n = len(real)
    within_real = sum(k(real[i], real[j]) for i, j in itertools.permutations(range(n), 2))
    pairs = [(p, q) for p in range(len(rows)) for q in range(len(rows)) if source[p] != source[q]]
    within_fake = sum(k(rows[p], rows[q]) for p, q in pairs) / len(pairs)
    cross = sum(k(r, y) for r in real for y in rows) / (n * len(rows))
    return within_real / (n * (n - 1)) + within_fake - 2.0 * cross


def test_replicates_equal_recomputation_on_the_resampled_rows() -> None:
    real_dino = _features(15, 6, seed=20)
    dino = _features(12, 6, seed=21, shift=0.5)
    rng = np.random.default_rng(1)
    fake = rng.normal(size=(12, 4))
    data, _ = checkpoint_from_arrays(
        "step-1",
        fake,
        rng.normal(size=(20, 4)),
        analysis_settings(_config()),
        features={"dinov2": {"image": dino}},
        real_features={"dinov2": {"image": real_dino}},
        status=OK,
    )
    counts = resample_counts(12, 6, np.random.default_rng(2))
    reps = MEASURE.replicates(data, counts)
    stats = statistics(real_dino)
    for b, c in enumerate(counts.astype(int)):
        source = np.repeat(np.arange(12), c)
        rows = dino[source]
        assert reps["fd_dinov2"][b] == pytest.approx(
            frechet_distance(*stats, *statistics(rows)), rel=1e-8
        )
        assert reps["kd_dinov2"][b] == pytest.approx(
            _explicit_kd(real_dino, rows, source), rel=1e-9
        )
        assert reps["dino_nearest"][b] == pytest.approx(
            np.mean(_cosine_nearest_loop(rows, real_dino)), rel=1e-12
        )
    np.testing.assert_allclose(reps["kd_dinov2"], kid_replicates(real_dino, dino, counts))


def _one(status, features, real_features):
    settings = analysis_settings(_config())
    return evaluate_small(
        settings, 3, status=status, features=features, real_features=real_features
    )


def test_off_is_quiet_and_unavailable_says_why() -> None:
    keys = ("fd_dinov2", "kd_dinov2_mean", "kd_dinov2_std", "dino_nearest")
    intervals = ("fd_dinov2_ci", "kd_dinov2_ci", "dino_nearest_ci")
    row, reps = _one({}, {}, {})
    assert all(row[k] is None for k in keys + intervals)
    assert not set(reps) & {"fd_dinov2", "kd_dinov2", "dino_nearest"}
    assert not [n for n in row["notices"] if n["code"].startswith("dinov2")]
    assert all("dino_nearest" not in r for r in row["per_image"])

    reason = "facebook/dinov2-base is not in the local cache and the hub is unreachable"
    row, reps = _one({"dinov2": {"available": False, "reason": reason}}, {"dinov2": {}}, {})
    assert all(row[k] is None for k in keys + intervals)
    assert not set(reps) & {"fd_dinov2", "kd_dinov2", "dino_nearest"}
    assert {"code": "dinov2.unavailable", "reason": reason} in row["notices"]
    assert any(w.endswith(f"not computed: {reason}.") for w in row["warnings"])
    assert all(r["dino_nearest"] is None for r in row["per_image"])


def test_methodology_only_when_enabled() -> None:
    assert MEASURE.describe(_config()) == []
    entries = MEASURE.describe({**_config(), "dinov2": {"enabled": True}})
    assert [t for t, _ in entries] == [
        "FD-DINOv2",
        "KD-DINOv2",
        "DINOv2 nearest-real similarity",
    ]
    text = " ".join(d for _, d in entries)
    assert "facebook/dinov2-base" in text and "20 seeded random subsets" in text
