"""PickScore: how much people would prefer each image for its own prompt (Kirstain et al. 2023).

PickScore is CLIP-H/14 fine-tuned on Pick-a-Pic's human choices (`yuvalkirstain/PickScore_v1`,
processor `laion/CLIP-ViT-H-14-laion2B-s32B-b79K`). The authors' inference code scores an image
against its prompt as

    score = logit_scale.exp() · cos(image embedding, prompt embedding)

(both embeddings L2-normalised, `logit_scale.exp()` the model's own), and turns the scores
of several images of one prompt into preference probabilities with a softmax. The score is
made to compare images of one prompt; the checkpoint's mean over its images is comparable
between checkpoints that rendered the same prompts, which is what the paired comparison (same
prompt, same position among its images) uses. Per image, per prompt and per checkpoint (mean
and population std, as the CLIP score); replicates are the weighted means.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ckpt_eval.metrics.checks import as_features
from ckpt_eval.metrics.clip_score import per_prompt, summarise
from ckpt_eval.metrics.registry import (
    OFF,
    CheckpointData,
    Measure,
    Notice,
    Outcome,
    Quantity,
    mean_replicates,
)

EXTRACTOR = "pickscore"
DEFAULT_MODEL = "yuvalkirstain/PickScore_v1"
DEFAULT_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
FIELDS = ("pickscore_mean", "pickscore_std")


def pickscores(image_emb: np.ndarray, text_emb: np.ndarray, logit_scale: Any) -> np.ndarray:
    """Per-image scores, row i of images against row i of prompts, float64."""
    a = as_features(image_emb, "PickScore image", allow_empty=False)
    b = as_features(text_emb, "PickScore text", allow_empty=False)
    if a.shape != b.shape:
        raise ValueError(f"image embeddings {a.shape} and prompt embeddings {b.shape} differ")
    scale = np.asarray(logit_scale, np.float64).reshape(-1)
    if scale.size != 1 or not np.isfinite(scale[0]) or scale[0] <= 0:
        raise ValueError(f"logit_scale must be one positive number, got {scale.tolist()}")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    if (norms == 0).any():
        raise ValueError("a zero PickScore embedding has no direction")
    return float(scale[0]) * (a * b).sum(axis=1) / norms


def missing(data: CheckpointData) -> str | None:
    """Why it cannot be computed for this checkpoint (see `CheckpointData.missing`)."""
    return data.missing(EXTRACTOR, "PickScore", ("image", "text", "logit_scale"))


def _scores(data: CheckpointData) -> np.ndarray:
    arrays = data.features[EXTRACTOR]
    return pickscores(arrays["image"], arrays["text"], arrays["logit_scale"])


def _compute(data: CheckpointData) -> Outcome:
    why = missing(data)
    empty = {**dict.fromkeys(FIELDS), "pickscore_per_prompt": [], "pickscore_truncated": []}
    if why == OFF:
        return Outcome(empty)
    if why is not None:
        return Outcome(
            empty,
            per_image={"pickscore": [None] * data.n},
            notices=[Notice("pickscore.unavailable", {"reason": why})],
        )
    scores = _scores(data)
    stats = summarise(scores)
    truncated = list(data.status.get(EXTRACTOR, {}).get("truncated") or [])
    out = Outcome(
        {
            "pickscore_mean": stats["mean"],
            "pickscore_std": stats["std"],
            "pickscore_per_prompt": per_prompt(
                scores, [p["prompt"] for p in data.per_image], data.settings["bootstrap"]["level"]
            ),
            "pickscore_truncated": truncated,
        },
        per_image={"pickscore": [float(s) for s in scores]},
    )
    if truncated:
        out.notices.append(Notice("pickscore.truncated", {"count": len(truncated)}))
    return out


def _replicates(data: CheckpointData, counts: np.ndarray) -> dict[str, np.ndarray]:
    if missing(data) is not None:
        return {}
    return {"pickscore": mean_replicates(_scores(data), counts)}


def _describe(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    section = config.get("pickscore", {})
    if not section.get("enabled"):
        return []
    model = section.get("model", DEFAULT_MODEL)
    processor = section.get("processor", DEFAULT_PROCESSOR)
    return [
        (
            "PickScore",
            "(Kirstain et al. 2023, higher is preferred): per image, the model's "
            "logit_scale.exp() times the cosine similarity between the image and its own "
            f"prompt, with {model} (processor {processor}), a CLIP-H/14 fine-tuned on human "
            "choices between images of one prompt; mean and std per checkpoint and per prompt. "
            "Meaningful between images of the same prompts: checkpoints are compared on their "
            "images paired by prompt. Prompts over 77 tokens are truncated and listed.",
        )
    ]


MEASURE = Measure(
    key="pickscore",
    order=38,
    quantities=(
        Quantity(
            key="pickscore",
            label="PickScore",
            better="higher",
            point="pickscore_mean",
            interval="pickscore_ci",
            spread="pickscore_std",
            columns=(("pickscore_mean", "pickscore_mean"), ("pickscore_std", "pickscore_std")),
            compare=True,
            rankable=True,
            per_image="pickscore",
            per_prompt="pickscore_per_prompt",
        ),
    ),
    compute=_compute,
    replicates=_replicates,
    describe=_describe,
    notices={
        "pickscore.unavailable": "PickScore not computed: {reason}.",
        "pickscore.truncated": "{count} prompt(s) are longer than PickScore's 77 tokens and were "
        "truncated (listed in the results JSON, pickscore_truncated).",
    },
)
