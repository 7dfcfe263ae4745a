"""Whether a machine can have a CUDA device at all, answered without importing torch.

The workflow decides at plan time whether its feature jobs reserve the `gpu` resource; with
`device: auto` that needs `torch.cuda.is_available()`, and importing torch takes 1.5-3 s, paid
on every invocation (a rerun with nothing to do included). CUDA (and ROCm, which torch reports
as cuda) cannot be available without its driver's device files, so where they are absent the
answer is no and torch is not imported; where they exist torch is asked.
"""

from __future__ import annotations

import glob
import sys

# NVIDIA's driver (/dev/nvidiactl, /dev/nvidia0...), AMD ROCm (/dev/kfd), WSL2's GPU (/dev/dxg)
DRIVER_FILES = ("/dev/nvidiactl", "/dev/nvidia[0-9]*", "/dev/kfd", "/dev/dxg")


def cuda_impossible() -> bool:
    """True when no CUDA device can be present: macOS, or Linux without any GPU driver file.
    False means "maybe" (ask torch); other systems always get "maybe"."""
    if sys.platform == "darwin":
        return True
    if sys.platform.startswith("linux"):
        return not any(glob.glob(pattern) for pattern in DRIVER_FILES)
    return False


def cuda_available() -> bool:
    """`torch.cuda.is_available()`, without importing torch when the answer must be False."""
    if cuda_impossible():
        return False
    import torch

    return torch.cuda.is_available()
