"""Open an image as 8-bit RGB the way clean-fid does, and say what was converted on the way."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from ckpt_eval.errors import CkptEvalError

# Refuse decompression bombs rather than exhaust memory: 16k x 16k is far above any sample.
# PIL only raises above twice its limit (and warns below), so the size is checked here first.
MAX_PIXELS = 16384 * 16384
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# Below this on either side an image is almost surely not a real sample (a thumbnail, a broken
# export); it is still used, resized like any other, and the report says so.
SMALL_SIDE = 16
EXIF_ORIENTATION = 0x0112


# what PIL raises for a file it cannot decode (truncated, not an image, a decompression bomb)
UNREADABLE = (OSError, ValueError, Image.DecompressionBombError)


def unreadable(path: str | Path, exc: Exception) -> CkptEvalError:
    """The error for an image PIL cannot decode, with the fix that works for any of them."""
    return CkptEvalError(
        f"Cannot read image: {exc}",
        path=path,
        fix="replace or delete the file, or set on_bad_image: skip to leave it out.",
    )


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def conversion_note(mode: str) -> str | None:
    """How a non-RGB mode becomes RGB; None when nothing changes. Shown in the report."""
    if mode == "RGB":
        return None
    if mode in ("RGBA", "LA", "PA") or mode == "P":
        return f"{mode} converted to RGB (alpha discarded, as clean-fid does)"
    if mode.startswith("I;16") or mode == "I":
        return f"{mode} (16-bit) scaled to 8 bits and converted to RGB"
    return f"{mode} converted to RGB"


def image_notes(img: Image.Image) -> list[str]:
    """Everything about an opened image that the report should mention, in a fixed order.

    clean-fid reads the stored pixels of the first frame and ignores EXIF orientation; so does
    this tool, to give the same numbers, and it says so where it matters.
    """
    notes = []
    if note := conversion_note(img.mode):
        notes.append(note)
    frames = getattr(img, "n_frames", 1)
    if frames > 1:
        notes.append(f"animated ({frames} frames): only the first frame is used")
    orientation = img.getexif().get(EXIF_ORIENTATION, 1)
    if orientation not in (0, 1):
        notes.append(
            f"EXIF orientation {orientation} ignored: pixels used as stored, as clean-fid does"
        )
    if min(img.size) < SMALL_SIDE:
        notes.append(f"very small ({img.width}x{img.height}): upscaled to 299x299, check the file")
    return notes


def _open_checked(path: str | Path) -> Image.Image:
    """Open lazily and refuse an oversized image before anything is decoded."""
    img = Image.open(path)
    if img.width * img.height > MAX_PIXELS:
        size = f"{img.width}x{img.height}"
        img.close()
        raise CkptEvalError(
            f"Image is {size} pixels, above the {MAX_PIXELS // 10**6} M pixel limit that guards "
            "against decompression bombs.",
            path=path,
            fix="replace the file with a normal-sized image, or set on_bad_image: skip.",
        )
    return img


def load_rgb(path: str | Path) -> np.ndarray:
    """HxWx3 uint8. 16-bit images are scaled (PIL's own conversion would clip them to white)."""
    try:
        with _open_checked(path) as img:
            img.load()
            if img.mode.startswith("I;16") or img.mode == "I":
                arr = np.asarray(img, dtype=np.float64)
                peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
                gray = np.clip(np.round(arr / peak * 255.0), 0, 255).astype(np.uint8)
                return np.repeat(gray[:, :, None], 3, axis=2)
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except UNREADABLE as exc:
        raise unreadable(path, exc) from exc


def probe(path: str | Path) -> dict[str, object]:
    """Size and mode of a readable image; raises CkptEvalError for an unreadable one.

    Decodes the whole image (not only the header) so that a truncated file is caught here,
    at organize time, not halfway through feature extraction.
    """
    path = Path(path)
    if not path.is_file():
        raise CkptEvalError(
            "Image file not found (was it moved while the run was planned?).",
            path=path,
            fix="rerun; the image list is made when the run starts.",
        )
    if path.stat().st_size == 0:
        raise CkptEvalError(
            "Image file is empty (0 bytes).",
            path=path,
            fix="replace or delete the file, or set on_bad_image: skip to leave it out.",
        )
    try:
        with _open_checked(path) as img:
            img.load()  # decoded once: image_notes' EXIF of a PNG is read after its pixels
            width, height = img.size
            mode = img.mode
            notes = image_notes(img)
    except UNREADABLE as exc:
        raise unreadable(path, exc) from exc
    return {"width": width, "height": height, "mode": mode, "note": "; ".join(notes) or None}
