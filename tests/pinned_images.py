"""A fixed, procedurally generated image set whose Inception features are pinned in tests/data.

Numpy only (a seeded PCG64 stream, no PIL resampling) and saved as PNG, so the pixels are the
same on every machine; sizes cover down- and up-sampling to 299x299, odd and non-square shapes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIZES = [(256, 256), (300, 200), (64, 48), (333, 517), (299, 299), (17, 33), (512, 384), (128, 96)]
SEED = 2024


def _scene(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Gradients, a few discs and noise: some structure at every scale, like a photo."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = x / max(width - 1, 1), y / max(height - 1, 1)
    base = rng.uniform(0, 255, size=3)
    slope = rng.uniform(-120, 120, size=(2, 3))
    image = base + u[..., None] * slope[0] + v[..., None] * slope[1]
    for _ in range(4):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.4)
        inside = (u - cx) ** 2 + (v - cy) ** 2 < r * r
        image[inside] = rng.uniform(0, 255, size=3)
    image += rng.normal(0, 12, size=image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def write_pinned_images(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    paths = []
    for i, (width, height) in enumerate(SIZES):
        path = folder / f"pinned_{i}.png"
        Image.fromarray(_scene(rng, width, height)).save(path)
        paths.append(path)
    return paths
