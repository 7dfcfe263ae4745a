"""CLIP image and text embeddings through transformers, from a hub id or a local folder."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.features.extractors import CLIP_MAX_TOKENS as MAX_TOKENS
from ckpt_eval.inputs.images import load_rgb, sha256_file


def load_clip(model: str, device: torch.device) -> tuple[Any, Any, dict[str, Any]]:
    """Model, processor and a description of what was loaded (id, revision, where from).

    A hub id is tried from the local cache first, so an offline machine with the model cached
    never waits on network retries.
    """
    from transformers import CLIPModel, CLIPProcessor

    attempts = [{}] if Path(model).is_dir() else [{"local_files_only": True}, {}]
    errors: list[str] = []
    for kwargs in attempts:
        try:
            # safetensors only: a pickled pytorch_model.bin would run code from the folder
            net = CLIPModel.from_pretrained(model, use_safetensors=True, **kwargs)
            net = net.eval().to(device)
            processor = CLIPProcessor.from_pretrained(model, **kwargs)
        except Exception as exc:  # transformers raises OSError, ValueError, HTTP errors...
            errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        info = {
            "model": model,
            "revision": getattr(net.config, "_commit_hash", None),
            "projection_dim": int(net.config.projection_dim),
        }
        return net, processor, info
    raise CkptEvalError(
        f"The CLIP model '{model}' could not be loaded ({errors[-1]}).",
        fix="point clip.model at a local folder holding the model (e.g. made once on a machine "
        "with network by `CLIPModel.from_pretrained(id).save_pretrained(dir)` and the same for "
        "CLIPProcessor; weights are read from model.safetensors only, never from a pickled "
        ".bin), or set clip.required: false to run without CLIP score.",
    )


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def folder_weights_sha256(folder: str | Path) -> str | None:
    """One sha256 over a model folder's weight files (name and sha256 of each, sorted by name).

    A folder saved with `save_pretrained` has no hub revision, and the offline cluster case is
    exactly that; this says which weights the scores came from. Computed once per run (by the
    clip_model job), not per checkpoint: CLIP ViT-L/14 is 1.7 GB. None if no weight file.
    """
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix in WEIGHT_SUFFIXES)
    if not files:
        return None
    lines = "".join(f"{p.relative_to(folder).as_posix()} {sha256_file(p)}\n" for p in files)
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


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
    out = []
    for start in tqdm(range(0, len(paths), batch_size), desc="clip images", unit="batch"):
        images = [Image.fromarray(load_rgb(p)) for p in paths[start : start + batch_size]]
        inputs = processor(images=images, return_tensors="pt").to(device)
        out.append(_embedding(net.get_image_features(**inputs)).float().cpu().numpy())
    return np.concatenate(out, axis=0)


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
