"""CLIP image and text embeddings through transformers, from a hub id or a local folder.

Three extractors run on it (`ckpt_eval.features.extractors`): `clip` (CLIP score and the CLIP
memorization screen: the model's own CLIPProcessor), `cmmd` (CLIP ViT-L/14@336 image embeddings
with the CMMD reference's preprocessing, `cmmd_pixels`) and `pickscore` (PickScore's weights
with another model's processor: `pickscore.processor`). `load` and `extract` are what the
generic feature jobs call (`ckpt_eval.extract.feature_jobs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ckpt_eval.extract.hub import (
    NotLoaded,
    folder_weights_sha256,
    from_pretrained,
    load_error,
    model_load_error,
)
from ckpt_eval.features.extractors import CLIP_MAX_TOKENS as MAX_TOKENS
from ckpt_eval.features.extractors import EXTRACTORS
from ckpt_eval.inputs.images import load_rgb

__all__ = [
    "folder_weights_sha256",
    "load_clip",
    "embed_images",
    "embed_texts",
    "distinct_prompts",
    "cmmd_pixels",
]


def load_clip(
    model: str, device: torch.device, processor: str | None = None, section: str = "clip"
) -> tuple[Any, Any, dict[str, Any]]:
    """Model, processor and a description of what was loaded (id, revision, where from).

    The processor is the model's own unless `processor` names another hub id or folder
    (PickScore: `pickscore.processor`). A hub id is tried from the local cache first, so an
    offline machine with the model cached never waits on network retries. `section` is the
    config section the error's fix names (`clip.model`, `cmmd.model`, ...).
    """
    from transformers import CLIPModel, CLIPProcessor

    extractor = EXTRACTORS[section]
    own = processor is None
    try:
        # safetensors only: a pickled pytorch_model.bin would run code from the folder
        net = from_pretrained(CLIPModel, model, use_safetensors=True)
        if own:
            loaded = from_pretrained(CLIPProcessor, model)
    except NotLoaded as exc:
        raise model_load_error(extractor, model, exc, own) from None
    if not own:
        try:
            loaded = from_pretrained(CLIPProcessor, processor)
        except NotLoaded as exc:
            raise load_error(
                extractor.label.replace("model", "processor"),
                processor,
                exc,
                f"{section}.processor",
                "`CLIPProcessor.from_pretrained(id).save_pretrained(dir)`",
                section,
                extractor.without,
                weights=False,
            ) from None
    net = net.eval().to(device)
    info = {
        "model": model,
        "revision": getattr(net.config, "_commit_hash", None),
        "projection_dim": int(net.config.projection_dim),
    }
    if not own:
        info["processor"] = processor
    return net, loaded, info


def _embedding(output: Any) -> torch.Tensor:
    """transformers 5 returns an output object whose pooler_output is the projected embedding."""
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if pooled is None:
        raise TypeError(f"unexpected CLIP output type {type(output).__name__}")
    return pooled


def token_counts(processor: Any, prompts: Sequence[str]) -> list[int]:
    """Tokens each prompt has before truncation (with start and end tokens)."""
    encoded = processor.tokenizer(list(prompts), truncation=False, padding=False)
    return [len(ids) for ids in encoded["input_ids"]]


@torch.no_grad()
def embed_images(
    paths: Sequence[str | Path], net: Any, processor: Any, device: torch.device, batch_size: int
) -> np.ndarray:
    """Projected image embeddings, preprocessed by the processor (CLIP score, PickScore)."""
    out = []
    for start in tqdm(range(0, len(paths), batch_size), desc="clip images", unit="batch"):
        images = [Image.fromarray(load_rgb(p)) for p in paths[start : start + batch_size]]
        inputs = processor(images=images, return_tensors="pt").to(device)
        out.append(_embedding(net.get_image_features(**inputs)).float().cpu().numpy())
    return np.concatenate(out, axis=0)


def distinct_prompts(prompts: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Each prompt once (in first-appearance order) and, per image, its row among them.

    The same prompts come back at every seed of a checkpoint (4 to 64 images of a few prompts),
    and a text forward costs about a tenth of an image forward on ViT-L/14: encoding each prompt
    once keeps the job at the image tower's speed.
    """
    rows: dict[str, int] = {}
    index = [rows.setdefault(prompt, len(rows)) for prompt in prompts]
    return list(rows), np.asarray(index, dtype=np.intp)


@torch.no_grad()
def embed_texts(
    prompts: Sequence[str], net: Any, processor: Any, device: torch.device, batch_size: int
) -> np.ndarray:
    """Prompts over MAX_TOKENS tokens are truncated, as CLIP's text encoder cannot see more."""
    out = []
    for start in tqdm(range(0, len(prompts), batch_size), desc="clip texts", unit="batch"):
        inputs = processor(
            text=list(prompts[start : start + batch_size]),
            padding=True,
            truncation=True,
            max_length=MAX_TOKENS,
            return_tensors="pt",
        ).to(device)
        out.append(_embedding(net.get_text_features(**inputs)).float().cpu().numpy())
    return np.concatenate(out, axis=0)


def cmmd_pixels(
    image: np.ndarray, size: int, mean: Sequence[float], std: Sequence[float]
) -> np.ndarray:
    """CMMD's preprocessing of one HxWx3 uint8 image: 3 x size x size float32.

    As google-research's cmmd (io_util._center_crop_and_resize, then embedding): centre crop to
    a square, PIL bicubic resize to the model's size, / 255, then CLIP's mean and std.
    """
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = Image.fromarray(image).crop((left, top, left + side, top + side))
    scaled = np.asarray(square.resize((size, size), resample=Image.BICUBIC), dtype=np.float32)
    scaled = scaled / np.float32(255.0)
    normed = (scaled - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(normed.transpose(2, 0, 1))


@torch.no_grad()
def embed_images_cmmd(
    paths: Sequence[str | Path], net: Any, processor: Any, device: torch.device, batch_size: int
) -> np.ndarray:
    """Projected image embeddings (not normalised) on CMMD's preprocessing, at the model's own
    image size (`vision_config.image_size`: 336 for ViT-L/14@336)."""
    size = int(net.config.vision_config.image_size)
    mean, std = processor.image_processor.image_mean, processor.image_processor.image_std
    out = []
    for start in tqdm(range(0, len(paths), batch_size), desc="cmmd images", unit="batch"):
        batch = [
            cmmd_pixels(load_rgb(p), size, mean, std) for p in paths[start : start + batch_size]
        ]
        pixels = torch.from_numpy(np.stack(batch)).to(device)
        out.append(_embedding(net.get_image_features(pixel_values=pixels)).float().cpu().numpy())
    return np.concatenate(out, axis=0)


def load(
    key: str, model: str, processor: str | None, device: torch.device
) -> tuple[tuple[Any, Any], dict[str, Any]]:
    """The feature jobs' entry: the loaded (network, processor) and what the status records."""
    net, loaded, info = load_clip(model, device, processor, section=key)
    if key == "cmmd":
        info["image_size"] = int(net.config.vision_config.image_size)
    return (net, loaded), info


def extract(
    key: str,
    loaded: tuple[Any, Any],
    paths: Sequence[str | Path],
    prompts: Sequence[str] | None,
    device: torch.device,
    batch_size: int,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays of one set and what its file's meta adds (truncated prompts, image size)."""
    net, processor = loaded
    meta: dict[str, Any] = {}
    if key == "cmmd":
        meta["image_size"] = int(net.config.vision_config.image_size)
        images = embed_images_cmmd(paths, net, processor, device, batch_size)
    elif key in ("clip", "pickscore"):
        images = embed_images(paths, net, processor, device, batch_size)
    else:
        raise ValueError(f"{key} is not an extractor of ckpt_eval.extract.clip")
    arrays = {"image": images.astype(np.float32)}
    if prompts is not None:
        distinct, index = distinct_prompts(prompts)
        counts = token_counts(processor, distinct)
        truncated = sorted((p, c) for p, c in zip(distinct, counts, strict=True) if c > MAX_TOKENS)
        meta["truncated"] = [{"prompt": p, "tokens": c} for p, c in truncated]
        texts = embed_texts(distinct, net, processor, device, batch_size)
        arrays["text"] = texts[index].astype(np.float32)
    if key == "pickscore":
        # PickScore = logit_scale.exp() * cos(image, prompt): the scale is the model's own
        scale = float(net.logit_scale.detach().exp().float().cpu())
        arrays["logit_scale"] = np.array([scale], dtype=np.float32)
    return arrays, meta
