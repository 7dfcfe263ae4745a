"""All metrics of one checkpoint, from its cached features only."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from ckpt_eval.clip_score import clip_scores, per_prompt, summarise
from ckpt_eval.errors import CkptEvalError
from ckpt_eval.fid import fid_from_features
from ckpt_eval.inception import DIM
from ckpt_eval.kid import kid
from ckpt_eval.steps import parse_position


def small_n_warning(n: int) -> str | None:
    if n >= DIM:
        return None
    return (
        f"FID from {n} images: the sample covariance has rank at most {n - 1}, far below the "
        f"{DIM} feature dimensions, so FID is biased upward and only comparable between "
        "checkpoints with the same number of images; KID (unbiased) is the better guide here."
    )


def evaluate_checkpoint(
    manifest: dict[str, Any],
    pairs: dict[str, Any],
    real_features: np.ndarray,
    fake_features: np.ndarray,
    clip: dict[str, Any],
    kid_subsets: int,
    kid_subset_size: int,
    seed: int,
) -> dict[str, Any]:
    """`clip` holds `available`, `reason`, and when available `image`/`text` embeddings."""
    name = manifest["name"]
    position = parse_position(name)
    n = len(manifest["images"])
    warnings: list[str] = []
    result: dict[str, Any] = {
        "name": name,
        "step": position.step,
        "epoch": position.epoch,
        "n_images": n,
        "n_real": int(len(real_features)),
    }
    if n >= 2:
        result["fid"] = fid_from_features(real_features, fake_features)
        k = kid(real_features, fake_features, kid_subsets, kid_subset_size, seed)
        result.update(
            kid_mean=k.mean, kid_std=k.std, kid_subsets=k.subsets, kid_subset_size=k.subset_size
        )
        if k.capped:
            warnings.append(
                f"KID subsets hold {k.subset_size} images, fewer than kid.subset_size="
                f"{kid_subset_size}, because the smaller set has only that many."
            )
        if note := small_n_warning(n):
            warnings.append(note)
    else:
        result.update(fid=None, kid_mean=None, kid_std=None, kid_subsets=0, kid_subset_size=0)
        warnings.append(
            "FID and KID need at least 2 images; this checkpoint has 1 and is unranked."
        )

    prompts = [p["prompt"] for p in pairs["pairs"]]
    per_image = [
        {"file": p["file"], "prompt": p["prompt"], "fallback": p["fallback"], "clip_score": None}
        for p in pairs["pairs"]
    ]
    result["clip_available"] = bool(clip["available"])
    result["clip_reason"] = clip.get("reason")
    if clip["available"]:
        scores = clip_scores(clip["image"], clip["text"])
        stats = summarise(scores)
        result.update(clip_score_mean=stats["mean"], clip_score_std=stats["std"])
        result["clip_per_prompt"] = per_prompt(scores, prompts)
        for row, score in zip(per_image, scores, strict=True):
            row["clip_score"] = float(score)
        result["truncated_prompts"] = clip.get("truncated", [])
    else:
        result.update(
            clip_score_mean=None, clip_score_std=None, clip_per_prompt=[], truncated_prompts=[]
        )
    result["fallback_count"] = pairs["fallback_count"]
    if pairs["fallback_count"]:
        warnings.append(
            f"{pairs['fallback_count']} image(s) had no prompt and were scored against the "
            "fallback prompt."
        )
    result["prompts_without_image"] = pairs["prompts_without_image"]
    result["skipped_images"] = manifest.get("skipped", [])
    if result["skipped_images"]:
        warnings.append(f"{len(result['skipped_images'])} unreadable image(s) were skipped.")
    sizes = Counter(f"{i['width']}x{i['height']}" for i in manifest["images"])
    result["image_sizes"] = dict(sorted(sizes.items(), key=lambda kv: -kv[1]))
    notes = Counter(i["note"] for i in manifest["images"] if i.get("note"))
    result["conversions"] = [{"note": k, "count": v} for k, v in sorted(notes.items())]
    result["per_image"] = per_image
    result["warnings"] = warnings
    return result


def checkpoint_metrics(
    inputs: Any, kid_subsets: int, kid_subset_size: int, seed: int
) -> dict[str, Any]:
    """Load and check the cached files of one checkpoint, then evaluate it.

    `inputs` has manifest, pairs, real, fake and clip paths (the Snakemake rule's input).
    """
    from ckpt_eval.featurefile import check_matches, load_features
    from ckpt_eval.manifest import read_json

    manifest = read_json(inputs.manifest)
    real_manifest = read_json(inputs.real_manifest)
    real, real_meta = load_features(inputs.real)
    check_matches(real_meta, real_manifest, inputs.real)
    fake, fake_meta = load_features(inputs.fake)
    check_matches(fake_meta, manifest, inputs.fake)
    if real_meta["weights_sha256"] != fake_meta["weights_sha256"]:
        raise CkptEvalError(
            "The real-set and checkpoint features come from different Inception weights.",
            path=inputs.fake,
            fix="rerun with --forcerun inception_real to recompute both.",
        )
    clip_arrays, clip_meta = load_features(inputs.clip)
    check_matches(clip_meta, manifest, inputs.clip)
    clip = {
        "available": clip_meta["available"],
        "reason": clip_meta.get("reason"),
        "truncated": clip_meta.get("truncated", []),
        **clip_arrays,
    }
    return evaluate_checkpoint(
        manifest,
        read_json(inputs.pairs),
        real["inception"],
        fake["inception"],
        clip,
        kid_subsets,
        kid_subset_size,
        seed,
    )
