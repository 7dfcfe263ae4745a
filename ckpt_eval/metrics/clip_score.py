"""CLIP score of each image against its own prompt: 100 * max(cos(image, prompt), 0).

Per image, as Hessel et al. (2021) define it. torchmetrics' CLIPScore computes the same 100 * cos
per image but clamps the mean instead of each image; the two agree whenever no cosine is negative,
which is the normal case for a real CLIP model and matching prompts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np


def clip_scores(image_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
    """Per-image scores, row i of images against row i of texts (float64)."""
    a = np.asarray(image_emb, np.float64)
    b = np.asarray(text_emb, np.float64)
    cos = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return 100.0 * np.clip(cos, 0.0, None)


def summarise(scores: np.ndarray) -> dict[str, float]:
    """Mean and population std (ddof=0, as torchmetrics reports a single mean)."""
    return {"mean": float(np.mean(scores)), "std": float(np.std(scores)), "n": int(len(scores))}


def per_prompt(scores: np.ndarray, prompts: Sequence[str]) -> list[dict[str, object]]:
    """Mean and std per distinct prompt, in order of first appearance."""
    groups: dict[str, list[float]] = defaultdict(list)
    for score, prompt in zip(scores, prompts, strict=True):
        groups[prompt].append(float(score))
    return [{"prompt": p, **summarise(np.array(v))} for p, v in groups.items()]
