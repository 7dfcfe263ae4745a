"""DINOv2 CLS features through transformers (`Dinov2Model`), for FD-DINOv2 and its kernel
distances, from a hub id or a local folder.

The feature is the CLS token of the last layer after the final layer norm,
`last_hidden_state[:, 0]` (transformers' `pooler_output` is the same tensor): what
layer6ai-labs/dgm-eval takes, whose DINOv2 encoder returns the torch hub model's
`x_norm_clstoken` (its head is the identity). Preprocessing is dgm-eval's too
(`ckpt_eval.features.extractors.DINOV2_PREPROCESSING`): the whole image resized bicubic to
224 x 224 with PIL, / 255, ImageNet mean and std. The model folder's image processor (on the hub
a BitImageProcessor: shortest edge to 256, centre crop 224) is not used: it would drop the
image's borders and give numbers that differ from the published FD-DINOv2 values' tool.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ckpt_eval.extract.hub import NotLoaded, from_pretrained, model_load_error
from ckpt_eval.features.extractors import DINOV2_PREPROCESSING as PREPROCESSING
from ckpt_eval.features.extractors import DINOV2_SIZE as SIZE
from ckpt_eval.features.extractors import EXTRACTORS, IMAGENET_MEAN, IMAGENET_STD
from ckpt_eval.inputs.images import load_rgb

__all__ = ["PREPROCESSING", "SIZE", "load_dinov2", "pixels", "embed_images", "load", "extract"]


def load_dinov2(model: str, device: torch.device, section: str = "dinov2") -> tuple[Any, dict]:
    """The network in eval mode on `device`, and what was loaded (id, revision, width)."""
    from transformers import Dinov2Model

    try:
        # safetensors only: a pickled pytorch_model.bin would run code from the folder
        net = from_pretrained(Dinov2Model, model, use_safetensors=True)
    except NotLoaded as exc:
        raise model_load_error(EXTRACTORS[section], model, exc, False) from None
    net = net.eval().to(device)
    info = {
        "model": model,
        "revision": getattr(net.config, "_commit_hash", None),
        "hidden_size": int(net.config.hidden_size),
    }
    return net, info


def pixels(image: np.ndarray) -> np.ndarray:
    """dgm-eval's preprocessing of one HxWx3 uint8 image: 3 x 224 x 224 float32."""
    scaled = Image.fromarray(image).resize((SIZE, SIZE), resample=Image.BICUBIC)
    x = np.asarray(scaled, dtype=np.float32) / np.float32(255.0)
    x = (x - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


@torch.no_grad()
def embed_images(
    paths: Sequence[str | Path], net: Any, device: torch.device, batch_size: int
) -> np.ndarray:
    """N x hidden_size float32 CLS features, rows in the order of `paths`."""
    out = []
    for start in tqdm(range(0, len(paths), batch_size), desc="dinov2 images", unit="batch"):
        batch = np.stack([pixels(load_rgb(p)) for p in paths[start : start + batch_size]])
        hidden = net(pixel_values=torch.from_numpy(batch).to(device)).last_hidden_state
        out.append(hidden[:, 0].float().cpu().numpy())
    return np.concatenate(out, axis=0)


def load(
    key: str, model: str, processor: str | None, device: torch.device
) -> tuple[Any, dict[str, Any]]:
    """The feature jobs' entry (no processor: the preprocessing is fixed)."""
    return load_dinov2(model, device, section=key)


def extract(
    key: str,
    loaded: Any,
    paths: Sequence[str | Path],
    prompts: Sequence[str] | None,
    device: torch.device,
    batch_size: int,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    images = embed_images(paths, loaded, device, batch_size)
    return {"image": images.astype(np.float32)}, {"image_size": SIZE}
