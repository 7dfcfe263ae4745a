"""Precision, recall, density and coverage, checked against the papers' definitions written out.

The reference below computes every distance directly (scipy ``cdist``, float64, no expanded
formula) and every radius by sorting a point's distances to the *other* points, dropped by
index. The four numbers are ratios of counts, so on data without distance ties they must agree
exactly. torch-fidelity's feature-level precision/recall (same `<=` rule) is a second reference.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from torch_fidelity.metric_prc import prc_features_to_metric

from ckpt_eval.metrics.prdc import (
    DEFAULT_CHUNK,
    PrdcResult,
    _error_bound,
    _formula_sq,
    _knn_sq_radii,
    _refine,
    _row_ids,
    prdc,
)


# The library's distance and radius steps as prdc() composes them, with their checks
def pairwise_sq_distances(
    a: np.ndarray, b: np.ndarray, a_sq: np.ndarray, b_sq: np.ndarray
) -> np.ndarray:
    """Squared Euclidean distances (len(a) x len(b)), given the rows' squared norms; >= 0.

    Entries within the formula's error bound of 0 are recomputed directly, so equal rows are at
    exactly 0 (the formula alone can leave 1e-9 there for large features).
    """
    d = _formula_sq(a, b, a_sq, b_sq)
    _refine(d, a, b, d <= 2.0 * _error_bound(a_sq, b_sq))
    return d


def knn_sq_radii(x: np.ndarray, k: int, chunk_size: int = DEFAULT_CHUNK) -> np.ndarray:
    """Squared distance from each row of x to its k-th nearest other row (float64, length N).

    The row's own entry is excluded by index rather than by its value, because the formula can
    leave a tiny positive self-distance that would otherwise be taken as a neighbour. Entries
    within the error bound of the k-th value are recomputed directly before it is taken again, so
    the radius is the directly computed distance to the k-th neighbour (0 for a point present
    k+1 times), whatever the chunking.
    """
    n = len(x)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k >= n:
        raise ValueError(f"k={k} nearest neighbours need at least k+1={k + 1} points, got {n}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    (ids,) = _row_ids(x)
    return _knn_sq_radii(x, k, chunk_size, ids)


def _reference(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float, float, float]:
    """Kynkäänniemi et al. 2019 and Naeem et al. 2020 as stated, with closed balls (`<=`)."""
    x, y = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    n, m = len(x), len(y)

    def radii(z: np.ndarray) -> np.ndarray:
        dist = cdist(z, z)
        # k-th nearest *other* point: drop the point itself by index, keep its duplicates.
        return np.array([np.sort(np.delete(dist[i], i))[k - 1] for i in range(len(z))])

    r_real, r_fake = radii(x), radii(y)
    d_fake_real = cdist(y, x)  # d_fake_real[j, i] = d(y_j, x_i)
    precision = sum(any(d_fake_real[j, i] <= r_real[i] for i in range(n)) for j in range(m)) / m
    recall = sum(any(d_fake_real[j, i] <= r_fake[j] for j in range(m)) for i in range(n)) / n
    density = sum(int(d_fake_real[j, i] <= r_real[i]) for j in range(m) for i in range(n)) / (k * m)
    coverage = sum(any(d_fake_real[j, i] <= r_real[i] for j in range(m)) for i in range(n)) / n
    return precision, recall, density, coverage


def _numbers(result: PrdcResult) -> tuple[float, float, float, float]:
    return result.precision, result.recall, result.density, result.coverage


def _sets(n: int, m: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Samples half near a third of the real points (a partial mode collapse), half off to one
    side: precision, recall and coverage all fall strictly between 0 and 1."""
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n, d))
    near = real[rng.integers(0, max(n // 3, 1), m // 2)] + rng.normal(0, 0.3, size=(m // 2, d))
    off = rng.normal(1.0, 0.8, size=(m - m // 2, d))
    return real, np.concatenate([near, off])


def _inception_like(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """Non-negative, far from the origin (like pool3 features): the hard case for cancellation."""
    return np.abs(rng.normal(size=(n, d))) * rng.uniform(0.5, 50.0, size=d) + 10.0


def test_reference_on_a_hand_computed_case() -> None:
    """Guard for the reference, worked by hand in 1-D with k = 1 (all values exact in float64).

    real {-31, 0, 1, 3, 7}: radii 31, 1, 1, 2, 4; fake {0.5, 2, 6, 20}: radii 1.5, 1.5, 4, 14.
    precision: 0.5, 2 (on the boundary of B(1, 1)), 6 are in some real ball: 3/4.
    recall: all real points but -31 are in some fake ball: 4/5.
    density: 0.5 in B(0), B(1); 2 in B(1), B(3); 6 in B(7): 5 / (1 * 4).
    coverage: the balls of 0, 1, 3, 7 hold a fake point, the ball [-62, 0] of -31 does not: 4/5.
    """
    real = np.array([[-31.0], [0.0], [1.0], [3.0], [7.0]])
    fake = np.array([[0.5], [2.0], [6.0], [20.0]])
    expected = (0.75, 0.8, 1.25, 0.8)
    assert _reference(real, fake, k=1) == expected
    assert _numbers(prdc(real, fake, k=1)) == expected


@pytest.mark.parametrize(
    ("n", "m", "d", "k", "seed"),
    [
        (40, 30, 2, 1, 0),
        (60, 80, 8, 3, 1),
        (120, 50, 32, 5, 2),
        (75, 75, 64, 7, 3),
        (30, 90, 256, 5, 4),
    ],
)
def test_matches_brute_force_definitions(n: int, m: int, d: int, k: int, seed: int) -> None:
    real, fake = _sets(n, m, d, seed)
    expected = _reference(real, fake, k)
    result = prdc(real, fake, k)
    assert _numbers(result) == pytest.approx(expected, rel=0, abs=1e-12)
    assert all(0.0 < expected[i] < 1.0 for i in (0, 1, 3))  # not a comparison of extremes
    assert (result.k, result.n_real, result.n_fake, result.n_real_total) == (k, n, m, n)
    assert result.real_subsample_seed is None


@pytest.mark.parametrize(("n", "m", "d", "k", "seed"), [(80, 60, 2048, 5, 5), (50, 70, 16, 3, 6)])
def test_matches_brute_force_on_inception_like_features(
    n: int, m: int, d: int, k: int, seed: int
) -> None:
    """Large non-negative features: the expanded-formula distances must still agree exactly."""
    rng = np.random.default_rng(seed)
    real = _inception_like(n, d, rng)
    fake = real[rng.integers(0, n, m)] * rng.uniform(0.9, 1.1, size=(m, d))
    expected = _reference(real, fake, k)
    assert _numbers(prdc(real, fake, k)) == pytest.approx(expected, rel=0, abs=1e-12)
    assert 0.0 < expected[0] and 0.0 < expected[3]


@pytest.mark.parametrize(("n", "m", "d", "k"), [(50, 40, 8, 3), (90, 120, 64, 5), (30, 30, 2, 1)])
@pytest.mark.parametrize("save_cpu_ram", [False, True])
def test_precision_recall_match_torch_fidelity(
    n: int, m: int, d: int, k: int, save_cpu_ram: bool
) -> None:
    """torch-fidelity: features_1 is generated, features_2 real; its neighbourhood is our k."""
    real, fake = _sets(n, m, d, seed=10 * n + d)
    reference = prc_features_to_metric(
        torch.from_numpy(fake),
        torch.from_numpy(real),
        prc_neighborhood=k,
        prc_batch_size=17,  # exercise its batched paths too
        save_cpu_ram=save_cpu_ram,
        verbose=False,
    )
    result = prdc(real, fake, k)
    # torch-fidelity averages in float32: equal to ours to well under one count (1/m, 1/n).
    assert result.precision == pytest.approx(reference["precision"], abs=1e-6)
    assert result.recall == pytest.approx(reference["recall"], abs=1e-6)
    assert 0.0 < result.precision < 1.0 and 0.0 < result.recall < 1.0


@pytest.mark.parametrize("chunk_size", [1, 2, 7, 33, 10_000])
def test_independent_of_chunk_size(chunk_size: int) -> None:
    real, fake = _sets(70, 45, 12, seed=20)
    whole = prdc(real, fake, 4)
    assert prdc(real, fake, 4, chunk_size=chunk_size) == whole
    np.testing.assert_array_equal(
        knn_sq_radii(real, 4, chunk_size=chunk_size), knn_sq_radii(real, 4, chunk_size=10_000)
    )


def test_knn_sq_radii_match_sorted_distances() -> None:
    rng = np.random.default_rng(21)
    x = rng.normal(size=(40, 6))
    for k in (1, 2, 39):
        expected = [np.sort(np.delete(cdist(x, x, "sqeuclidean")[i], i))[k - 1] for i in range(40)]
        np.testing.assert_allclose(knn_sq_radii(x, k, chunk_size=9), expected, rtol=1e-10)


def test_pairwise_sq_distances_match_cdist() -> None:
    rng = np.random.default_rng(22)
    a, b = rng.normal(size=(7, 5)), rng.normal(size=(11, 5))
    got = pairwise_sq_distances(a, b, (a * a).sum(1), (b * b).sum(1))
    np.testing.assert_allclose(got, cdist(a, b, "sqeuclidean"), rtol=1e-10)


@pytest.mark.parametrize(("n", "d", "k"), [(40, 3, 1), (60, 64, 5), (25, 2048, 3)])
def test_fake_equal_to_real_is_perfect(n: int, d: int, k: int) -> None:
    """Every point lies in its own ball (distance 0): precision = recall = coverage = 1."""
    real, _ = _sets(n, n, d, seed=n + d)
    result = prdc(real, real.copy(), k)
    assert (result.precision, result.recall, result.coverage) == (1.0, 1.0, 1.0)
    assert result.density == pytest.approx(_reference(real, real, k)[2], abs=1e-12)
    assert result.density >= 1.0 / k  # each sample is at least in its own real ball


def test_fake_far_away_scores_zero() -> None:
    real, fake = _sets(50, 40, 10, seed=23)
    result = prdc(real, fake + 1e3, 5)
    assert _numbers(result) == (0.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [1, 3, 5])
def test_copy_of_a_duplicated_real_point_counts_as_inside(seed: int, k: int) -> None:
    """The `<=` boundary: a real point present k+1 times has radius exactly 0, and its exact copy
    among the samples lies in those k+1 zero-radius balls (with `<` they would be empty).

    The duplicated point sits far from the other real points, whose balls therefore do not reach
    it, and the other samples are far from everything: so the copy is the only sample in any real
    ball, and only in the k+1 zero-radius ones. Large non-negative features make the expanded
    formula's rounding (~1e-7 here) far bigger than the 0 it must produce.
    """
    rng = np.random.default_rng(100 + seed)
    n, m, d = 30 + 5 * seed, 25 + 3 * seed, [3, 64, 300, 2048][seed]
    real = _inception_like(n, d, rng)
    group = rng.choice(n, k + 1, replace=False)
    real[group] = _inception_like(1, d, rng) + 1e3
    fake = _inception_like(m, d, rng) + 1e4
    position = int(rng.integers(m))
    fake[position] = real[group[0]]

    shifted = real - real.mean(axis=0)  # what prdc works on; the radius must be 0 either way
    assert (knn_sq_radii(real, k)[group] == 0.0).all()
    assert (knn_sq_radii(shifted, k, chunk_size=7)[group] == 0.0).all()

    result = prdc(real, fake, k)
    assert result.precision == 1 / m
    assert result.density == (k + 1) / (k * m)
    assert result.coverage == (k + 1) / n
    assert _numbers(result) == pytest.approx(_reference(real, fake, k), rel=0, abs=1e-12)


@pytest.mark.parametrize(("d", "seed"), [(16, 40), (512, 41), (2048, 42)])
def test_samples_copying_real_images_match_brute_force(d: int, seed: int) -> None:
    """A copy of a real point that is another point's k-th neighbour lies exactly on that
    point's ball boundary; `<=` counts it (density), as directly computed distances do."""
    rng = np.random.default_rng(seed)
    n, m, k = 60, 50, 3
    real = _inception_like(n, d, rng)
    fake = _inception_like(m, d, rng)
    fake[: m // 2] = real[rng.choice(n, m // 2, replace=False)]
    expected = _reference(real, fake, k)
    assert _numbers(prdc(real, fake, k)) == pytest.approx(expected, rel=0, abs=1e-12)
    assert _numbers(prdc(real, fake, k, chunk_size=7)) == pytest.approx(expected, abs=1e-12)


def test_collapsed_samples_match_brute_force() -> None:
    """Every sample the same real image (e.g. a broken checkpoint): all fake radii are 0."""
    rng = np.random.default_rng(43)
    real = _inception_like(40, 256, rng)
    fake = np.repeat(real[5:6], 30, axis=0)
    result = prdc(real, fake, 4)
    assert _numbers(result) == pytest.approx(_reference(real, fake, 4), rel=0, abs=1e-12)
    assert (result.precision, result.recall) == (1.0, 1 / 40)  # only real[5] is in a fake ball


def test_pairwise_sq_distances_of_equal_rows_are_zero() -> None:
    """Exact copies are at distance exactly 0, also where the expanded formula cancels badly."""
    rng = np.random.default_rng(24)
    a = _inception_like(30, 2048, rng)
    b = a[::-1].copy()
    got = pairwise_sq_distances(a, b, np.einsum("ij,ij->i", a, a), np.einsum("ij,ij->i", b, b))
    assert (np.diagonal(got[:, ::-1]) == 0.0).all()
    off = ~np.eye(30, dtype=bool)[:, ::-1]
    np.testing.assert_allclose(got[off], cdist(a, b, "sqeuclidean")[off], rtol=1e-8)


def test_max_real_subsample_is_seeded() -> None:
    real, fake = _sets(200, 40, 6, seed=25)
    a = prdc(real, fake, 3, max_real=50, seed=7)
    assert a == prdc(real, fake, 3, max_real=50, seed=7)
    assert (a.n_real, a.n_real_total, a.real_subsample_seed, a.n_fake) == (50, 200, 7, 40)
    others = [prdc(real, fake, 3, max_real=50, seed=s) for s in (8, 9, 10)]
    assert any(_numbers(o) != _numbers(a) for o in others)  # the seed picks the subset
    # Replay the documented draw (uniform, without replacement, from default_rng(seed)):
    # the result is the definitions applied to that subset.
    keep = np.random.default_rng(7).choice(200, 50, replace=False)
    assert _numbers(a) == pytest.approx(_reference(real[keep], fake, 3), rel=0, abs=1e-12)


@pytest.mark.parametrize("max_real", [60, 61, 1000])
def test_max_real_at_or_above_n_uses_everything(max_real: int) -> None:
    real, fake = _sets(60, 30, 5, seed=26)
    result = prdc(real, fake, 3, max_real=max_real, seed=3)
    assert result == prdc(real, fake, 3)
    assert result.real_subsample_seed is None and result.n_real == 60


def test_symmetric_roles_of_precision_and_recall() -> None:
    """Swapping the sets swaps precision and recall (same k, same `<=`)."""
    real, fake = _sets(40, 40, 7, seed=27)
    ab, ba = prdc(real, fake, 3), prdc(fake, real, 3)
    assert (ab.precision, ab.recall) == (ba.recall, ba.precision)


def test_float32_input_matches_float64() -> None:
    real, fake = _sets(50, 40, 9, seed=28)
    real32, fake32 = real.astype(np.float32), fake.astype(np.float32)
    expected = _reference(real32.astype(np.float64), fake32.astype(np.float64), 4)
    assert _numbers(prdc(real32, fake32, 4)) == pytest.approx(expected, rel=0, abs=1e-12)


@pytest.mark.parametrize(
    ("n", "m", "k", "max_real"),
    [
        (5, 20, 5, None),  # k == N
        (4, 20, 5, None),  # k > N
        (20, 5, 5, None),  # k == M
        (20, 3, 5, None),  # k > M
        (20, 20, 5, 5),  # k == N after subsampling
        (20, 20, 0, None),  # k < 1
        (20, 20, 3, 0),  # max_real < 1
    ],
)
def test_rejects_too_few_points_or_bad_k(n: int, m: int, k: int, max_real: int | None) -> None:
    real, fake = _sets(n, m, 4, seed=29)
    with pytest.raises(ValueError):
        prdc(real, fake, k, max_real=max_real)


def test_accepts_k_plus_one_points() -> None:
    real, fake = _sets(4, 4, 3, seed=30)
    assert _numbers(prdc(real, fake, 3)) == pytest.approx(_reference(real, fake, 3), abs=1e-12)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["real", "fake"])
def test_rejects_non_finite(bad: float, where: str) -> None:
    real, fake = _sets(20, 20, 4, seed=31)
    (real if where == "real" else fake)[3, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        prdc(real, fake, 3)


def test_rejects_dimension_mismatch_and_wrong_shape() -> None:
    real, fake = _sets(20, 20, 4, seed=32)
    with pytest.raises(ValueError, match="dimensions differ"):
        prdc(real, fake[:, :3], 3)
    with pytest.raises(ValueError, match="2-D"):
        prdc(real[0], fake, 3)
    with pytest.raises(ValueError, match="2-D"):
        prdc(real, fake[None], 3)
    with pytest.raises(ValueError, match="chunk_size"):
        prdc(real, fake, 3, chunk_size=0)
