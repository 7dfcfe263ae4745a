"""Build the bundled demo data set: fake "checkpoint samples" with a known best checkpoint.

The workflow needs something to chew on without a GPU, a diffusion model or network
access, and its tests need an answer that is known in advance. So instead of generating
images we cut crops out of scikit-image's bundled sample photos (they ship inside the
wheel, no download) and pretend they came from five checkpoints of a fine-tuning run:

* ``real/``  - the reference set the metrics compare against.
* ``samples/step-1500/`` - clean held-out crops of the same photos: same distribution as
  ``real/``, so it is the best checkpoint *by construction*.
* the other steps - the same held-out crops, degraded. Early steps are blurry and noisy
  (under-trained), late steps are over-sharpened/colour-shifted (over-fitted), so FID is
  U-shaped with its minimum at step-1500 and rises again afterwards, which exercises the
  "quality got worse after the best checkpoint" flag.

Every checkpoint uses the *same* held-out crops (and thus the same prompts), like a real
evaluation that renders one prompt list per checkpoint; pairing them keeps the metric
differences down to the degradation instead of to which crops happened to be drawn.

Everything is derived from one ``numpy.random.default_rng(seed)`` and written as PNG with
fixed settings, so the same seed and library versions give byte-identical files.

Regenerate the committed copy with ``python -m ckpt_eval.demo demo``.
"""

from __future__ import annotations

import argparse
import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

CHECKPOINTS: tuple[str, ...] = ("step-0500", "step-1000", "step-1500", "step-2000", "step-2500")
"""Checkpoint folder names, in training order."""

BEST_CHECKPOINT = "step-1500"
"""The checkpoint whose samples are undegraded, i.e. the right answer for the demo."""

# Source photos: (skimage.data function name, prompt). Only images that ship inside the
# scikit-image wheel (no pooch download) and whose docstrings state no copyright
# restrictions are used, so the demo builds offline and can be redistributed.
SOURCES: tuple[tuple[str, str], ...] = (
    ("astronaut", "an astronaut in a spacesuit"),
    ("chelsea", "a photo of a cat"),
    ("coffee", "a cup of coffee on a table"),
    ("rocket", "a rocket on a launch pad"),
    ("camera", "a black and white photo of a man with a camera"),
    ("coins", "a black and white photo of old coins"),
    ("hubble_deep_field", "a deep space photo of distant galaxies"),
    ("immunohistochemistry", "a microscope image of stained tissue"),
)

# Random down-scale applied to a source photo before cropping, for variety. Smaller means
# a crop covers more of the scene; the lower bound is raised when the photo would become
# smaller than the crop.
_SCALE_RANGE = (0.35, 1.0)

_PNG_COMPRESS_LEVEL = 9


@dataclass(frozen=True)
class Crop:
    """One crop of a source photo, plus the prompt that describes that photo."""

    pixels: np.ndarray  # (size, size, 3) uint8
    prompt: str


def _load_sources() -> list[tuple[np.ndarray, str]]:
    """Load the source photos as HxWx3 uint8 arrays (grey ones replicated to RGB)."""
    import skimage.data  # local import: only the demo builder needs scikit-image

    sources = []
    for name, prompt in SOURCES:
        img = np.asarray(getattr(skimage.data, name)())
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        sources.append((np.ascontiguousarray(img[..., :3].astype(np.uint8)), prompt))
    return sources


def _random_crop(img: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Rescale ``img`` by a random factor, then cut a random ``size`` x ``size`` window."""
    h, w = img.shape[:2]
    min_scale = max(_SCALE_RANGE[0], size / min(h, w))
    scale = rng.uniform(min_scale, max(min_scale, _SCALE_RANGE[1]))
    new_h = max(size, round(h * scale))
    new_w = max(size, round(w * scale))
    if (new_h, new_w) != (h, w):
        img = np.asarray(Image.fromarray(img).resize((new_w, new_h), Image.Resampling.BICUBIC))
    top = int(rng.integers(0, new_h - size + 1))
    left = int(rng.integers(0, new_w - size + 1))
    return np.ascontiguousarray(img[top : top + size, left : left + size])


def _draw_crops(
    sources: Sequence[tuple[np.ndarray, str]], n: int, size: int, rng: np.random.Generator
) -> list[Crop]:
    """Draw ``n`` crops, cycling through the sources in shuffled order.

    Balanced rather than i.i.d. source choice, because with a few dozen images a random
    choice can leave a photo out of one set entirely, which would move FID for reasons that
    have nothing to do with the simulated checkpoint quality.
    """
    n_rounds = -(-n // len(sources))  # ceil division
    order = np.concatenate([rng.permutation(len(sources)) for _ in range(n_rounds)])[:n]
    crops = []
    for idx in order:
        img, prompt = sources[int(idx)]
        crops.append(Crop(_random_crop(img, size, rng), prompt))
    return crops


# --- degradations -----------------------------------------------------------------------


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur over the two spatial axes only (channels stay independent)."""
    return gaussian_filter(x.astype(np.float64), sigma=(sigma, sigma, 0), mode="reflect")


def _noise(x: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    return x + rng.normal(0.0, std, size=x.shape)


def _jpeg(x: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip through an in-memory JPEG to add block and ringing artefacts."""
    buf = io.BytesIO()
    Image.fromarray(_to_uint8(x)).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB")).astype(np.float64)


def _colour_shift(
    x: np.ndarray, gains: Sequence[float], saturation: float, contrast: float
) -> np.ndarray:
    """Per-channel gain, then saturation and contrast boosts around grey / mid-level.

    Over-fitted LoRAs tend to drift to a cast, over-saturated, "fried" look; this is a
    cheap stand-in for that.
    """
    x = x * np.asarray(gains, dtype=np.float64)
    grey = x.mean(axis=-1, keepdims=True)
    x = grey + saturation * (x - grey)
    return 128.0 + contrast * (x - 128.0)


def _degrade_0500(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Barely trained: very blurry and very noisy."""
    return _noise(_blur(x, 3.5), 40.0, rng)


def _degrade_1000(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Under-trained: still soft and grainy."""
    return _noise(_blur(x, 2.0), 18.0, rng)


def _degrade_1500(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The sweet spot: untouched."""
    return x.astype(np.float64)


def _degrade_2000(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Starting to over-fit: mildly soft, compression artefacts, a warm cast."""
    x = _jpeg(_blur(x, 1.5), quality=20)
    return _colour_shift(x, gains=(1.12, 1.0, 0.88), saturation=1.25, contrast=1.1)


def _degrade_2500(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Over-fitted: strong colour cast, blown-out saturation and contrast, blur."""
    x = _blur(x, 2.0)
    x = _colour_shift(x, gains=(1.3, 0.95, 0.7), saturation=1.8, contrast=1.35)
    return _jpeg(x, quality=15)


DEGRADATIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "step-0500": _degrade_0500,
    "step-1000": _degrade_1000,
    "step-1500": _degrade_1500,
    "step-2000": _degrade_2000,
    "step-2500": _degrade_2500,
}


# --- output -----------------------------------------------------------------------------


def _save_png(pixels: np.ndarray, path: Path) -> None:
    """Write a PNG with fixed settings and no metadata, so the bytes are reproducible."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode="RGB").save(
        path, format="PNG", compress_level=_PNG_COMPRESS_LEVEL, optimize=False
    )


def _remove_stale(out_dir: Path) -> None:
    """Delete images a previous (larger) build left behind, and nothing else.

    Without this, rebuilding with a smaller ``n_real`` would silently keep the old extra
    files, and they would end up in the metrics. Only our own file-name patterns are
    touched, so pointing the builder at a folder with other content does not destroy it.
    """
    for stale in (out_dir / "real").glob("real_*.png"):
        stale.unlink()
    for ckpt in CHECKPOINTS:
        for stale in (out_dir / "samples" / ckpt).glob("img_*.png"):
            stale.unlink()


def build_demo(
    out_dir: Path,
    n_real: int = 100,
    n_per_checkpoint: int = 40,
    size: int = 128,
    seed: int = 0,
) -> None:
    """Write the demo data set (``real/``, ``samples/<checkpoint>/``, ``prompts.csv``).

    ``prompts.csv`` has one ``file,prompt`` row per sample image, ``file`` relative to
    ``samples/`` with forward slashes, because that is what the workflow's CLIP-score step
    reads to pair each image with the text it was "generated" from.
    """
    if n_real < 1 or n_per_checkpoint < 1:
        raise ValueError("n_real and n_per_checkpoint must be at least 1")
    if size < 8:
        raise ValueError("size must be at least 8 pixels")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale(out_dir)

    sources = _load_sources()
    # Independent child streams: changing n_real does not change the samples, and each
    # checkpoint's noise is independent of the others.
    rng = np.random.default_rng(seed)
    real_rng, held_out_rng, *ckpt_rngs = rng.spawn(2 + len(CHECKPOINTS))

    for i, crop in enumerate(_draw_crops(sources, n_real, size, real_rng)):
        _save_png(crop.pixels, out_dir / "real" / f"real_{i:04d}.png")

    held_out = _draw_crops(sources, n_per_checkpoint, size, held_out_rng)
    width = max(3, len(str(n_per_checkpoint - 1)))
    rows: list[tuple[str, str]] = []
    for ckpt, ckpt_rng in zip(CHECKPOINTS, ckpt_rngs, strict=True):
        degrade = DEGRADATIONS[ckpt]
        for i, crop in enumerate(held_out):
            name = f"img_{i:0{width}d}.png"
            _save_png(_to_uint8(degrade(crop.pixels, ckpt_rng)), out_dir / "samples" / ckpt / name)
            rows.append((f"{ckpt}/{name}", crop.prompt))

    with open(out_dir / "prompts.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("file", "prompt"))
        writer.writerows(rows)


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point: ``python -m ckpt_eval.demo OUT_DIR [options]``."""
    parser = argparse.ArgumentParser(
        prog="python -m ckpt_eval.demo",
        description="Build the demo data set (real photos + fake checkpoint samples, "
        f"best by construction: {BEST_CHECKPOINT}).",
    )
    parser.add_argument("out_dir", type=Path, help="folder to write into (created if missing)")
    parser.add_argument("--n-real", type=int, default=100, help="reference images (default 100)")
    parser.add_argument(
        "--n-per-checkpoint", type=int, default=40, help="samples per checkpoint (default 40)"
    )
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    build_demo(
        args.out_dir,
        n_real=args.n_real,
        n_per_checkpoint=args.n_per_checkpoint,
        size=args.size,
        seed=args.seed,
    )
    print(f"wrote demo data set to {args.out_dir}")


if __name__ == "__main__":
    main()
