"""Real Inception features for the calibration tests (`test_calibration.py`): crops of the
scikit-image sample photos the demo uses, written as PNG and run through the bundled network.

Three disjoint sets of crops, each from its own child stream of one seed:

* `real`: the reference set;
* `pool`: more crops of the same distribution, held out: checkpoints drawn from it are equal
  by construction;
* a paired ladder: `LADDER_N` source crops, each rendered clean and at every blur of
  `LADDER_BLURS`, so row i of every rung is the same source crop (its prompt too).

`prompts[name]` holds the prompt (the source photo's) of every row, `source[name]` the index of
its photo in `ckpt_eval.demo.SOURCES`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ckpt_eval.demo import (
    SOURCES,
    _blur,
    _draw_crops,
    _load_sources,
    _save_png,
    _to_uint8,
)
from ckpt_eval.extract.inception import bundled_weights_path, extract, fast_copy, load_inception

CROP = 64  # pixels; the network sees every image resized to 299 x 299 anyway
N_REAL = 200
N_POOL = 240  # 30 crops of each of the 8 photos
LADDER_N = 32
LADDER_BLURS = (0.0, 0.8, 1.5, 2.5)  # sigma of the Gaussian blur; 0 = the clean crop
SEED = 20240613


@dataclass
class Features:
    """Inception rows of each set, with the prompt and source photo of every row."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    prompts: dict[str, list[str]] = field(default_factory=dict)
    source: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0  # the extraction's


def rung_name(sigma: float) -> str:
    """`clean`, `blur0.8`, ...: the rung's set name."""
    return "clean" if sigma == 0 else f"blur{sigma:g}"


def _write(folder: Path, name: str, pixels: Sequence[np.ndarray]) -> list[Path]:
    paths = []
    for i, image in enumerate(pixels):
        path = folder / name / f"{i:04d}.png"
        _save_png(image, path)
        paths.append(path)
    return paths


def build_features(folder: Path, device: torch.device | None = None) -> Features:
    """Write every set's PNGs under `folder`, extract them in one pass, split the rows."""
    device = device or torch.device("cpu")
    photos = _load_sources()
    index = {prompt: i for i, (_, prompt) in enumerate(SOURCES)}
    real_rng, pool_rng, ladder_rng = np.random.default_rng(SEED).spawn(3)
    out = Features()
    paths: dict[str, list[Path]] = {}
    for name, n, rng in (("real", N_REAL, real_rng), ("pool", N_POOL, pool_rng)):
        crops = _draw_crops(photos, n, CROP, rng)
        paths[name] = _write(folder, name, [c.pixels for c in crops])
        out.prompts[name] = [c.prompt for c in crops]
    sources = _draw_crops(photos, LADDER_N, CROP, ladder_rng)
    for sigma in LADDER_BLURS:
        name = rung_name(sigma)
        rendered = [c.pixels if sigma == 0 else _to_uint8(_blur(c.pixels, sigma)) for c in sources]
        paths[name] = _write(folder, name, rendered)
        out.prompts[name] = [c.prompt for c in sources]
    for name, prompts in out.prompts.items():
        out.source[name] = np.array([index[p] for p in prompts])

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        layers, _ = load_inception(bundled_weights_path(), device)
        net = fast_copy(layers, device)
        start = time.perf_counter()
        flat = [p for name in paths for p in paths[name]]
        rows = extract(flat, net, device, batch_size=32, num_workers=0, desc="calibration")
        out.seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    at = 0
    for name, names_paths in paths.items():
        out.arrays[name] = rows[at : at + len(names_paths)]
        at += len(names_paths)
    return out


# --- what `checkpoint_metrics` would read from files, made from the rows -----------------


def manifest(name: str, n: int) -> dict[str, Any]:
    """A checkpoint's manifest of n 64 x 64 PNGs, hashes unique to this checkpoint."""
    return {
        "name": name,
        "root": "/samples",
        "images": [
            {
                "path": f"/samples/{name}/img_{i:04d}.png",
                "file": f"{name}/img_{i:04d}.png",
                "sha256": f"{name}-{i:04d}".encode().hex().ljust(64, "0")[:64],
                "width": CROP,
                "height": CROP,
                "mode": "RGB",
                "note": None,
            }
            for i in range(n)
        ],
        "skipped": [],
    }


def pairs(m: dict[str, Any], prompts: Sequence[str], seeds: Sequence[int] | None) -> dict:
    """The prompt stage's pairs: each image's prompt and, when given, its seed."""
    seeds = [None] * len(prompts) if seeds is None else list(seeds)
    rows = [
        {"file": image["file"], "prompt": prompt, "seed": seed, "fallback": False}
        for image, prompt, seed in zip(m["images"], prompts, seeds, strict=True)
    ]
    return {"name": m["name"], "pairs": rows, "fallback_count": 0, "prompts_without_image": []}
