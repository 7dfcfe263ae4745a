"""The torch-free clean resize gives clean-fid's bits ("clean" mode: PIL bicubic on float32)."""

from __future__ import annotations

import numpy as np
import pytest
from cleanfid.resize import make_resizer
from PIL import Image
from skimage import data

from ckpt_eval.extract.resize import clean_resize, network_input
from ckpt_eval.inputs.images import load_rgb


@pytest.mark.parametrize(
    "rgb",
    [
        data.astronaut(),  # 512 x 512, shrunk
        data.chelsea(),  # 300 x 451, not square
        data.coffee()[:120, :90],  # enlarged
        np.full((299, 299, 3), 255, np.uint8),  # already the size; the clip at 255 holds
        np.random.default_rng(0).integers(0, 256, (33, 517, 3), dtype=np.uint8),  # ringing
    ],
    ids=["astronaut", "chelsea", "coffee-crop", "white", "noise"],
)
def test_the_resize_is_clean_fids(rgb: np.ndarray) -> None:
    expected = make_resizer("PIL", False, "bicubic", (299, 299))(rgb)
    got = clean_resize(rgb)
    assert got.dtype == np.float32 and got.shape == (299, 299, 3)
    assert np.array_equal(got, expected)
    assert got.min() >= 0 and got.max() <= 255


def test_the_network_input_is_the_resize_normalised(tmp_path) -> None:
    path = tmp_path / "cat.png"
    Image.fromarray(data.chelsea()).save(path)
    resized = make_resizer("PIL", False, "bicubic", (299, 299))(load_rgb(path))
    # clean-fid's normalisation of the batch, elementwise in float32
    expected = (resized.astype(np.float32) - np.float32(128.0)) / np.float32(128.0)
    got = network_input(path)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert np.array_equal(got, expected)
