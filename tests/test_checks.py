"""The shared input checks of the set-versus-set measures (PRDC, memorization)."""

from __future__ import annotations

import numpy as np
import pytest

from ckpt_eval.metrics.checks import as_features, check_pair


def test_as_features_is_float64_and_refuses_bad_arrays() -> None:
    out = as_features(np.ones((3, 2), np.float32), "real")
    assert out.dtype == np.float64 and out.shape == (3, 2)
    assert as_features(np.zeros((0, 4)), "real").shape == (0, 4)
    with pytest.raises(ValueError, match="real features are empty"):
        as_features(np.zeros((0, 4)), "real", allow_empty=False)
    with pytest.raises(ValueError, match="2-D array"):
        as_features(np.ones(3), "fake")
    with pytest.raises(ValueError, match="NaN or infinite"):
        as_features(np.array([[1.0, np.nan]]), "fake")


def test_check_pair_names_the_sets() -> None:
    check_pair(np.ones((2, 3)), np.ones((5, 3)), ("a", "b"), 1)
    with pytest.raises(ValueError, match="feature dimensions differ: a 3, b 4"):
        check_pair(np.ones((2, 3)), np.ones((2, 4)), ("a", "b"), 8)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        check_pair(np.ones((2, 3)), np.ones((2, 3)), ("a", "b"), 0)
