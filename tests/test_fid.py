"""FID from feature statistics, checked against independent references.

References: a float64 scipy ``sqrtm`` computation (the textbook formula), clean-fid's own
``frechet_distance``, and the closed form for Gaussians whose covariances commute.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from cleanfid.fid import frechet_distance as cleanfid_frechet_distance
from references import fid_from_features

from ckpt_eval.metrics.fid import frechet_distance, statistics

RTOL = 1e-6

# clean-fid passes scipy's deprecated `disp` argument; not our concern here.
IGNORE_DISP = pytest.mark.filterwarnings("ignore:The `disp` argument:DeprecationWarning")


def _sqrtm_fid(mu1, sigma1, mu2, sigma2) -> float:
    """The textbook formula: |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 S2)), real part."""
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean).real)


def _feature_sets(d: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two differently distributed sets: shifted and mixed by a random matrix."""
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n, d))
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    fake = rng.normal(0.3, 1.2, size=(n, d)) @ mix
    return real, fake


def _stats_pair(d: int, n: int, seed: int):
    real, fake = _feature_sets(d, n, seed)
    return (*statistics(real), *statistics(fake))


# d=2048 with N=100 takes > 20 s in scipy's sqrtm here, so the large rank-deficient case is
# d=1024 (rank 99 out of 1024, the same regime as the real 2048-d features with few images).
CASES = [
    pytest.param(64, 500, id="full-rank-d64-n500"),
    pytest.param(256, 40, id="rank-deficient-d256-n40"),
    pytest.param(1024, 100, id="rank-deficient-d1024-n100"),
]


@pytest.mark.parametrize(("d", "n"), CASES)
def test_matches_scipy_sqrtm(d: int, n: int) -> None:
    stats = _stats_pair(d, n, seed=d + n)
    expected = _sqrtm_fid(*stats)
    assert expected > 1.0  # the sets differ, so a meaningful, non-trivial distance
    assert frechet_distance(*stats) == pytest.approx(expected, rel=RTOL)


@IGNORE_DISP
@pytest.mark.parametrize(("d", "n"), CASES[:2])
def test_matches_cleanfid(d: int, n: int) -> None:
    stats = _stats_pair(d, n, seed=7 * d + n)
    expected = float(cleanfid_frechet_distance(*stats))
    assert frechet_distance(*stats) == pytest.approx(expected, rel=RTOL)


@IGNORE_DISP
def test_fid_from_features_matches_cleanfid_on_raw_features() -> None:
    real, fake = _feature_sets(32, 200, seed=3)
    mu1, sigma1 = np.mean(real, axis=0), np.cov(real, rowvar=False)
    mu2, sigma2 = np.mean(fake, axis=0), np.cov(fake, rowvar=False)
    expected = float(cleanfid_frechet_distance(mu1, sigma1, mu2, sigma2))
    assert fid_from_features(real, fake) == pytest.approx(expected, rel=RTOL)


def test_closed_form_diagonal_covariances() -> None:
    rng = np.random.default_rng(11)
    d = 50
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    a, b = rng.uniform(0.1, 5.0, size=d), rng.uniform(0.1, 5.0, size=d)
    expected = float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_closed_form_commuting_rotated_covariances() -> None:
    """Q diag(a) Q^T and Q diag(b) Q^T commute: same closed form, but dense matrices."""
    rng = np.random.default_rng(12)
    d = 40
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    a, b = rng.uniform(0.1, 5.0, size=d), rng.uniform(0.1, 5.0, size=d)
    a[:10] = 0.0  # rank-deficient too
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = (q * a) @ q.T, (q * b) @ q.T
    expected = float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_one_dimensional_closed_form() -> None:
    # N(1, 4) vs N(4, 9): (1 - 4)^2 + (2 - 3)^2 = 10
    value = frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([4.0]), np.array([[9.0]]))
    assert value == pytest.approx(10.0, rel=1e-12)


@pytest.mark.parametrize(("d", "n"), [(16, 200), (256, 40)])
def test_identical_sets_give_zero(d: int, n: int) -> None:
    features, _ = _feature_sets(d, n, seed=5)
    mu, sigma = statistics(features)
    scale = float(np.trace(sigma))
    value = fid_from_features(features, features.copy())
    assert value >= 0.0
    assert value <= 1e-9 * scale


def test_mean_shift_only() -> None:
    """Same covariance, shifted mean: FID is exactly |shift|^2."""
    features, _ = _feature_sets(20, 300, seed=6)
    shift = np.linspace(-1.0, 1.0, 20)
    assert fid_from_features(features, features + shift) == pytest.approx(
        float(shift @ shift), rel=1e-8
    )


def test_statistics_match_numpy_float64() -> None:
    rng = np.random.default_rng(8)
    x = rng.normal(size=(30, 12)).astype(np.float32)
    mu, sigma = statistics(x)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mu, np.mean(x64, axis=0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(sigma, np.cov(x64, rowvar=False, ddof=1), rtol=1e-12, atol=1e-15)
    # unbiased (N - 1) covariance, written out
    centred = x64 - x64.mean(axis=0)
    np.testing.assert_allclose(sigma, centred.T @ centred / (len(x64) - 1), rtol=1e-10)


@pytest.mark.parametrize(
    "bad", [np.zeros((1, 8)), np.zeros((0, 8)), np.zeros(8), np.zeros((2, 3, 4))]
)
def test_statistics_rejects_fewer_than_two_or_wrong_shape(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        statistics(bad)


def test_statistics_accepts_two() -> None:
    mu, sigma = statistics(np.array([[0.0, 2.0], [2.0, 0.0]]))
    np.testing.assert_allclose(mu, [1.0, 1.0])
    np.testing.assert_allclose(sigma, [[2.0, -2.0], [-2.0, 2.0]])


@pytest.mark.parametrize(("n_real", "n_fake"), [(100, 40), (60, 40), (3000, 200)])
def test_rank_deficient_fid_equals_the_nuclear_norm_form(n_real: int, n_fake: int) -> None:
    """With centred rows A, B (C1 = A^T A, C2 = B^T B), tr sqrt(C1 C2) is the sum of the singular
    values of the small matrix A B^T: an exact reference when N < 2048 makes the covariances
    singular, where sqrtm is itself inaccurate. Rounding noise in the zero eigenvalues used to
    add ~3e-8 relative; now the two agree to float64 precision."""
    rng = np.random.default_rng(n_real)
    real = rng.gamma(2.0, 1.0, size=(n_real, 2048))
    fake = rng.gamma(2.2, 0.9, size=(n_fake, 2048))
    a = (real - real.mean(0)) / np.sqrt(n_real - 1)
    b = (fake - fake.mean(0)) / np.sqrt(n_fake - 1)
    diff = real.mean(0) - fake.mean(0)
    nuclear = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    expected = diff @ diff + (a * a).sum() + (b * b).sum() - 2.0 * nuclear
    assert fid_from_features(real, fake) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(("n_real", "n_fake", "d"), [(300, 200, 2048), (40, 8, 16), (50, 30, 64)])
def test_fid_to_rows_equals_fid_of_their_statistics(n_real: int, n_fake: int, d: int) -> None:
    """The N x N route a checkpoint's FID takes when N <= d gives the d x d route's value."""
    from ckpt_eval.metrics.fid import fid_replicates, frechet_distance_to_rows

    rng = np.random.default_rng(d)
    real = rng.gamma(2.0, 0.3, size=(n_real, d))
    fake = rng.gamma(2.1, 0.3, size=(n_fake, d)).astype(np.float32)
    stats = statistics(real)
    value = frechet_distance_to_rows(*stats, fake)
    assert value == pytest.approx(frechet_distance(*stats, *statistics(fake)), rel=1e-9)
    assert value == pytest.approx(fid_replicates(*stats, fake, np.ones((1, n_fake)))[0], rel=1e-12)


def test_fid_to_rows_with_more_rows_than_dimensions_is_the_usual_route() -> None:
    from ckpt_eval.metrics.fid import frechet_distance_to_rows

    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(40, 6)), rng.normal(0.5, 1.0, size=(30, 6))
    stats = statistics(real)
    assert frechet_distance_to_rows(*stats, fake) == frechet_distance(*stats, *statistics(fake))
