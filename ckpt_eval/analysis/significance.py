"""Can two checkpoints be told apart? Bootstrap intervals of their differences, and tiers.

Metrics with bootstrap replicates (FID, KID: `Quantity.interval` in the registry): each
checkpoint's replicates come from its own, independent resamples of its own samples (the real set
held fixed, `ckpt_eval.analysis.bootstrap`), so replicate b of A minus replicate b of B is a
replicate of the difference of two independent estimates. Per-image metrics (CLIP score:
`Quantity.per_image`), where both checkpoints scored the same prompts: the images are paired
(same prompt, same position among that prompt's images, which is the same seed when the samples
were rendered per prompt and seed), and the pairs are resampled together, so what the prompts
share cancels out of the difference.

A difference is significant when its interval at `level` excludes 0. No correction is made for
the number of comparisons: with many checkpoints, expect about (1 - level) of the truly equal
pairs to look different; the report says so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ckpt_eval.analysis.bootstrap import MIN_IMAGES, Interval, resample_counts, shifted_interval
from ckpt_eval.metrics.registry import quantity
from ckpt_eval.seeding import stream


def difference(
    point_a: float, point_b: float, reps_a: np.ndarray, reps_b: np.ndarray, level: float
) -> Interval:
    """Interval of A - B from paired-by-index replicates of independent estimates."""
    return shifted_interval(point_a - point_b, np.asarray(reps_a) - np.asarray(reps_b), level)


def pairing_keys(per_image: Sequence[Mapping[str, Any]]) -> list[tuple[str, int]]:
    """(prompt, k) for the k-th image of each prompt, in the checkpoint's file order."""
    seen: dict[str, int] = defaultdict(int)
    keys = []
    for row in per_image:
        keys.append((row["prompt"], seen[row["prompt"]]))
        seen[row["prompt"]] += 1
    return keys


def paired_difference(
    a: Sequence[Mapping[str, Any]],
    b: Sequence[Mapping[str, Any]],
    column: str,
    resamples: int,
    level: float,
    seed: int,
    names: tuple[str, str],
) -> Interval | None:
    """Mean per-image `column` of A minus B over their paired images; None below MIN_IMAGES
    pairs. The CLIP score's stream is keyed "clip-pair" (as it always was), others by column."""
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
    return shifted_interval(float(diffs.mean()), counts @ diffs / len(diffs), level)


def compare(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    replicates: Mapping[str, Mapping[str, np.ndarray]],
    metrics: Sequence[str],
    resamples: int,
    level: float,
    seed: int,
) -> dict[str, dict[str, Any]] | None:
    """A - B for each metric, with interval and verdict; None if either lacks replicates."""
    if a["name"] not in replicates or b["name"] not in replicates:
        return None
    out = {}
    for metric in metrics:
        q = quantity(metric)
        interval = None
        how = "independent"
        if q.per_image:
            interval = paired_difference(
                a["per_image"],
                b["per_image"],
                q.per_image,
                resamples,
                level,
                seed,
                (a["name"], b["name"]),
            )
            how = "paired"
        if interval is None:
            interval = difference(
                q.value(a),
                q.value(b),
                replicates[a["name"]][metric],
                replicates[b["name"]][metric],
                level,
            )
            how = "independent"
        significant = interval.low > 0 or interval.high < 0
        a_better = (interval.point < 0) == (q.better == "lower")
        out[metric] = {
            "difference": interval.point,
            **interval.as_dict(),
            "pairing": how,
            "significant": significant,
            "better": (a["name"] if a_better else b["name"]) if significant else None,
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
