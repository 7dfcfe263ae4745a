"""Which samples of two checkpoints are the same draw: the pairing the comparisons resample.

LoRA trainers render every checkpoint's samples from the same prompts and seeds, and so does
the generate stage: image k of prompt p at checkpoint A and at checkpoint B differ only by the
training in between. Resampling such pairs jointly lets what the prompts and seeds share cancel
out of a difference, which at 32 images is most of the noise.

A sample's key is its prompt and seed where the seed is known (the trainer's file name, the
generate stage's plan), else its prompt and its position among that prompt's images in file
order. A checkpoint's bootstrap resamples its keys, in sorted order, with counts drawn from a
stream seeded by the whole set of keys (`key_set`): two checkpoints with the same keys draw the
same resamples, so replicate b of A and replicate b of B are computed on the same pairs and
their difference is a paired bootstrap replicate of the difference. Checkpoints whose keys
differ draw independent resamples, and their comparison is the unpaired one.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def pairing_keys(per_image: Sequence[Mapping[str, Any]]) -> list[str]:
    """One key per sample: `prompt`, then `seed <s>` or `image <k>` (k-th image of the prompt);
    a seed that repeats within one prompt gets its occurrence appended, so keys are unique."""
    by_prompt: dict[str, int] = defaultdict(int)
    seen: dict[str, int] = defaultdict(int)
    keys = []
    for row in per_image:
        prompt = row["prompt"]
        seed = row.get("seed")
        base = (
            f"{prompt}\x1fseed {seed}"
            if seed is not None
            else f"{prompt}\x1fimage {by_prompt[prompt]}"
        )
        by_prompt[prompt] += 1
        keys.append(base if not seen[base] else f"{base}\x1f{seen[base]}")
        seen[base] += 1
    return keys


def key_set(keys: Sequence[str]) -> str:
    """An id of the set of keys: equal for two checkpoints exactly when their samples pair."""
    digest = hashlib.sha256("\x1e".join(sorted(keys)).encode("utf-8")).hexdigest()
    return digest[:16]


def counts_by_key(keys: Sequence[str], sorted_counts: np.ndarray) -> np.ndarray:
    """Resample counts drawn over the sorted keys, as columns in the samples' own order."""
    order = {key: i for i, key in enumerate(sorted(keys))}
    return sorted_counts[:, [order[key] for key in keys]]


def pairing_kind(per_image: Sequence[Mapping[str, Any]]) -> str:
    """`prompt and seed` when every sample's seed is known, else `prompt and position`."""
    known = per_image and all(row.get("seed") is not None for row in per_image)
    return "prompt and seed" if known else "prompt and position"
