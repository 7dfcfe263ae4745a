"""CLIP score of each image against its own prompt: 100 * max(cos(image, prompt), 0).

Per image, as Hessel et al. (2021) define it. torchmetrics' CLIPScore computes the same 100 * cos
per image but clamps the mean instead of each image; the two agree whenever no cosine is negative,
which is the normal case for a real CLIP model and matching prompts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from ckpt_eval.features.extractors import CLIP_MAX_TOKENS
from ckpt_eval.metrics.registry import (
    CheckpointData,
    Measure,
    Outcome,
    Quantity,
    mean_replicates,
)


def clip_scores(image_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
    """Per-image scores, row i of images against row i of texts (float64)."""
    a = np.asarray(image_emb, np.float64)
    b = np.asarray(text_emb, np.float64)
    cos = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return 100.0 * np.clip(cos, 0.0, None)


def summarise(scores: np.ndarray) -> dict[str, float]:
    """Mean and population std (ddof=0, as torchmetrics reports a single mean)."""
    return {"mean": float(np.mean(scores)), "std": float(np.std(scores)), "n": int(len(scores))}


def mean_interval(values: np.ndarray, level: float) -> dict[str, float] | None:
    """Student's t interval of the mean (sample std, n - 1 degrees of freedom); None below 2
    values.

    Per prompt there are a handful of images (the demo's 5, a trainer's 4 to 8): too few for the
    bootstrap's percentile interval (see `ckpt_eval.analysis.bootstrap.MIN_IMAGES`), which is far
    too narrow at that size, while t's interval is exact for normal scores and close for the
    bounded, unimodal per-image scores of one prompt.
    """
    from scipy.stats import t

    values = np.asarray(values, np.float64)
    n = len(values)
    if n < 2:
        return None
    mean = float(values.mean())
    half = float(t.ppf((1 + level) / 2, n - 1) * values.std(ddof=1) / np.sqrt(n))
    return {"low": mean - half, "high": mean + half, "level": float(level)}


def per_prompt(scores: np.ndarray, prompts: Sequence[str], level: float) -> list[dict[str, object]]:
    """Mean, std and the `level` t interval of the mean (`ci`) per distinct prompt, in order of
    first appearance."""
    groups: dict[str, list[float]] = defaultdict(list)
    for score, prompt in zip(scores, prompts, strict=True):
        groups[prompt].append(float(score))
    return [
        {"prompt": p, **summarise(np.array(v)), "ci": mean_interval(np.array(v), level)}
        for p, v in groups.items()
    ]


def _scores(data: CheckpointData) -> np.ndarray:
    return clip_scores(data.clip["image"], data.clip["text"])


def _compute(data: CheckpointData) -> Outcome:
    if not data.clip["available"]:
        return Outcome(
            {
                "clip_score_mean": None,
                "clip_score_std": None,
                "clip_per_prompt": [],
                "truncated_prompts": [],
            },
            per_image={"clip_score": [None] * data.n},
        )
    scores = _scores(data)
    stats = summarise(scores)
    return Outcome(
        {
            "clip_score_mean": stats["mean"],
            "clip_score_std": stats["std"],
            "clip_per_prompt": per_prompt(
                scores, [p["prompt"] for p in data.per_image], data.settings["bootstrap"]["level"]
            ),
            "truncated_prompts": list(data.clip.get("truncated", [])),
        },
        per_image={"clip_score": [float(s) for s in scores]},
    )


def _replicates(data: CheckpointData, counts: np.ndarray) -> dict[str, np.ndarray]:
    if not data.clip["available"]:
        return {}
    return {"clip": mean_replicates(_scores(data), counts)}


def _describe(config: Any) -> list[tuple[str, str]]:
    return [
        (
            "CLIP score",
            "(higher is better): 100 · max(cos(image, its own prompt), 0) with "
            f"{config['clip']['model']}, per image as Hessel et al. (2021) define it "
            "(torchmetrics clamps the mean instead; the two agree when no cosine is negative). "
            f"Prompts longer than {CLIP_MAX_TOKENS} tokens are truncated and listed.",
        )
    ]


MEASURE = Measure(
    key="clip",
    order=30,
    quantities=(
        Quantity(
            key="clip",
            label="CLIP score",
            better="higher",
            point="clip_score_mean",
            interval="clip_ci",
            spread="clip_score_std",
            columns=(("clip_score_mean", "clip_score_mean"), ("clip_score_std", "clip_score_std")),
            compare=True,
            rankable=True,
            per_image="clip_score",
            per_prompt="clip_per_prompt",
            band="clip_bands",
        ),
    ),
    compute=_compute,
    replicates=_replicates,
    describe=_describe,
)
