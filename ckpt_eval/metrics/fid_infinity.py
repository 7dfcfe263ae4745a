"""FID extrapolated to infinitely many samples (Chong & Forsyth 2020, "Effectively Unbiased FID").

FID computed from N samples is biased upward, and the bias is, to first order, linear in 1/N:
FID_N = FID_inf + b / N. Computing FID on random subsets of several sizes and fitting that line
gives its intercept, FID_inf, which can be compared between checkpoints with different N. The
paper uses 15 sizes spaced evenly in 1/N from 5,000 to 50,000; here they run from
`min_fraction * n` to n (one seeded subset each), since checkpoints rarely have 50,000 samples.
The real set is held fixed, as in the bootstrap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ckpt_eval.analysis.bootstrap import fid_replicates, stream


@dataclass(frozen=True)
class FidInfinity:
    value: float  # the intercept of the fit
    slope: float  # b in FID_N = FID_inf + b / N
    sizes: list[int]
    fids: list[float]


def extrapolate(sizes: np.ndarray, fids: np.ndarray) -> tuple[float, float]:
    """Least-squares fit of fids = a + b / sizes; returns (a, b)."""
    design = np.column_stack([np.ones(len(sizes)), 1.0 / np.asarray(sizes, np.float64)])
    (a, b), *_ = np.linalg.lstsq(design, np.asarray(fids, np.float64), rcond=None)
    return float(a), float(b)


def subset_sizes(n: int, points: int, min_fraction: float) -> np.ndarray:
    """`points` sizes from min_fraction * n to n, evenly spaced in 1/N, distinct, at least 2."""
    inverse = np.linspace(1.0 / max(2, int(min_fraction * n)), 1.0 / n, points)
    return np.unique(np.round(1.0 / inverse).astype(int))


def fid_infinity(
    real_mean: np.ndarray,
    real_cov: np.ndarray,
    fake: np.ndarray,
    points: int = 15,
    min_fraction: float = 0.2,
    seed: int = 0,
    name: str = "",
) -> FidInfinity:
    """FID_inf of `fake` against the real statistics, from one random subset per size."""
    n = len(fake)
    sizes = subset_sizes(n, points, min_fraction)
    if len(sizes) < 3:
        raise ValueError(f"{name}: {n} images give too few distinct subset sizes to fit a line")
    rng = stream(seed, "fid-infinity", name)
    counts = np.zeros((len(sizes), n))
    for row, size in zip(counts, sizes, strict=True):
        row[rng.choice(n, size, replace=False)] = 1.0
    fids = fid_replicates(real_mean, real_cov, fake, counts)
    value, slope = extrapolate(sizes, fids)
    return FidInfinity(value, slope, [int(s) for s in sizes], [float(f) for f in fids])
