"""Fréchet Inception Distance from feature statistics, in float64, without scipy's sqrtm.

tr(sqrt(S1 S2)) equals the sum of the square roots of the eigenvalues of sqrt(S1) S2 sqrt(S1),
a symmetric positive semi-definite matrix, so two symmetric eigendecompositions give it exactly
and stay stable when N < 2048 makes the covariances rank-deficient (sqrtm can return complex
values or fail there).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ckpt_eval.features.inception_id import DIM
from ckpt_eval.forked import map_rows
from ckpt_eval.metrics.registry import CheckpointData, Measure, Notice, Outcome, Quantity


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (N - 1), in float64, as clean-fid and torch-fidelity use."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors, got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _significant(values: np.ndarray) -> np.ndarray:
    """A PSD matrix's eigenvalues with rounding noise set to zero.

    Rank-deficient covariances (N < 2048) leave eigenvalues that are zero in exact arithmetic
    but come out as noise of size ~ n * eps * largest; their square roots (~1e-7 of the largest
    one's) would add a bias of that size. Below that level they are taken as zero, the tolerance
    numpy's matrix_rank uses.
    """
    if values.size == 0:
        return values
    noise = values.max() * len(values) * np.finfo(np.float64).eps
    return np.where(values > noise, values, 0.0)


def sqrt_eigen_sum(matrix: np.ndarray) -> float:
    """tr sqrt(M) of a symmetric PSD matrix: the sum of the square roots of its eigenvalues."""
    return float(np.sqrt(_significant(np.linalg.eigvalsh((matrix + matrix.T) / 2.0))).sum())


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vectors * np.sqrt(_significant(values))) @ vectors.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr sqrt(S1 S2) = tr sqrt(sqrt(S1) S2 sqrt(S1)), whose argument is symmetric PSD."""
    root = _psd_sqrt(np.asarray(sigma1, np.float64))
    return sqrt_eigen_sum(root @ np.asarray(sigma2, np.float64) @ root)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    value = (
        diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    )
    return float(max(value, 0.0))


def frechet_distance_to_rows(mu1: np.ndarray, sigma1: np.ndarray, rows: np.ndarray) -> float:
    """FID between the statistics (mu1, sigma1) and those of `rows` (N x d features).

    With N <= d (a checkpoint's samples against 2048-d features, nearly always) the rows'
    covariance is Y^T Y with Y the centred rows over sqrt(N - 1), and the nonzero eigenvalues
    of sigma1 Y^T Y are those of the N x N matrix Y sigma1 Y^T: one small symmetric
    eigendecomposition instead of two of d x d (1.5 s at d = 2048 on a laptop-class CPU, per
    checkpoint), and no near-zero eigenvalues to set aside. The value equals
    `frechet_distance(mu1, sigma1, *statistics(rows))` to ~1e-10 relative (tests: 1e-9), as the
    bootstrap replicates compute it (`fid_replicates`).
    """
    x = np.asarray(rows, np.float64)
    n, d = x.shape
    if n > d:
        return frechet_distance(mu1, sigma1, *statistics(x))
    if n < 2:
        raise ValueError(f"need at least 2 feature vectors, got shape {x.shape}")
    mu2 = x.mean(axis=0)
    y = (x - mu2) / np.sqrt(n - 1.0)
    sigma1 = np.asarray(sigma1, np.float64)
    cross = sqrt_eigen_sum(y @ sigma1 @ y.T)
    diff = np.asarray(mu1, np.float64) - mu2
    value = diff @ diff + np.trace(sigma1) + np.einsum("ij,ij->", y, y) - 2.0 * cross
    return float(max(value, 0.0))


def fid_replicates(
    real_mean: np.ndarray,
    real_cov: np.ndarray,
    fake: np.ndarray,
    counts: np.ndarray,
    processes: int = 1,
) -> np.ndarray:
    """FID of the real statistics against each weighted resample of `fake` (rows of counts).

    A row of counts may sum to anything from 2 up: a resample with replacement sums to n, a
    subset without replacement (0/1 counts, as `ckpt_eval.metrics.fid_infinity` uses) to its size.

    No d x d eigendecomposition per replicate: with real covariance C_r and the resample's
    centred, weighted rows Y (so C = Y^T Y), the nonzero eigenvalues of C_r C equal those of the
    small n x n matrix Y C_r Y^T, so tr sqrt(C_r C) is the sum of their square roots; and
    Y C_r Y^T follows from one precomputed H = Z C_r Z^T (Z the centred samples) by rank-one
    corrections. Each row is computed alone from H, so they are split over `processes`
    (`ckpt_eval.forked`) with the same bits for any number.
    """
    x = np.asarray(fake, np.float64)
    centre = x.mean(axis=0)
    z = x - centre  # every quantity below is shift-invariant; centring keeps it well conditioned
    h = z @ np.asarray(real_cov, np.float64) @ z.T
    h = (h + h.T) / 2.0
    offset = centre - np.asarray(real_mean, np.float64)
    trace_real = float(np.trace(real_cov))
    sq_norms = np.einsum("ij,ij->i", z, z)

    def rows(chunk: np.ndarray) -> np.ndarray:
        out = np.empty(len(chunk))
        for b, c in enumerate(chunk):
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

    return map_rows(rows, np.asarray(counts, np.float64), processes)


def _compute(data: CheckpointData) -> Outcome:
    if data.n < 2:
        return Outcome({"fid": None}, notices=[Notice("fid.too_few", {"n": data.n})])
    stats = data.real_stats or statistics(data.real)
    out = Outcome({"fid": frechet_distance_to_rows(*stats, data.fake)})
    if data.n < DIM:
        out.notices.append(Notice("fid.small_n", {"n": data.n, "rank": data.n - 1, "dim": DIM}))
    return out


def _replicates(data: CheckpointData, counts: np.ndarray) -> dict[str, np.ndarray]:
    stats = data.real_stats or statistics(data.real)
    return {"fid": fid_replicates(*stats, data.fake, counts, data.processes)}


def _describe(config: Any) -> list[tuple[str, str]]:
    return [
        (
            "FID",
            "(Fréchet Inception Distance, lower is better): Fréchet distance between Gaussians "
            f"fitted (float64 mean and unbiased covariance) to Inception-v3 pool3 features "
            f"({DIM}-d) of the real images and of each checkpoint's samples. Network: the TF "
            "2015-12-05 Inception in TorchScript (the one clean-fid and torch-fidelity use); "
            'preprocessing as clean-fid\'s "clean" mode (PIL bicubic resize to 299x299 in '
            "float32, then (x-128)/128). tr sqrt(S1 S2) is the sum of the square roots of the "
            "eigenvalues of sqrt(S1) S2 sqrt(S1), from symmetric eigendecompositions: exact also "
            f"when fewer than {DIM} images make the covariances rank-deficient. FID is biased "
            "upward for small N: compare checkpoints with equal image counts, and read KID.",
        )
    ]


MEASURE = Measure(
    key="fid",
    order=10,
    quantities=(
        Quantity(
            key="fid",
            label="FID",
            better="lower",
            point="fid",
            interval="fid_ci",
            compare=True,
            rankable=True,
            anchor=True,
            band="fid_bands",
            overfitting=True,
        ),
    ),
    compute=_compute,
    replicates=_replicates,
    describe=_describe,
    notices={
        "fid.too_few": "FID and KID need at least 2 images; this checkpoint has {n} and is "
        "unranked.",
        "fid.small_n": "FID from {n} images: the sample covariance has rank at most {rank}, far "
        "below the {dim} feature dimensions, so FID is biased upward and only comparable "
        "between checkpoints with the same number of images; KID (unbiased) is the better "
        "guide here.",
    },
)
