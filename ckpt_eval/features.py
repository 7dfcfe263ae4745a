"""Feature extraction jobs: read a manifest, write a cached feature file recording its sources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ckpt_eval import clip_embed, inception
from ckpt_eval.device import resolve_device
from ckpt_eval.errors import CkptEvalError
from ckpt_eval.featurefile import save_features
from ckpt_eval.manifest import read_json, write_json


def inception_features(
    manifest_path: str | Path,
    out: str | Path,
    weights: str | None,
    device_name: str,
    batch_size: int,
    num_workers: int,
) -> None:
    manifest = read_json(manifest_path)
    device = resolve_device(device_name)
    path = inception.weights_path(weights)
    layers, digest = inception.load_inception(path, device)
    paths = [image["path"] for image in manifest["images"]]
    features = inception.extract(
        paths, layers, device, batch_size, num_workers, desc=f"inception {manifest['name']}"
    )
    meta = {
        "set": manifest["name"],
        "extractor": inception.EXTRACTOR_ID,
        "weights_file": path.name,
        "weights_sha256": digest,
        "preprocessing": inception.PREPROCESSING,
        "device": str(device),
        "image_sha256": [image["sha256"] for image in manifest["images"]],
    }
    save_features(out, {"inception": features}, meta)


def clip_model_status(model: str, required: bool, device_name: str, out: str | Path) -> None:
    """Load the model once; if it cannot be and CLIP is optional, record why for the report."""
    device = resolve_device(device_name)
    try:
        _, _, info = clip_embed.load_clip(model, device)
        status: dict[str, Any] = {"available": True, "reason": None, **info}
        if Path(model).is_dir():
            status["weights_sha256"] = clip_embed.folder_weights_sha256(model)
    except CkptEvalError as exc:
        if required:
            raise
        status = {
            "available": False,
            "model": model,
            "reason": f"clip.required is false and the model could not be loaded: {exc.what}",
        }
    write_json(status, out)


def clip_features(
    manifest_path: str | Path,
    pairs_path: str | Path | None,
    status_path: str | Path,
    out: str | Path,
    device_name: str,
    batch_size: int,
    enabled: bool = True,
) -> None:
    """CLIP image embeddings of a set, and its prompts' text embeddings when it has pairs.

    The real set has no prompts (pairs_path None): its image embeddings serve the memorization
    screen only, which `memorization.clip: false` turns off (enabled=False) to save the time.
    """
    manifest = read_json(manifest_path)
    status = read_json(status_path)
    meta: dict[str, Any] = {
        "set": manifest["name"],
        "image_sha256": [image["sha256"] for image in manifest["images"]],
        **{
            k: status.get(k) for k in ("available", "reason", "model", "revision", "weights_sha256")
        },
    }
    if status["available"] and not enabled:
        meta.update(available=False, reason="memorization.clip is false")
    if not meta["available"]:
        save_features(out, {}, meta)
        return
    device = resolve_device(device_name)
    net, processor, _ = clip_embed.load_clip(status["model"], device)
    meta["device"] = str(device)
    meta["extractor"] = f"clip:{status['model']}"
    paths = [image["path"] for image in manifest["images"]]
    arrays = {
        "image": clip_embed.embed_images(paths, net, processor, device, batch_size).astype(
            np.float32
        )
    }
    if pairs_path is not None:
        prompts = [p["prompt"] for p in read_json(pairs_path)["pairs"]]
        counts = clip_embed.token_counts(processor, prompts)
        truncated = sorted(
            {(p, c) for p, c in zip(prompts, counts, strict=True) if c > clip_embed.MAX_TOKENS}
        )
        meta["truncated"] = [{"prompt": p, "tokens": c} for p, c in truncated]
        texts = clip_embed.embed_texts(prompts, net, processor, device, batch_size)
        arrays["text"] = texts.astype(np.float32)
    save_features(out, arrays, meta)
