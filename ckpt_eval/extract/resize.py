"""clean-fid's "clean" preprocessing of one image, without torch.

The resize is clean-fid's: each channel on its own, as a float32 ('F') PIL image, with PIL's
bicubic filter to 299x299, clipped to [0, 255] (its `make_resizer("PIL", False, "bicubic",
(299, 299))`; tests/test_resize.py checks the same bits). Written here rather than imported from
cleanfid.resize, which imports torch: an Inception job decodes its first images while torch is
still being imported (`ckpt_eval.extract.predecode`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ckpt_eval.inputs.images import load_rgb

SIZE = (299, 299)  # (width, height) the network takes


def clean_resize(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 -> 299x299x3 float32 in [0, 255]."""
    channels = [
        np.asarray(Image.fromarray(rgb[:, :, c].astype(np.float32)).resize(SIZE, Image.BICUBIC))
        for c in range(3)
    ]
    return np.stack(channels, axis=2).clip(0, 255).astype(np.float32)


def network_input(path: str | Path) -> np.ndarray:
    """The image as the network takes it: read, clean-resized and normalised, (x - 128) / 128,
    299x299x3 (HWC). The normalisation is elementwise in float32, as clean-fid does it on the
    batch, so doing it per image gives the same bits."""
    hwc = np.ascontiguousarray(clean_resize(load_rgb(path)), dtype=np.float32)
    hwc -= np.float32(128.0)
    hwc /= np.float32(128.0)
    return hwc
