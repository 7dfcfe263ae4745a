"""Kernel Inception Distance: the unbiased MMD² with the cubic polynomial kernel.

k(x, y) = (x·y / d + 1)^3, averaged over seeded random subsets (Bińkowski et al. 2018, the
estimator clean-fid and torch-fidelity use). Unlike FID it is unbiased in N, so it stays
meaningful for the small sample sets checkpoints usually have.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² between two equal-size sets under k(a, b) = (a·b / d + 1)^3."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    m, d = x.shape
    if y.shape[0] != m:
        raise ValueError("subsets must have the same size")
    k_xx = (x @ x.T / d + 1.0) ** 3
    k_yy = (y @ y.T / d + 1.0) ** 3
    k_xy = (x @ y.T / d + 1.0) ** 3
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


@dataclass(frozen=True)
class KidResult:
    mean: float
    std: float
    subsets: int
    subset_size: int
    capped: bool  # True when subset_size was reduced to the smaller set's size


def kid(
    real: np.ndarray, fake: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> KidResult:
    """Mean and std over subsets drawn without replacement, seeded for reproducibility."""
    n = min(len(real), len(fake))
    if n < 2:
        raise ValueError("KID needs at least 2 images in each set")
    size = min(subset_size, n)
    rng = np.random.default_rng(seed)
    values = np.array(
        [
            polynomial_mmd2(
                real[rng.choice(len(real), size, replace=False)],
                fake[rng.choice(len(fake), size, replace=False)],
            )
            for _ in range(subsets)
        ]
    )
    return KidResult(float(values.mean()), float(values.std()), subsets, size, size < subset_size)
