"""A corpus of bad and awkward inputs, generated on the fly (nothing binary is committed).

Each maker writes one file and returns its path; `CORPUS` lists them with the outcome docs/inputs.md
documents: "error" (organize stops naming the file; `on_bad_image: skip` lists it instead) or a
fragment of the note the report shows.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image


def _pixels(seed: int, size: tuple[int, int] = (40, 32)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def truncated_png(path: Path) -> Path:
    data = _encoded(Image.fromarray(_pixels(1)), "PNG")
    path.write_bytes(data[: len(data) // 2])
    return path


def truncated_jpeg(path: Path) -> Path:
    data = _encoded(Image.fromarray(_pixels(2)), "JPEG", quality=90)
    path.write_bytes(data[: len(data) // 2])
    return path


def zero_bytes(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def text_named_png(path: Path) -> Path:
    path.write_text("this is a text file, not a picture\n", encoding="utf-8")
    return path


def bomb_header(path: Path) -> Path:
    """A PNG whose header claims 20000 x 20000 pixels (400 M) over a few bytes of data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    data = (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    path.write_bytes(data)
    return path


def one_pixel(path: Path) -> Path:
    Image.new("RGB", (1, 1), (120, 30, 200)).save(path)
    return path


def sixteen_bit(path: Path) -> Path:
    ramp = (np.arange(40 * 32, dtype=np.uint16).reshape(32, 40) * 51).astype(np.uint16)
    Image.fromarray(ramp).save(path)  # uint16 arrays become 16-bit images, saved as 16-bit PNG
    return path


def cmyk_jpeg(path: Path) -> Path:
    Image.fromarray(_pixels(3)).convert("CMYK").save(path, format="JPEG", quality=95)
    return path


def palette_with_transparency(path: Path) -> Path:
    image = Image.fromarray(_pixels(4)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    image.info["transparency"] = 0
    image.save(path, transparency=0)
    return path


def exif_rotated_jpeg(path: Path) -> Path:
    image = Image.fromarray(_pixels(5))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    image.save(path, format="JPEG", quality=95, exif=exif.tobytes())
    return path


def _frames(seed: int) -> list[Image.Image]:
    return [Image.fromarray(_pixels(seed + i)) for i in range(3)]


def animated_gif(path: Path) -> Path:
    first, *rest = _frames(6)
    first.save(path, format="GIF", save_all=True, append_images=rest, duration=100, loop=0)
    return path


def animated_webp(path: Path) -> Path:
    first, *rest = _frames(9)
    first.save(path, format="WEBP", save_all=True, append_images=rest, duration=100, lossless=True)
    return path


def plain_png(path: Path, seed: int = 12) -> Path:
    Image.fromarray(_pixels(seed)).save(path)
    return path


Maker = Callable[[Path], Path]

# (file name, maker, outcome): "error", or a fragment of the note shown in the report
CORPUS: list[tuple[str, Maker, str]] = [
    ("truncated.png", truncated_png, "error"),
    ("truncated.jpg", truncated_jpeg, "error"),
    ("empty.png", zero_bytes, "error"),
    ("text.png", text_named_png, "error"),
    ("bomb.png", bomb_header, "error"),
    ("one_pixel.png", one_pixel, "very small (1x1)"),
    ("sixteen_bit.png", sixteen_bit, "(16-bit) scaled to 8 bits"),
    ("cmyk.jpg", cmyk_jpeg, "CMYK converted to RGB"),
    ("palette_alpha.png", palette_with_transparency, "P converted to RGB (alpha discarded"),
    ("exif_rotated.jpg", exif_rotated_jpeg, "EXIF orientation 6 ignored"),
    ("animated.gif", animated_gif, "animated (3 frames): only the first frame is used"),
    ("animated.webp", animated_webp, "animated (3 frames): only the first frame is used"),
    ("spaced and ünïcødé name.png", plain_png, ""),
]
