"""Feature extraction jobs: read a manifest, write a cached feature file recording its sources.

torch, the Inception network and transformers are imported inside the functions that use them:
a CLIP job whose model is unavailable then only writes its note (in ~0.1 s instead of the 1.5 s
that importing torch takes), which is most of the cost of adding a checkpoint to such a run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.features.cache import save_features, streamed_arrays
from ckpt_eval.features.moments import kept_rows
from ckpt_eval.jsonio import read_json, write_json

log = logging.getLogger(__name__)


def inception_features(
    manifest_path: str | Path,
    out: str | Path,
    weights: str | None,
    device_name: str,
    batch_size: int,
    num_workers: int,
    max_rows: int | None = None,
    seed: int = 0,
) -> None:
    """Features of one image set. With `max_rows` (the real set, config `max_real_features`)
    and more images than that, the file keeps a seeded subset of the rows and the float64 mean
    and covariance of all of them, accumulated while extracting (`ckpt_eval.features.moments`)."""
    import torch

    from ckpt_eval.extract import inception
    from ckpt_eval.extract.device import resolve_device

    manifest = read_json(manifest_path)
    device = resolve_device(device_name)
    path = inception.weights_path(weights)
    layers, digest = inception.load_inception(path, device)
    net = inception.fast_copy(layers, device, verified=digest == inception.BUNDLED_SHA256)
    network = "eager copy" if net is not layers else "TorchScript"
    del layers  # the TorchScript module (95 MB) is not needed beside the eager copy
    paths = [image["path"] for image in manifest["images"]]
    keep = kept_rows(len(paths), max_rows, seed)
    workers = inception.decode_workers(num_workers, device)
    log.info(
        "inception %s: %d images on %s, %d torch threads, batch %d, %d decode workers "
        "(num_workers %d), %s network",
        manifest["name"],
        len(paths),
        device,
        torch.get_num_threads(),
        batch_size,
        workers,
        num_workers,
        network,
    )
    streamed = inception.extract_streamed(
        paths, net, device, keep, batch_size, workers, desc=f"inception {manifest['name']}"
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
    save_features(out, streamed_arrays(streamed), meta)


def clip_model_status(model: str, required: bool, device_name: str, out: str | Path) -> None:
    """Load the model once; if it cannot be and CLIP is optional, record why for the report."""
    from ckpt_eval.extract import clip as clip_embed
    from ckpt_eval.extract.device import resolve_device

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
    from ckpt_eval.extract import clip as clip_embed
    from ckpt_eval.extract.device import resolve_device

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
