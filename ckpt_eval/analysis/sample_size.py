"""How many images per checkpoint would tell the top two checkpoints apart.

From the bootstrap: the standard error `se` of the difference between the best checkpoint and
the runner-up, measured at n images, shrinks as 1/sqrt(n) (for FID only approximately: its
small-n bias changes with n too, so treat its figure as a rough one). A two-sided test at level
alpha with power 1 - beta then needs |d| >= (z_{1-alpha/2} + z_{1-beta}) * se(n'), that is
n' = n * ((z_{1-alpha/2} + z_{1-beta}) * se / |d|)^2 images, assuming the observed difference
d is the true one. alpha is the first threshold of Holm's correction over the family (alpha / m):
what the smallest p of the family must beat to count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any

POWER = 0.8


def images_needed(n: int, difference: float, se: float, alpha: float, power: float) -> int | None:
    """Images per checkpoint for the test to find `difference` with `power`; None if unknown."""
    if not difference or not se or not math.isfinite(se):
        return None
    z = NormalDist().inv_cdf(1.0 - alpha / 2.0) + NormalDist().inv_cdf(power)
    return max(2, math.ceil(n * (z * se / abs(difference)) ** 2))


def sample_size_advice(
    best: Mapping[str, Any],
    runner_up: Mapping[str, Any],
    comparison: Mapping[str, Mapping[str, Any]] | None,
    metrics: Sequence[str],
    level: float,
    family: int,
    power: float = POWER,
) -> dict[str, Any] | None:
    """Facts: per ranking metric the images that would separate `runner_up` from `best` (the
    comparison is runner_up - best), and the smallest of them."""
    if comparison is None:
        return None
    alpha = (1.0 - level) / max(family, 1)
    n = int(best["n_images"])
    per_metric = []
    for metric in metrics:
        c = comparison.get(metric)
        if c is None:
            continue
        per_metric.append(
            {
                "metric": metric,
                "difference": c["difference"],
                "se": c.get("se"),
                "pairing": c["pairing"],
                "significant": c["significant"],
                "n_needed": images_needed(n, c["difference"], c.get("se"), alpha, power),
            }
        )
    known = [m for m in per_metric if m["n_needed"] is not None]
    first = min(known, key=lambda m: m["n_needed"]) if known else None
    prompts = len({row["prompt"] for row in best.get("per_image", [])}) or None
    needed = first["n_needed"] if first else None
    return {
        "best": best["name"],
        "runner_up": runner_up["name"],
        "n_images": n,
        "level": level,
        "power": power,
        "alpha": alpha,
        "family": family,
        "per_metric": per_metric,
        "metric": first["metric"] if first else None,
        "n_needed": needed,
        "separated": any(m["significant"] for m in per_metric),
        "prompts": prompts,
        "images_per_prompt": math.ceil(needed / prompts) if needed and prompts else None,
    }
