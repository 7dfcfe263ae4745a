"""FID-infinity: the 1/N fit, and that it removes most of FID's small-N bias on known Gaussians."""

from __future__ import annotations

import numpy as np
import pytest
from references import fid_from_features

from ckpt_eval.metrics.fid import frechet_distance
from ckpt_eval.metrics.fid_infinity import extrapolate, fid_infinity, subset_sizes


def test_extrapolate_recovers_an_exact_line() -> None:
    sizes = np.array([100, 150, 200, 400, 800])
    a, b = extrapolate(sizes, 12.5 + 3000.0 / sizes)
    assert (a, b) == pytest.approx((12.5, 3000.0))


def test_subset_sizes_are_even_in_one_over_n() -> None:
    sizes = subset_sizes(1000, 5, 0.2)
    assert sizes[0] == 200 and sizes[-1] == 1000
    assert np.diff(1.0 / sizes) == pytest.approx(np.full(4, (1 / 1000 - 1 / 200) / 4), rel=1e-2)


def test_fid_infinity_is_closer_to_the_population_value_than_fid_n() -> None:
    """Real set fixed; samples from a known Gaussian. The target is the Fréchet distance of the
    real statistics to that Gaussian; FID at N = 600 in 128-d overshoots it by about a third."""
    rng = np.random.default_rng(1)
    d = 128
    real = rng.normal(size=(4000, d))
    mixing = rng.normal(size=(d, d)) / np.sqrt(d) * 0.6 + np.eye(d)
    mean = np.full(d, 0.05)
    fake = rng.normal(size=(600, d)) @ mixing.T + mean
    real_mean, real_cov = real.mean(0), np.cov(real, rowvar=False)
    target = frechet_distance(real_mean, real_cov, mean, mixing @ mixing.T)
    fid_n = fid_from_features(real, fake)
    result = fid_infinity(real_mean, real_cov, fake, points=15, min_fraction=0.2, seed=0)
    assert fid_n - target > 5.0  # the bias to remove
    assert abs(result.value - target) < (fid_n - target) / 2
    assert result.slope > 0  # FID falls as N grows
    assert result.sizes[-1] == 600 and result.fids[-1] == pytest.approx(fid_n, rel=1e-9)
    again = fid_infinity(real_mean, real_cov, fake, points=15, min_fraction=0.2, seed=0)
    assert again == result


def test_too_few_images_for_a_fit() -> None:
    real = np.random.default_rng(2).normal(size=(50, 4))
    with pytest.raises(ValueError, match="too few distinct subset sizes"):
        fid_infinity(real.mean(0), np.cov(real, rowvar=False), real[:3], points=15)
