"""Memorization screen: nearest real image by cosine similarity, checked against brute force.

The reference is scipy's ``cdist(metric="cosine")`` (each pair computed directly in float64) and,
for a tiny case, plain Python loops; argmax and sorting are done independently of the module.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from ckpt_eval.metrics.memorization import (
    ClosePair,
    MemorizationResult,
    flagged,
    memorization,
    nearest_real,
    top_pairs,
)


def _reference(samples: np.ndarray, real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per sample, the index and cosine similarity of the most similar real row (brute force)."""
    sim = 1.0 - cdist(np.asarray(samples, np.float64), np.asarray(real, np.float64), "cosine")
    return sim.argmax(axis=1), sim.max(axis=1)


def _sets(m: int, n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative features (like Inception's); some samples are noisy versions of real rows, so
    similarities spread from unrelated to close."""
    rng = np.random.default_rng(seed)
    real = np.abs(rng.normal(size=(n, d))) * rng.uniform(0.2, 3.0, size=d)
    samples = np.abs(rng.normal(size=(m, d))) * rng.uniform(0.2, 3.0, size=d)
    close = rng.choice(m, m // 2, replace=False)
    noise = rng.uniform(0.05, 2.0, size=(len(close), 1))
    samples[close] = real[rng.integers(0, n, len(close))] + noise * rng.normal(size=(len(close), d))
    return samples, real


def _unambiguous(samples: np.ndarray, real: np.ndarray) -> None:
    """Guard: best and second-best similarities are far apart, so argmax is well defined."""
    sim = np.sort(1.0 - cdist(samples, real, "cosine"), axis=1)
    assert (sim[:, -1] - sim[:, -2] > 1e-9).all()


@pytest.mark.parametrize(
    ("m", "n", "d", "seed"),
    [(30, 40, 2, 0), (50, 80, 16, 1), (64, 33, 128, 2), (40, 120, 2048, 3), (1, 1, 5, 4)],
)
def test_matches_brute_force_cosine(m: int, n: int, d: int, seed: int) -> None:
    samples, real = _sets(m, n, d, seed)
    if n > 1:
        _unambiguous(samples, real)
    expected_index, expected_sim = _reference(samples, real)
    index, sim = nearest_real(samples, real)
    assert index.dtype == np.int64 and sim.dtype == np.float64
    np.testing.assert_array_equal(index, expected_index)
    np.testing.assert_allclose(sim, expected_sim, rtol=0, atol=1e-12)
    if m > 1:
        assert np.ptp(expected_sim) > 0.05  # not all alike: the comparison has something to check


def test_matches_plain_loops() -> None:
    """A second, loop-only reference (math.fsum dot products) on a small case."""
    samples, real = _sets(7, 9, 6, seed=5)

    def cos(a: list[float], b: list[float]) -> float:
        dot = math.fsum(p * q for p, q in zip(a, b, strict=True))
        return dot / (
            math.sqrt(math.fsum(p * p for p in a)) * math.sqrt(math.fsum(q * q for q in b))
        )

    index, sim = nearest_real(samples, real)
    for j, s in enumerate(samples.tolist()):
        values = [cos(s, r) for r in real.tolist()]
        best = max(range(len(values)), key=lambda i: (values[i], -i))
        assert index[j] == best
        assert sim[j] == pytest.approx(values[best], abs=1e-14)


@pytest.mark.parametrize("d", [3, 64, 2048])
def test_exact_and_rescaled_copies_are_exactly_one_and_flagged_at_one(d: int) -> None:
    samples, real = _sets(40, 50, d, seed=d)
    copies = {3: (7, 1.0), 11: (7, 3.7), 20: (31, 1e-3), 25: (0, 1e6), 39: (49, 0.5)}
    for j, (i, scale) in copies.items():
        samples[j] = scale * real[i]
    result = memorization(samples, real, threshold=1.0)
    for j, (i, _) in copies.items():
        assert result.nearest_similarity[j] == 1.0  # exactly, not 1 - 1e-16
        assert result.nearest_index[j] == i
    others = np.setdiff1d(np.arange(40), list(copies))
    assert (result.nearest_similarity[others] < 0.9999).all()  # the data has no other copies
    assert result.n_flagged == len(copies)
    assert result.share_flagged == len(copies) / 40
    np.testing.assert_array_equal(
        np.flatnonzero(flagged(result.nearest_similarity, 1.0)), sorted(copies)
    )


def test_float32_copies_are_exactly_one() -> None:
    samples, real = _sets(20, 30, 512, seed=6)
    real32 = real.astype(np.float32)
    samples32 = samples.astype(np.float32)
    samples32[4] = real32[17]
    index, sim = nearest_real(samples32, real32)
    assert (index[4], sim[4]) == (17, 1.0)


@pytest.mark.parametrize("chunk_size", [1, 4, 1024])
@pytest.mark.parametrize("d", [3, 17, 300, 2048])
def test_ties_go_to_the_lowest_real_index(chunk_size: int, d: int) -> None:
    """Real row 5 appears again at 12 and 29, and rescaled at 20 and 33 (the same direction):
    every sample whose nearest direction is that one must get index 5, the lowest, whether it is
    a copy (similarity 1) or merely close to it, and whatever the chunking."""
    rng = np.random.default_rng(7 + d)
    real = rng.normal(size=(40, d))
    real[[12, 29]] = real[5]
    real[20] = 2.5 * real[5]
    real[33] = 0.01 * real[5]
    group = [5, 12, 20, 29, 33]
    samples = real[5] + rng.normal(0, 0.05, size=(120, d))  # close to row 5, no copies
    samples[:3] = [real[5], real[20], 7.0 * real[29]]  # copies
    index, sim = nearest_real(samples, real, chunk_size=chunk_size)
    expected_index, _ = _reference(samples, real)
    assert np.isin(expected_index, group).all()  # the reference agrees it is that direction
    np.testing.assert_array_equal(index, 5)
    np.testing.assert_array_equal(sim[:3], 1.0)


@pytest.mark.parametrize("n", [26, 41, 74])
@pytest.mark.parametrize("d", [17, 300, 2048])
def test_duplicate_real_images_tie_to_the_lowest_index(n: int, d: int) -> None:
    """The same real image four times (rows 1, n/2, n-2, n-1). 1025 samples near it with the
    default chunk of 1024 leave a last chunk of one row, a matrix-vector product that can round
    identical columns differently; the index must still be 1 for every sample."""
    rng = np.random.default_rng(7 + d)
    real = rng.normal(size=(n, d))
    group = [1, n // 2, n - 2, n - 1]
    real[group] = real[1]
    samples = real[1] + rng.normal(0, 0.05, size=(1025, d))
    expected_index, _ = _reference(samples, real)
    assert np.isin(expected_index, group).all()
    result = memorization(samples, real)
    np.testing.assert_array_equal(result.nearest_index, 1)
    np.testing.assert_array_equal(nearest_real(samples[-40:], real, chunk_size=1)[0], 1)


def test_share_flagged_counts_at_the_threshold() -> None:
    """Cosines 0.6, 0.8, 1, 0 and -1 are exact in float64 here ((3, 4) / 5 etc.), so thresholds
    equal to them test `>=` without rounding in the way."""
    real = np.array([[1.0, 0.0]])
    samples = np.array([[3.0, 4.0], [4.0, 3.0], [2.0, 0.0], [0.0, 5.0], [-1.0, 0.0]])
    np.testing.assert_array_equal(nearest_real(samples, real)[1], [0.6, 0.8, 1.0, 0.0, -1.0])
    cases = {
        0.6: 3,
        np.nextafter(0.6, 1.0): 2,
        0.8: 2,
        1.0: 1,
        0.0: 4,
        np.nextafter(0.0, 1.0): 3,
        -1.0: 5,
    }
    for threshold, count in cases.items():
        result = memorization(samples, real, threshold=threshold)
        assert (result.n_flagged, result.share_flagged) == (count, count / 5), threshold
        assert result.threshold == threshold


def test_flagged_is_at_or_above() -> None:
    similarity = np.array([0.5, 0.95, np.nextafter(0.95, 0.0), 0.96, 1.0])
    np.testing.assert_array_equal(flagged(similarity, 0.95), [False, True, False, True, True])


def test_antipodal_sample_is_clipped_at_minus_one() -> None:
    """Rounding leaves u.u a few ulps either side of 1, so the cosine of v and -v can fall below
    -1 (it does for several of these 20 rows); it is clipped to -1 (only values below -1 are
    changed), so it stays a cosine and threshold -1 flags everything."""
    rng = np.random.default_rng(8)
    sims = []
    for row in rng.normal(size=(20, 777)):
        real = row[None, :]
        index, sim = nearest_real(-real, real)
        assert index[0] == 0 and -1.0 <= sim[0] <= -1.0 + 1e-15
        assert memorization(-real, real, threshold=-1.0).n_flagged == 1
        sims.append(sim[0])
    assert sims.count(-1.0) >= 3  # the clip was exercised, not only values just above -1


def test_top_pairs_order_and_tie_breaking() -> None:
    samples, real = _sets(30, 25, 32, seed=9)
    for j, i in ((7, 4), (2, 9), (5, 4)):
        samples[j] = real[i]  # three samples tie at similarity 1
    result = memorization(samples, real, top_k=6)
    assert result.top_pairs[:3] == (
        ClosePair(2, 9, 1.0),
        ClosePair(5, 4, 1.0),
        ClosePair(7, 4, 1.0),
    )
    # The rest: the reference's similarities sorted descending, one pair per sample.
    ref_index, ref_sim = _reference(samples, real)
    order = sorted(range(30), key=lambda j: (-ref_sim[j], j))
    assert [p.sample for p in result.top_pairs] == order[:6]
    for pair in result.top_pairs:
        assert pair.real == ref_index[pair.sample]
        assert pair.similarity == pytest.approx(ref_sim[pair.sample], abs=1e-12)
    sims = [p.similarity for p in result.top_pairs]
    assert sims == sorted(sims, reverse=True)
    assert 1.0 > sims[3] > sims[5]  # beyond the copies, distinct values: the order is tested


def test_top_pairs_on_given_arrays() -> None:
    index = np.array([10, 11, 12, 13, 14])
    similarity = np.array([0.5, 0.9, 0.5, 0.9, 0.1])
    expected = (ClosePair(1, 11, 0.9), ClosePair(3, 13, 0.9), ClosePair(0, 10, 0.5))
    assert top_pairs(index, similarity, 3) == expected
    assert top_pairs(index, similarity, 100)[-1] == ClosePair(4, 14, 0.1)
    assert len(top_pairs(index, similarity, 100)) == 5
    assert top_pairs(index, similarity, 0) == ()
    with pytest.raises(ValueError):
        top_pairs(index, similarity, -1)


@pytest.mark.parametrize("top_k", [0, 1, 16, 500])
def test_top_k_length(top_k: int) -> None:
    samples, real = _sets(40, 20, 8, seed=10)
    result = memorization(samples, real, top_k=top_k)
    assert len(result.top_pairs) == min(top_k, 40)
    assert len({p.sample for p in result.top_pairs}) == len(result.top_pairs)  # one per sample


@pytest.mark.parametrize("chunk_size", [1, 3, 16, 10_000])
def test_independent_of_chunk_size(chunk_size: int) -> None:
    samples, real = _sets(50, 70, 64, seed=11)
    samples[[4, 30]] = real[[8, 8]]
    whole = memorization(samples, real, threshold=0.9, chunk_size=10_000)
    part = memorization(samples, real, threshold=0.9, chunk_size=chunk_size)
    np.testing.assert_array_equal(part.nearest_index, whole.nearest_index)
    # Different chunk shapes round the products differently, by an ulp at most.
    np.testing.assert_allclose(
        part.nearest_similarity, whole.nearest_similarity, rtol=0, atol=1e-15
    )
    assert (part.n_flagged, part.share_flagged) == (whole.n_flagged, whole.share_flagged)
    assert [p.sample for p in part.top_pairs] == [p.sample for p in whole.top_pairs]
    assert part.n_flagged >= 2  # the copies at least


def test_result_fields() -> None:
    samples, real = _sets(25, 30, 16, seed=12)
    result = memorization(samples, real, threshold=0.8, top_k=4)
    assert isinstance(result, MemorizationResult)
    assert result.nearest_index.shape == (25,) and result.nearest_similarity.shape == (25,)
    expected = int((_reference(samples, real)[1] >= 0.8).sum())
    assert 0 < expected < 25
    assert result.n_flagged == expected and result.share_flagged == expected / 25


@pytest.mark.parametrize("where", ["samples", "real"])
@pytest.mark.parametrize(
    ("bad", "message"),
    [("zero", "zero"), ("nan", "NaN or infinite"), ("inf", "NaN or infinite"), ("empty", "empty")],
)
def test_rejects_bad_rows(where: str, bad: str, message: str) -> None:
    samples, real = _sets(10, 12, 4, seed=13)
    target = samples if where == "samples" else real
    if bad == "empty":
        target = target[:0]
    else:
        target[3] = {"zero": 0.0, "nan": np.nan, "inf": np.inf}[bad]
    args = (target, real) if where == "samples" else (samples, target)
    with pytest.raises(ValueError, match=message):
        memorization(*args)
    with pytest.raises(ValueError, match=message):
        nearest_real(*args)


def test_rejects_dimension_mismatch_wrong_shape_and_bad_chunk() -> None:
    samples, real = _sets(10, 12, 4, seed=14)
    with pytest.raises(ValueError, match="dimensions differ"):
        memorization(samples, real[:, :3])
    with pytest.raises(ValueError, match="2-D"):
        memorization(samples[0], real)
    with pytest.raises(ValueError, match="2-D"):
        memorization(samples, real[None])
    with pytest.raises(ValueError, match="chunk_size"):
        memorization(samples, real, chunk_size=0)
    with pytest.raises(ValueError):
        memorization(samples, real, top_k=-1)


@pytest.mark.parametrize("threshold", [1.0 + 1e-9, -1.0 - 1e-9, 2.0, -5.0, float("nan")])
def test_rejects_threshold_outside_minus_one_to_one(threshold: float) -> None:
    samples, real = _sets(5, 6, 3, seed=15)
    with pytest.raises(ValueError, match="threshold"):
        memorization(samples, real, threshold=threshold)


@pytest.mark.parametrize("threshold", [-1.0, 1.0])
def test_accepts_threshold_at_the_ends(threshold: float) -> None:
    samples, real = _sets(5, 6, 3, seed=15)
    assert memorization(samples, real, threshold=threshold).threshold == threshold
