"""Seeded bootstrap intervals for FID, KID and mean CLIP score of one checkpoint.

Each interval answers: how much would this checkpoint's number move if it had produced another
set of N samples? The samples are resampled with replacement and the metric recomputed; the real
set is held fixed. It is the common reference of every checkpoint, so its own sampling noise
shifts all checkpoints alike and does not decide between them; holding it fixed also lets each
checkpoint's job run on its own, in any order, with a real set of any size.

One resample draws image indices once and FID, KID and CLIP score all use them, so the replicates
of the three metrics are paired. The draws come from `numpy.random.SeedSequence(seed, key)` keyed
by the checkpoint's name: the same seed gives the same intervals, and a checkpoint's interval does
not change when other checkpoints are added.

Interval: the central `level` share of the replicates, shifted by the bootstrap's estimate of
bias (mean replicate minus point), so it is centred on the reported number. A resample with
replacement holds only ~63% distinct images; FID, whose bias grows as 1/N, rises on such a
resample well above the point, and a plain percentile interval would then lie wholly above the
estimate. The shift removes that artefact while keeping the spread (the tests check the coverage
on a synthetic case). KID's replicates leave out pairs of copies of one image (which would add
k(x, x) > k(x, y) terms) and CLIP's mean is unbiased, so for them the shift is close to zero.

FID replicates cost no d x d eigendecomposition. With real covariance C_r and the resample's
centred, weighted rows Y (so C = Y^T Y), the nonzero eigenvalues of C_r C equal those of the small
n x n matrix Y C_r Y^T, so tr sqrt(C_r C) is the sum of their square roots; and Y C_r Y^T follows
from one precomputed H = Z C_r Z^T (Z the centred samples) by rank-one corrections.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from ckpt_eval.metrics.fid import sqrt_eigen_sum, statistics

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


def stream(seed: int, *keys: str) -> np.random.Generator:
    """A Generator for one purpose (a checkpoint's resamples, a pair's comparison) under `seed`.

    crc32 of each key goes into the SeedSequence's spawn key: stable across processes and Python
    versions (unlike `hash`), and independent of the order in which checkpoints are processed.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    spawn_key = tuple(zlib.crc32(key.encode("utf-8")) for key in keys)
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=spawn_key))


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


# --- FID -----------------------------------------------------------------------------------------


def fid_replicates(
    real_mean: np.ndarray, real_cov: np.ndarray, fake: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """FID of the real statistics against each weighted resample of `fake` (rows of counts).

    A row of counts may sum to anything from 2 up: a resample with replacement sums to n, a
    subset without replacement (0/1 counts, as `ckpt_eval.metrics.fid_infinity` uses) to its size.
    """
    x = np.asarray(fake, np.float64)
    centre = x.mean(axis=0)
    z = x - centre  # every quantity below is shift-invariant; centring keeps it well conditioned
    h = z @ np.asarray(real_cov, np.float64) @ z.T
    h = (h + h.T) / 2.0
    offset = centre - np.asarray(real_mean, np.float64)
    trace_real = float(np.trace(real_cov))
    sq_norms = np.einsum("ij,ij->i", z, z)
    out = np.empty(len(counts))
    for b, c in enumerate(np.asarray(counts, np.float64)):
        keep = np.flatnonzero(c)
        ck, hk, total = c[keep], h[np.ix_(keep, keep)], c.sum()
        m = ck @ z[keep] / total  # resample mean minus centre
        hc = hk @ ck / total  # Z C_r m, on the kept rows
        mcm = ck @ hc / total  # m^T C_r m
        s = np.sqrt(ck / (total - 1.0))
        core = (hk - hc[:, None] - hc[None, :] + mcm) * s[:, None] * s[None, :]
        cross = sqrt_eigen_sum(core)
        trace_fake = (ck @ sq_norms[keep] - total * (m @ m)) / (total - 1.0)
        diff = offset + m
        out[b] = max(diff @ diff + trace_real + trace_fake - 2.0 * cross, 0.0)
    return out


# --- KID -----------------------------------------------------------------------------------------


def _kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """KID's cubic polynomial kernel (x . y / d + 1)^3, as in `ckpt_eval.metrics.kid`."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _within_real(real: np.ndarray, block: int = 2048) -> float:
    """Mean of k(x_i, x_j) over i != j, in row blocks so a large real set fits in memory."""
    n = len(real)
    total = 0.0
    for start in range(0, n, block):
        k = _kernel(real[start : start + block], real)
        total += k.sum() - np.trace(k, offset=start)
    return float(total / (n * (n - 1)))


def kid_replicates(real: np.ndarray, fake: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The complete unbiased MMD² per resample, pairs of copies of one image left out.

    The complete U-statistic over all pairs is what the subset mean of `ckpt_eval.metrics.kid`
    estimates, without its Monte-Carlo noise; the real set's own term is computed once.
    """
    r = np.asarray(real, np.float64)
    x = np.asarray(fake, np.float64)
    c = np.asarray(counts, np.float64)
    k_ff = _kernel(x, x)
    cross = np.zeros(len(x))
    for start in range(0, len(r), 2048):
        cross += _kernel(r[start : start + 2048], x).sum(axis=0)
    cross /= len(r)
    total = c.sum(axis=1)
    pairs = np.einsum("bi,bi->b", c @ k_ff, c) - (c * c) @ np.diag(k_ff)
    within_fake = pairs / (total * total - (c * c).sum(axis=1))
    return _within_real(r) + within_fake - 2.0 * (c @ cross) / total


# --- CLIP score ----------------------------------------------------------------------------------


def mean_replicates(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Mean of the values in each weighted resample."""
    c = np.asarray(counts, np.float64)
    return c @ np.asarray(values, np.float64) / c.sum(axis=1)


# --- one checkpoint ------------------------------------------------------------------------------


def checkpoint_replicates(
    name: str,
    real: np.ndarray,
    fake: np.ndarray,
    clip_scores: np.ndarray | None,
    resamples: int,
    seed: int,
    real_stats: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """FID, KID (and CLIP) replicates of one checkpoint on one shared set of resamples.

    `real_stats` is the real set's (mean, covariance) when `real` holds only a subset of its
    rows (a large real set, see `ckpt_eval.features.moments`); None takes them from `real`.
    """
    if len(fake) < MIN_IMAGES:
        raise ValueError(f"{name}: {len(fake)} images, a bootstrap needs at least {MIN_IMAGES}")
    counts = resample_counts(len(fake), resamples, stream(seed, "bootstrap", name))
    real64 = np.asarray(real, np.float64)
    out = {
        "fid": fid_replicates(*(real_stats or statistics(real64)), fake, counts),
        "kid": kid_replicates(real64, fake, counts),
    }
    if clip_scores is not None:
        out["clip"] = mean_replicates(clip_scores, counts)
    return out
