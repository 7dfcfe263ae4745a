"""Reference computations the tests compare the library with, written from the definitions."""

from __future__ import annotations

import numpy as np

from ckpt_eval.metrics.fid import frechet_distance, statistics


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """FID of two feature sets through the d x d route (both covariances in full)."""
    return frechet_distance(*statistics(real), *statistics(fake))
