"""Streaming float64 statistics of the real set and its seeded row subset
(ckpt_eval.features.moments)."""

from __future__ import annotations

import numpy as np
import pytest

from ckpt_eval.features.moments import StreamingMoments, kept_rows, stream_rows, subset_param
from ckpt_eval.metrics.fid import statistics


def _batches(x: np.ndarray, size: int):
    return (x[i : i + size] for i in range(0, len(x), size))


def test_streamed_mean_and_covariance_equal_numpy_on_features_far_from_the_origin() -> None:
    # non-negative, skewed and offset like pool3 features: the case where naive sums cancel
    rng = np.random.default_rng(0)
    x = (rng.gamma(2.0, 1.0, size=(1000, 64)) + 50.0).astype(np.float32)
    moments = StreamingMoments(64)
    for batch in _batches(x, 33):  # batches that do not divide the set
        moments.add(batch)
    mean, cov = statistics(x)
    assert moments.count == 1000
    np.testing.assert_allclose(moments.mean(), mean, rtol=1e-13)
    np.testing.assert_allclose(moments.covariance(), cov, rtol=1e-11, atol=1e-13)
    assert np.array_equal(moments.covariance(), moments.covariance().T)


def test_moments_refuse_wrong_width_and_too_few_rows() -> None:
    moments = StreamingMoments(4)
    with pytest.raises(ValueError, match="no rows"):
        moments.mean()
    with pytest.raises(ValueError, match="4 values"):
        moments.add(np.zeros((2, 3)))
    moments.add(np.ones((1, 4)))
    with pytest.raises(ValueError, match="at least 2 rows"):
        moments.covariance()


def test_kept_rows_are_none_up_to_the_limit_then_a_seeded_sorted_subset() -> None:
    assert kept_rows(100, 100, seed=0) is None
    assert kept_rows(100, None, seed=0) is None
    keep = kept_rows(1000, 100, seed=7)
    assert keep is not None and len(keep) == len(set(keep.tolist())) == 100
    assert np.all(np.diff(keep) > 0) and keep.max() < 1000
    assert np.array_equal(keep, kept_rows(1000, 100, seed=7))
    assert not np.array_equal(keep, kept_rows(1000, 100, seed=8))


def test_stream_rows_keeps_all_rows_unchanged_without_a_subset() -> None:
    x = np.random.default_rng(1).normal(size=(70, 8)).astype(np.float32)
    streamed = stream_rows(_batches(x, 32), 8, None)
    assert np.array_equal(streamed.rows, x) and streamed.count == 70
    assert streamed.index is None and streamed.mean is None and streamed.covariance is None


def test_stream_rows_keeps_the_subset_rows_and_the_statistics_of_all() -> None:
    x = np.random.default_rng(2).normal(3.0, 1.0, size=(500, 16)).astype(np.float32)
    keep = kept_rows(500, 40, seed=3)
    streamed = stream_rows(_batches(x, 32), 16, keep)
    assert np.array_equal(streamed.rows, x[keep]) and np.array_equal(streamed.index, keep)
    assert streamed.count == 500
    mean, cov = statistics(x)
    np.testing.assert_allclose(streamed.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(streamed.covariance, cov, rtol=1e-10, atol=1e-12)


def test_stream_rows_refuses_a_subset_beyond_the_stream() -> None:
    x = np.zeros((10, 2), np.float32)
    with pytest.raises(ValueError, match="beyond the 10 rows"):
        stream_rows(_batches(x, 4), 2, np.array([1, 12]))


def test_subset_param_is_none_while_the_set_fits() -> None:
    # None while kept whole: a new seed then does not rerun the real set's extraction
    assert subset_param(10000, 10000, seed=4) is None
    assert subset_param(10001, 10000, seed=4) == {"max_rows": 10000, "seed": 4}
