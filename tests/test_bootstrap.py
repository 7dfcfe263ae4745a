"""Bootstrap replicates against explicit recomputation on resampled rows, and interval coverage."""

from __future__ import annotations

import numpy as np
import pytest
from cleanfid.fid import frechet_distance as cleanfid_frechet
from references import fid_from_features

from ckpt_eval.analysis import bootstrap as bs
from ckpt_eval.metrics.fid import fid_replicates
from ckpt_eval.metrics.kid import kid_replicates, polynomial_mmd2
from ckpt_eval.metrics.registry import mean_replicates
from ckpt_eval.seeding import stream


def _sets(n_real: int, n_fake: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    real = rng.gamma(2.0, 1.0, size=(n_real, d))  # non-negative, like Inception pool3 features
    fake = rng.gamma(2.2, 0.9, size=(n_fake, d))
    return real, fake


def _real_stats(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return real.mean(axis=0), np.cov(real, rowvar=False)


def _complete_mmd2_distinct(real: np.ndarray, fake: np.ndarray, origin: np.ndarray) -> float:
    """The complete unbiased MMD², leaving out fake pairs that are copies of one image."""
    d = real.shape[1]
    k = lambda a, b: (a @ b.T / d + 1.0) ** 3  # noqa: E731
    k_rr, k_ff, k_rf = k(real, real), k(fake, fake), k(real, fake)
    n = len(real)
    within_real = (k_rr.sum() - np.trace(k_rr)) / (n * (n - 1))
    distinct = origin[:, None] != origin[None, :]
    within_fake = k_ff[distinct].mean()
    return float(within_real + within_fake - 2.0 * k_rf.mean())


@pytest.mark.parametrize(("n_real", "n_fake", "d"), [(80, 50, 16), (60, 40, 2048), (300, 30, 64)])
def test_fid_replicate_of_the_whole_set_is_the_fid(n_real: int, n_fake: int, d: int) -> None:
    real, fake = _sets(n_real, n_fake, d)
    value = fid_replicates(*_real_stats(real), fake, np.ones((1, n_fake)))[0]
    assert value == pytest.approx(fid_from_features(real, fake), rel=1e-9)
    if d <= 64:  # scipy's sqrtm (clean-fid) is slow at 2048 and inexact on singular products
        f64 = fake.astype(np.float64)
        expected = cleanfid_frechet(*_real_stats(real), f64.mean(0), np.cov(f64, rowvar=False))
        assert value == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("d", [8, 2048])
def test_fid_replicates_equal_fid_of_explicitly_resampled_rows(d: int) -> None:
    real, fake = _sets(70, 30, d, seed=1)
    counts = bs.resample_counts(30, 4, np.random.default_rng(3))
    replicates = fid_replicates(*_real_stats(real), fake, counts)
    for row, value in zip(counts, replicates, strict=True):
        rows = np.repeat(np.arange(30), row.astype(int))  # the resample, duplicates and all
        assert value == pytest.approx(fid_from_features(real, fake[rows]), rel=1e-9)


def test_fid_replicates_of_subsets_equal_fid_of_the_subset() -> None:
    real, fake = _sets(50, 40, 12, seed=2)
    counts = np.zeros((2, 40))
    counts[0, :25] = 1
    counts[1, ::3] = 1
    values = fid_replicates(*_real_stats(real), fake, counts)
    assert values[0] == pytest.approx(fid_from_features(real, fake[:25]), rel=1e-8)
    assert values[1] == pytest.approx(fid_from_features(real, fake[::3]), rel=1e-8)


def test_kid_replicate_of_the_whole_set_is_the_complete_u_statistic() -> None:
    real, fake = _sets(45, 45, 32, seed=4)
    value = kid_replicates(real, fake, np.ones((1, 45)))[0]
    # equal sizes: the complete U-statistic is the unbiased MMD² of clean-fid's kernel formula
    assert value == pytest.approx(polynomial_mmd2(real, fake), rel=1e-10)
    real, fake = _sets(60, 25, 32, seed=5)
    value = kid_replicates(real, fake, np.ones((1, 25)))[0]
    assert value == pytest.approx(_complete_mmd2_distinct(real, fake, np.arange(25)), rel=1e-10)


def test_kid_replicates_leave_out_pairs_of_copies() -> None:
    real, fake = _sets(30, 20, 16, seed=6)
    counts = bs.resample_counts(20, 3, np.random.default_rng(7))
    values = kid_replicates(real, fake, counts)
    for row, value in zip(counts, values, strict=True):
        origin = np.repeat(np.arange(20), row.astype(int))
        assert value == pytest.approx(_complete_mmd2_distinct(real, fake[origin], origin), rel=1e-9)


def test_mean_replicates_and_counts() -> None:
    values = np.random.default_rng(8).normal(size=17)
    counts = bs.resample_counts(17, 50, np.random.default_rng(9))
    assert (counts.sum(axis=1) == 17).all() and counts.shape == (50, 17)
    means = mean_replicates(values, counts)
    for row, mean in zip(counts, means, strict=True):
        assert mean == pytest.approx(np.repeat(values, row.astype(int)).mean())


def test_streams_are_keyed_and_reproducible() -> None:
    a = bs.resample_counts(10, 5, stream(0, "bootstrap", "step-1"))
    b = bs.resample_counts(10, 5, stream(0, "bootstrap", "step-1"))
    c = bs.resample_counts(10, 5, stream(0, "bootstrap", "step-2"))
    d = bs.resample_counts(10, 5, stream(1, "bootstrap", "step-1"))
    assert np.array_equal(a, b) and not np.array_equal(a, c) and not np.array_equal(a, d)
    with pytest.raises(ValueError, match="non-negative int"):
        stream(-1, "x")
    with pytest.raises(ValueError, match="at least 2 resamples"):
        bs.resample_counts(10, 1, stream(0))


def test_shifted_interval_closed_form() -> None:
    # replicates 11..19 around a point of 10: bias 5, 10%..90% quantiles 11.8 and 18.2
    interval = bs.shifted_interval(10.0, np.arange(11.0, 20.0), 0.8)
    assert interval.bias == pytest.approx(5.0)
    assert (interval.low, interval.high) == pytest.approx((6.8, 13.2))
    with pytest.raises(ValueError, match="level"):
        bs.shifted_interval(1.0, np.ones(3), 1.0)


def _coverage(draw, target: float, trials: int, level: float) -> float:
    hits = 0
    for t in range(trials):
        point, replicates = draw(t)
        interval = bs.shifted_interval(point, replicates, level)
        hits += interval.low <= target <= interval.high
    return hits / trials


def test_clip_mean_interval_covers_the_true_mean_at_the_stated_rate() -> None:
    """Scores ~ N(27, 3²): the 90% interval of the mean covers 27 in about 90% of trials."""
    rng = np.random.default_rng(10)

    def draw(t: int) -> tuple[float, np.ndarray]:
        scores = rng.normal(27.0, 3.0, size=60)
        counts = bs.resample_counts(60, 400, stream(t, "clip"))
        return float(scores.mean()), mean_replicates(scores, counts)

    assert 0.85 <= _coverage(draw, 27.0, 400, 0.9) <= 0.95


def test_fid_and_kid_intervals_cover_their_expectation_at_about_the_stated_rate() -> None:
    """Real set fixed, samples drawn again and again from a known Gaussian: the interval should
    cover the metric's expectation at this N (estimated by Monte Carlo) about 90% of the time."""
    rng = np.random.default_rng(11)
    d, n = 3, 60
    real = rng.normal(size=(300, d))
    mean, cov = _real_stats(real)
    fake_mean, fake_scale = np.array([0.4, 0.0, -0.2]), np.array([1.3, 0.8, 1.0])

    def sample() -> np.ndarray:
        return rng.normal(size=(n, d)) * fake_scale + fake_mean

    ones = np.ones((1, n))
    draws = [sample() for _ in range(3000)]
    fid_target = float(np.mean([fid_replicates(mean, cov, x, ones)[0] for x in draws]))
    kid_target = float(np.mean([kid_replicates(real, x, ones)[0] for x in draws[:1000]]))

    def metric(which: str):
        def draw(t: int) -> tuple[float, np.ndarray]:
            x = sample()
            counts = bs.resample_counts(n, 300, stream(t, which))
            if which == "fid":
                return fid_replicates(mean, cov, x, ones)[0], fid_replicates(mean, cov, x, counts)
            return kid_replicates(real, x, ones)[0], kid_replicates(real, x, counts)

        return draw

    assert 0.84 <= _coverage(metric("fid"), fid_target, 200, 0.9) <= 0.97
    assert 0.84 <= _coverage(metric("kid"), kid_target, 200, 0.9) <= 0.97
