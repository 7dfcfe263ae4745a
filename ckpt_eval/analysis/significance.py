"""Can two checkpoints be told apart? Bootstrap intervals of their differences, corrected
p-values, and tiers.

Every metric with replicates is compared through them. Two checkpoints whose samples pair (the
same prompts and seeds, or the same prompts and positions: `ckpt_eval.analysis.pairing`) drew
the same resamples, so replicate b of A minus replicate b of B is a paired replicate of the
difference: what the prompts and seeds share cancels out. Checkpoints whose samples do not pair
drew independent resamples, and the same subtraction is the unpaired comparison. Per-image
metrics (CLIP score) of checkpoints whose keys only partly agree are compared on the images both
have.

The verdicts are corrected for multiple comparisons: the p-values of a family of comparisons
(every pair of ranked checkpoints on every compared metric) go through Holm's step-down
procedure, and a difference is significant when its adjusted p is below 1 - level.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ckpt_eval.analysis.bootstrap import MIN_IMAGES, Interval, resample_counts, shifted_interval
from ckpt_eval.analysis.pairing import pairing_keys
from ckpt_eval.metrics.registry import quantity
from ckpt_eval.seeding import stream


def difference(
    point_a: float, point_b: float, reps_a: np.ndarray, reps_b: np.ndarray, level: float
) -> tuple[Interval, np.ndarray]:
    """Interval of A - B from replicates of A and B drawn on the same resample index."""
    reps = np.asarray(reps_a, np.float64) - np.asarray(reps_b, np.float64)
    return shifted_interval(point_a - point_b, reps, level), reps


def p_value(point: float, replicates: np.ndarray) -> float:
    """Two-sided p of "no difference" from the bootstrap standard error (normal approximation).

    The percentile interval's own p would be a multiple of 1/resamples, too coarse for a Holm
    correction over many comparisons; the standard error gives a smooth p that agrees with the
    interval when the replicates are near normal.
    """
    se = float(np.std(replicates, ddof=1))
    if se == 0.0:
        return 0.0 if point != 0.0 else 1.0
    return math.erfc(abs(point) / se / math.sqrt(2.0))


def paired_difference(
    a: Sequence[Mapping[str, Any]],
    b: Sequence[Mapping[str, Any]],
    column: str,
    resamples: int,
    level: float,
    seed: int,
    names: tuple[str, str],
) -> tuple[Interval, np.ndarray, int] | None:
    """Mean per-image `column` of A minus B over the images whose pairing keys both have; None
    below MIN_IMAGES pairs. For checkpoints whose keys only partly agree (with equal key sets
    the shared resamples pair every metric already)."""
    values_b = dict(zip(pairing_keys(b), (r.get(column) for r in b), strict=True))
    pairs = [
        (row.get(column), values_b[key])
        for key, row in zip(pairing_keys(a), a, strict=True)
        if key in values_b and row.get(column) is not None and values_b[key] is not None
    ]
    if len(pairs) < MIN_IMAGES:
        return None
    diffs = np.array([x - y for x, y in pairs], np.float64)
    purpose = "clip-pair" if column == "clip_score" else f"{column}-pair"
    counts = resample_counts(len(diffs), resamples, stream(seed, purpose, *names))
    reps = counts @ diffs / len(diffs)
    return shifted_interval(float(diffs.mean()), reps, level), reps, len(pairs)


def same_pairs(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether the two checkpoints' samples pair one to one (equal sets of pairing keys)."""
    ka = (a.get("pairing") or {}).get("key_set")
    return ka is not None and ka == (b.get("pairing") or {}).get("key_set")


def compare(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    replicates: Mapping[str, Mapping[str, np.ndarray]],
    metrics: Sequence[str],
    resamples: int,
    level: float,
    seed: int,
) -> dict[str, dict[str, Any]] | None:
    """A - B for each metric: interval, p, pairing and the uncorrected verdict (`holm` corrects
    it over a family); None if either lacks replicates."""
    if a["name"] not in replicates or b["name"] not in replicates:
        return None
    paired = same_pairs(a, b)
    out = {}
    for metric in metrics:
        q = quantity(metric)
        found = None
        if not paired and q.per_image:
            found = paired_difference(
                a["per_image"],
                b["per_image"],
                q.per_image,
                resamples,
                level,
                seed,
                (a["name"], b["name"]),
            )
        if found is not None:
            interval, reps, pairs = found
            how = "paired"
        else:
            interval, reps = difference(
                q.value(a),
                q.value(b),
                replicates[a["name"]][metric],
                replicates[b["name"]][metric],
                level,
            )
            how = "paired" if paired else "independent"
            pairs = (a.get("pairing") or {}).get("n", a["n_images"]) if paired else 0
        excludes_zero = interval.low > 0 or interval.high < 0
        out[metric] = {
            "difference": interval.point,
            **interval.as_dict(),
            "pairing": how,
            "pairs": int(pairs),
            "p": p_value(interval.point, reps),
            "se": float(np.std(reps, ddof=1)),
            "interval_excludes_zero": excludes_zero,
            "significant": excludes_zero,
            "better": _better(q, interval.point, a["name"], b["name"]) if excludes_zero else None,
        }
    return out


def _better(q: Any, difference: float, a: str, b: str) -> str:
    return a if (difference < 0) == (q.better == "lower") else b


def holm(comparisons: Sequence[tuple[str, str, str, dict[str, Any]]], alpha: float) -> None:
    """Holm's step-down correction over a family of (a, b, metric, comparison), in place.

    Each comparison gets `p_adjusted`; `significant` then means p_adjusted < alpha, so among
    truly equal checkpoints the chance of any false "significant" in the family is at most
    alpha. The interval shown stays the uncorrected one (`interval_excludes_zero`).
    """
    order = sorted(range(len(comparisons)), key=lambda i: comparisons[i][3]["p"])
    m = len(order)
    running = 0.0
    for rank, i in enumerate(order):
        a, b, metric, c = comparisons[i]
        running = max(running, min(1.0, (m - rank) * c["p"]))
        c["p_adjusted"] = running
        c["significant"] = running < alpha
        c["better"] = _better(quantity(metric), c["difference"], a, b) if c["significant"] else None


def reversed_comparison(comparison: dict[str, dict[str, Any]] | None) -> dict | None:
    """B - A from A - B: the same test, the signs turned."""
    if comparison is None:
        return None
    out = {}
    for metric, c in comparison.items():
        out[metric] = {
            **c,
            "difference": -c["difference"],
            "low": -c["high"],
            "high": -c["low"],
            "bias": -c["bias"],
        }
    return out


def indistinguishable(comparison: Mapping[str, Mapping[str, Any]] | None) -> bool:
    return comparison is not None and not any(c["significant"] for c in comparison.values())


def tiers(
    ranked: Sequence[str],
    comparison: Callable[[str, str], Mapping[str, Mapping[str, Any]] | None],
) -> list[list[str]]:
    """Groups in rank order: the best remaining checkpoint and all it cannot be told apart from.

    `ranked` is best first; `comparison(a, b)` compares a and b on the ranking's metrics.
    """
    remaining = list(ranked)
    groups = []
    while remaining:
        leader = remaining[0]
        group = [leader] + [n for n in remaining[1:] if indistinguishable(comparison(leader, n))]
        groups.append(group)
        remaining = [name for name in remaining if name not in group]
    return groups
