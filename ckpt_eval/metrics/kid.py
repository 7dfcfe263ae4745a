"""Kernel Inception Distance: the unbiased MMD² with the cubic polynomial kernel.

k(x, y) = (x·y / d + 1)^3, averaged over seeded random subsets (Bińkowski et al. 2018, the
estimator clean-fid and torch-fidelity use). Unlike FID it is unbiased in N, so it stays
meaningful for the small sample sets checkpoints usually have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ckpt_eval.metrics.registry import CheckpointData, Measure, Notice, Outcome, Quantity

# Up to this many bytes of float64 kernel matrices of the whole sets, they are computed once and
# every subset's MMD² is read from them (indexing instead of three matrix products per subset:
# 100 subsets of a 200-image checkpoint cost one product instead of 100). Larger sets (a real
# set of thousands of kept rows) compute each subset's kernels as they are drawn.
WHOLE_KERNEL_BYTES = 256 * 2**20


def polynomial_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """k(a, b) = (a·b / d + 1)^3 for every pair of rows, in float64."""
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def mmd2_from_kernels(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    """Unbiased MMD² of two equal-size sets from their kernel matrices."""
    m = len(k_xx)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² between two equal-size sets under k(a, b) = (a·b / d + 1)^3."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if y.shape[0] != x.shape[0]:
        raise ValueError("subsets must have the same size")
    return mmd2_from_kernels(
        polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    )


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
    draws = [
        (rng.choice(len(real), size, replace=False), rng.choice(len(fake), size, replace=False))
        for _ in range(subsets)
    ]
    if (len(real) + len(fake)) ** 2 * 8 <= WHOLE_KERNEL_BYTES:
        x, y = np.asarray(real, np.float64), np.asarray(fake, np.float64)
        k_rr, k_ff, k_rf = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
        values = np.array(
            [
                mmd2_from_kernels(k_rr[np.ix_(r, r)], k_ff[np.ix_(f, f)], k_rf[np.ix_(r, f)])
                for r, f in draws
            ]
        )
    else:
        values = np.array([polynomial_mmd2(real[r], fake[f]) for r, f in draws])
    return KidResult(float(values.mean()), float(values.std()), subsets, size, size < subset_size)


def _within_real(real: np.ndarray, block: int = 2048) -> float:
    """Mean of k(x_i, x_j) over i != j, in row blocks so a large real set fits in memory."""
    n = len(real)
    total = 0.0
    for start in range(0, n, block):
        k = polynomial_kernel(real[start : start + block], real)
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
    k_ff = polynomial_kernel(x, x)
    cross = np.zeros(len(x))
    for start in range(0, len(r), 2048):
        cross += polynomial_kernel(r[start : start + 2048], x).sum(axis=0)
    cross /= len(r)
    total = c.sum(axis=1)
    pairs = np.einsum("bi,bi->b", c @ k_ff, c) - (c * c) @ np.diag(k_ff)
    within_fake = pairs / (total * total - (c * c).sum(axis=1))
    return _within_real(r) + within_fake - 2.0 * (c @ cross) / total


def _compute(data: CheckpointData) -> Outcome:
    cfg = data.settings["kid"]
    if data.n < 2:
        return Outcome({"kid_mean": None, "kid_std": None, "kid_subsets": 0, "kid_subset_size": 0})
    k = kid(data.real, data.fake, cfg["subsets"], cfg["subset_size"], data.seed)
    out = Outcome(
        {
            "kid_mean": k.mean,
            "kid_std": k.std,
            "kid_subsets": k.subsets,
            "kid_subset_size": k.subset_size,
        }
    )
    if k.capped:
        out.notices.append(
            Notice("kid.capped", {"size": k.subset_size, "configured": cfg["subset_size"]})
        )
    return out


def _replicates(data: CheckpointData, counts: np.ndarray) -> dict[str, np.ndarray]:
    return {"kid": kid_replicates(np.asarray(data.real, np.float64), data.fake, counts)}


def _describe(config: Any) -> list[tuple[str, str]]:
    return [
        (
            "KID",
            "(Kernel Inception Distance, lower is better): unbiased MMD² with the kernel "
            f"(x·y/d + 1)³ on the same features, averaged over {config['kid']['subsets']} "
            f"random subsets of min({config['kid']['subset_size']}, n) images (seed "
            f"{config['seed']}); ± is the std over subsets. Small negative values are normal "
            "for an unbiased estimator when the sets are alike.",
        )
    ]


MEASURE = Measure(
    key="kid",
    order=20,
    quantities=(
        Quantity(
            key="kid",
            label="KID",
            better="lower",
            point="kid_mean",
            digits=4,
            interval="kid_ci",
            spread="kid_std",
            columns=(("kid_mean", "kid_mean"), ("kid_std", "kid_std")),
            compare=True,
            rankable=True,
        ),
    ),
    compute=_compute,
    replicates=_replicates,
    describe=_describe,
    notices={
        "kid.capped": "KID subsets hold {size} images, fewer than kid.subset_size={configured}, "
        "because the smaller set has only that many."
    },
    settings=("kid",),
)
