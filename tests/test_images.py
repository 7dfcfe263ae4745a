"""Opening images as 8-bit RGB the way clean-fid does, every mode, and refusing unreadable files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.inputs.images import conversion_note, load_rgb, probe, sha256_file

W, H = 24, 16


def rng_array(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def make_rgb(path: Path) -> Path:
    Image.fromarray(rng_array((H, W, 3))).save(path)
    return path


def make_rgba(path: Path) -> Path:
    Image.fromarray(rng_array((H, W, 4), 1), mode="RGBA").save(path)
    return path


def make_la(path: Path) -> Path:
    Image.fromarray(rng_array((H, W, 2), 2), mode="LA").save(path)
    return path


def make_l(path: Path) -> Path:
    Image.fromarray(rng_array((H, W), 3), mode="L").save(path)
    return path


def make_p_transparent(path: Path) -> Path:
    img = Image.fromarray(rng_array((H, W, 3), 4)).quantize(colors=16)
    img.save(path, transparency=0)
    return path


def make_cmyk_jpeg(path: Path) -> Path:
    Image.frombytes("CMYK", (W, H), rng_array((H, W, 4), 5).tobytes()).save(path, quality=95)
    return path


MAKERS = {
    "RGB": (make_rgb, "png"),
    "RGBA": (make_rgba, "png"),
    "LA": (make_la, "png"),
    "L": (make_l, "png"),
    "P": (make_p_transparent, "png"),
    "CMYK": (make_cmyk_jpeg, "jpg"),
}


@pytest.mark.parametrize("mode", list(MAKERS))
def test_eight_bit_modes_load_exactly_like_clean_fid(tmp_path: Path, mode: str) -> None:
    maker, ext = MAKERS[mode]
    path = maker(tmp_path / f"img.{ext}")
    with Image.open(path) as img:
        assert img.mode == mode  # the fixture really is in the mode under test
        if mode == "P":
            assert "transparency" in img.info
    arr = load_rgb(path)
    assert arr.dtype == np.uint8
    assert arr.shape == (H, W, 3)
    # What clean-fid does for every image it reads.
    expected = np.asarray(Image.open(path).convert("RGB"))
    np.testing.assert_array_equal(arr, expected)


@pytest.mark.parametrize("mode", list(MAKERS))
def test_probe_reports_size_mode_and_note(tmp_path: Path, mode: str) -> None:
    maker, ext = MAKERS[mode]
    info = probe(maker(tmp_path / f"img.{ext}"))
    assert info == {"width": W, "height": H, "mode": mode, "note": conversion_note(mode)}
    assert (info["note"] is None) == (mode == "RGB")


def test_l_becomes_three_equal_channels(tmp_path: Path) -> None:
    path = make_l(tmp_path / "l.png")
    arr = load_rgb(path)
    gray = np.asarray(Image.open(path))
    for c in range(3):
        np.testing.assert_array_equal(arr[:, :, c], gray)


def test_rgba_alpha_is_discarded_not_composited(tmp_path: Path) -> None:
    data = rng_array((H, W, 4), 9)
    data[..., 3] = 0  # fully transparent: the colour must still come through unchanged
    path = tmp_path / "a.png"
    Image.fromarray(data, mode="RGBA").save(path)
    np.testing.assert_array_equal(load_rgb(path), data[..., :3])


def write_16bit(path: Path, values: np.ndarray) -> Path:
    img = Image.fromarray(values.astype(np.uint16))
    assert img.mode.startswith("I;16")
    img.save(path)
    with Image.open(path) as check:
        assert check.mode.startswith("I;16") or check.mode == "I"
    return path


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257, 32768, 65535], [128, 1000, 49151, 65280]], dtype=np.uint16)
    path = write_16bit(tmp_path / "g16.png", values)
    arr = load_rgb(path)
    assert arr.dtype == np.uint8
    assert arr.shape == (2, 4, 3)
    assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()
    gray = arr[..., 0].astype(int)
    assert gray[0, 0] == 0
    assert gray[0, 1] == 1
    assert gray[0, 2] in (127, 128)  # about half, NOT clipped to white
    assert gray[0, 3] == 255
    assert gray[1, 0] == 0  # 128/65535 of full scale is black, not mid-grey
    assert gray[1, 2] in (191, 192)
    assert gray[1, 3] == 254
    expected = np.round(values.astype(np.float64) / 65535.0 * 255.0)
    np.testing.assert_allclose(gray, expected, atol=1)


def test_dark_16_bit_image_is_still_treated_as_16_bit(tmp_path: Path) -> None:
    # All values <= 255 in a 16-bit file: they are 16-bit levels, i.e. nearly black.
    values = np.array([[0, 100, 255, 200]], dtype=np.uint16)
    path = write_16bit(tmp_path / "dark16.png", values)
    assert load_rgb(path).max() <= 1


def test_16_bit_probe_and_note(tmp_path: Path) -> None:
    path = write_16bit(tmp_path / "g16.png", np.full((5, 7), 40000, np.uint16))
    info = probe(path)
    assert (info["width"], info["height"]) == (7, 5)
    assert info["note"] is not None and "16-bit" in info["note"]


@pytest.mark.parametrize(
    ("mode", "fragment"),
    [
        ("RGBA", "alpha discarded"),
        ("LA", "alpha discarded"),
        ("PA", "alpha discarded"),
        ("P", "converted to RGB"),
        ("I;16", "16-bit"),
        ("I;16B", "16-bit"),
        ("I", "16-bit"),
        ("L", "L converted to RGB"),
        ("CMYK", "CMYK converted to RGB"),
        ("YCbCr", "YCbCr converted to RGB"),
    ],
)
def test_conversion_note_text(mode: str, fragment: str) -> None:
    note = conversion_note(mode)
    assert note is not None
    assert note.startswith(mode)
    assert fragment in note


def test_conversion_note_none_for_rgb() -> None:
    assert conversion_note("RGB") is None


def zero_byte(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def truncated_png(path: Path) -> Path:
    # Random noise does not compress, so half the bytes cuts right through the pixel data.
    full = path.with_name("full.png")
    Image.fromarray(rng_array((64, 64, 3), 7)).save(full)
    data = full.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def text_as_png(path: Path) -> Path:
    path.write_text("this is not an image\n")
    return path


BAD = {"zero_byte": zero_byte, "truncated": truncated_png, "text": text_as_png}


@pytest.mark.parametrize("kind", list(BAD))
@pytest.mark.parametrize("func", [load_rgb, probe], ids=["load_rgb", "probe"])
def test_unreadable_images_raise_naming_the_file(tmp_path: Path, kind: str, func) -> None:
    path = BAD[kind](tmp_path / f"bad_{kind}.png")
    with pytest.raises(CkptEvalError) as info:
        func(path)
    err = info.value
    assert str(path) in str(err)
    assert err.path == str(path)
    assert err.fix is not None and "on_bad_image" in err.fix


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    data = bytes(range(256)) * 5000  # larger than a small chunk
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sha256_file(path, chunk=1000) == hashlib.sha256(data).hexdigest()
