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
from typing import Any

import numpy as np

from ckpt_eval.metrics.fid import fid_replicates, statistics
from ckpt_eval.metrics.registry import CheckpointData, Measure, Notice, Outcome, Quantity
from ckpt_eval.seeding import stream


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


def _compute(data: CheckpointData) -> Outcome:
    cfg = data.settings["fid_infinity"]
    if not cfg["enabled"] or data.n < 2:
        return Outcome({"fid_infinity": None})
    if data.n < cfg["min_images"]:
        return Outcome(
            {"fid_infinity": None},
            notices=[Notice("fid_infinity.too_few", {"n": data.n, "min": cfg["min_images"]})],
        )
    stats = data.real_stats or statistics(data.real)
    r = fid_infinity(*stats, data.fake, cfg["points"], cfg["min_fraction"], data.seed, data.name)
    return Outcome(
        {"fid_infinity": {"value": r.value, "slope": r.slope, "sizes": r.sizes, "fids": r.fids}}
    )


def _describe(config: Any) -> list[tuple[str, str]]:
    fi = config["fid_infinity"]
    if not fi["enabled"]:
        return []
    return [
        (
            "FID∞",
            "(Chong & Forsyth 2020): FID on one seeded random subset for each of "
            f"{fi['points']} sizes evenly spaced in 1/N from {100 * fi['min_fraction']:.0f}% of "
            "the samples to all of them, a least-squares line FID = FID∞ + b/N, and its "
            "intercept: FID with the small-N bias removed, comparable across different N. "
            f"Checkpoints with fewer than {fi['min_images']} samples get none.",
        )
    ]


MEASURE = Measure(
    key="fid_infinity",
    order=70,
    quantities=(
        Quantity(
            key="fid_infinity",
            label="FID∞",
            better="lower",
            point="fid_infinity.value",
            table="secondary",
            chart=False,
        ),
    ),
    compute=_compute,
    describe=_describe,
    notices={
        "fid_infinity.too_few": "FID-infinity not computed: {n} images, "
        "fid_infinity.min_images is {min}."
    },
    settings=("fid_infinity",),
)
