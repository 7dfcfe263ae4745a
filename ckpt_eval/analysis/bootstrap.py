"""Seeded bootstrap intervals: resampling counts, shifted percentile intervals.

Each interval answers: how much would this checkpoint's number move if it had produced another
set of N samples? The samples are resampled with replacement and the metric recomputed; the real
set is held fixed. It is the common reference of every checkpoint, so its own sampling noise
shifts all checkpoints alike and does not decide between them; holding it fixed also lets each
checkpoint's job run on its own, in any order, with a real set of any size.

One resample draws image indices once and every metric with replicates (its registry entry's
`replicates`, e.g. `ckpt_eval.metrics.fid.fid_replicates`) uses them, so the replicates of the
metrics are paired. The draws come from `ckpt_eval.seeding.stream(seed, "bootstrap", name)`
keyed by the checkpoint's name: the same seed gives the same intervals, and a checkpoint's
interval does not change when other checkpoints are added.

Interval: the central `level` share of the replicates, shifted by the bootstrap's estimate of
bias (mean replicate minus point), so it is centred on the reported number. A resample with
replacement holds only ~63% distinct images; FID, whose bias grows as 1/N, rises on such a
resample well above the point, and a plain percentile interval would then lie wholly above the
estimate. The shift removes that artefact while keeping the spread (the tests check the coverage
on a synthetic case). KID's replicates leave out pairs of copies of one image (which would add
k(x, x) > k(x, y) terms) and CLIP's mean is unbiased, so for them the shift is close to zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Fewer images than this make resamples with so few distinct images (6.5 of 10 on average) that
# the interval says little; KID's distinct-pair estimator also needs two distinct images.
MIN_IMAGES = 10


@dataclass(frozen=True)
class Interval:
    """A point estimate, its bootstrap interval at `level`, and the replicates' bias."""

    point: float
    low: float
    high: float
    level: float
    bias: float

    def as_dict(self) -> dict[str, float]:
        return {"low": self.low, "high": self.high, "level": self.level, "bias": self.bias}


def resample_counts(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, n) float counts: how often each image appears in each resample."""
    if resamples < 2:
        raise ValueError(f"need at least 2 resamples, got {resamples}")
    indices = rng.integers(0, n, size=(resamples, n))
    flat = (indices + n * np.arange(resamples)[:, None]).ravel()
    return np.bincount(flat, minlength=resamples * n).reshape(resamples, n).astype(np.float64)


def shifted_interval(point: float, replicates: np.ndarray, level: float) -> Interval:
    """The percentile interval of the replicates moved by their bias, around `point`."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    reps = np.asarray(replicates, np.float64)
    bias = float(reps.mean() - point)
    low, high = np.quantile(reps, [(1.0 - level) / 2.0, (1.0 + level) / 2.0]) - bias
    return Interval(float(point), float(low), float(high), float(level), bias)
