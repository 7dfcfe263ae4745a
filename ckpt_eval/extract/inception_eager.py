"""A faster eager copy of the TorchScript FID Inception: same weights, same float32 arithmetic.

The bundled TorchScript network computes each convolution layer as conv2d, then batch_norm (a
separate pass over the activations), then an out-of-place relu, and makes every Inception block's
branch output NCHW-contiguous before concatenating. On a CPU that leaves oneDNN converting
layouts around every convolution and spends a fifth of the time in elementwise passes. This
copy, built from the TorchScript module's own parameters and structure:

- folds each batch norm into its convolution (weight / sqrt(var + eps), bias = beta - mean *
  that scale, computed in float64 and rounded once to float32), with the relu in place;
- runs channels-last throughout (no `contiguous` between blocks), so oneDNN keeps one layout.

On a CPU that is 2.0x the TorchScript's throughput, 79% of the fastest matrix product measured on
the same machine (bench/RESULTS.md, figure 1). The arithmetic is still float32 on the same
preprocessed input; the features move by ~1e-5 (absolute, on values up to ~6), as they do
between thread counts or CPUs, and FID from clean-fid's by 5e-7 to 8e-6 relative (figure 2).
`tests/test_inception.py` pins the features of a fixed image set.

Only the module types of the FID Inception are recognised (Conv2dLayer, InceptionA-E, the
pools, Sequential). Anything else (another weights file with another structure), or a copy whose
output on a probe batch differs from the TorchScript's by more than `PROBE_ATOL`, falls back to
the TorchScript module as it is.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

# The batch norm epsilon of the FID Inception (`eps=1e-3` in its Conv2dLayer code); a wrong
# value would fail the probe comparison below by orders of magnitude.
BN_EPS = 1e-3
# A structural mistake moves the features by 1e-2 or more; rounding, by ~1e-5.
PROBE_ATOL = 1e-4

log = logging.getLogger(__name__)


class FoldedConv(torch.nn.Module):
    """conv2d -> batch_norm(no scale) -> relu of one Conv2dLayer, as one biased convolution."""

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor,
        stride: Any,
        padding: Any,
    ) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(weight, requires_grad=False)
        self.bias = torch.nn.Parameter(bias, requires_grad=False)
        self.stride = stride
        self.padding = padding

    @classmethod
    def folded(cls, scripted: torch.nn.Module) -> FoldedConv:
        """The scripted layer's convolution with its batch norm folded in, in float64 and
        rounded once to float32."""
        scale = torch.rsqrt(scripted.var.detach().double() + BN_EPS)
        weight = scripted.weight.detach().double() * scale[:, None, None, None]
        bias = scripted.beta.detach().double() - scripted.mean.detach().double() * scale
        return cls(weight.float(), bias.float(), scripted.stride, scripted.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu_(F.conv2d(x, self.weight, self.bias, self.stride, self.padding))


class Pool(torch.nn.Module):
    """MaxPool2d / AvgPool2d with the scripted module's settings (`SETTINGS`)."""

    SETTINGS = ("average", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")

    def __init__(
        self,
        average: bool,
        kernel_size: Any,
        stride: Any,
        padding: Any,
        ceil_mode: bool,
        count_include_pad: bool,
    ) -> None:
        super().__init__()
        self.average = average
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad

    @classmethod
    def like(cls, scripted: torch.nn.Module) -> Pool:
        return cls(
            scripted.original_name == "AvgPool2d",
            scripted.kernel_size,
            scripted.stride,
            scripted.padding,
            bool(scripted.ceil_mode),
            bool(getattr(scripted, "count_include_pad", True)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.average:
            return F.avg_pool2d(
                x,
                self.kernel_size,
                self.stride,
                self.padding,
                self.ceil_mode,
                self.count_include_pad,
            )
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, 1, self.ceil_mode)


class Branches(torch.nn.Module):
    """InceptionA-D: the branches applied to one input, concatenated along channels."""

    def __init__(self, branches: list[torch.nn.Module]) -> None:
        super().__init__()
        self.branches = torch.nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], 1)


class InceptionE(torch.nn.Module):
    """The last two blocks: two of their branches split into a 1x3 and a 3x1 convolution."""

    PARTS = (
        "conv",
        "tower_conv",
        "tower_mixed_conv",
        "tower_mixed_conv_1",
        "tower_1_conv",
        "tower_1_conv_1",
        "tower_1_mixed_conv",
        "tower_1_mixed_conv_1",
        "tower_2_pool",
        "tower_2_conv",
    )

    def __init__(self, parts: dict[str, torch.nn.Module]) -> None:
        super().__init__()
        for name in self.PARTS:
            setattr(self, name, parts[name])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        return torch.cat(
            [
                self.conv(x),
                self.tower_mixed_conv(a),
                self.tower_mixed_conv_1(a),
                self.tower_1_mixed_conv(b),
                self.tower_1_mixed_conv_1(b),
                self.tower_2_conv(self.tower_2_pool(x)),
            ],
            1,
        )


# the branch order of each block's TorchScript forward (its concatenation order)
BRANCHES = {
    "InceptionA": ("conv", "tower", "tower_1", "tower_2"),
    "InceptionB": ("conv", "tower", "pool"),
    "InceptionC": ("conv", "tower", "tower_1", "tower_2"),
    "InceptionD": ("tower", "tower_1", "pool"),
}


class Unrecognised(ValueError):
    """The scripted network holds a module this copy does not know."""


def eager_module(scripted: torch.nn.Module) -> torch.nn.Module:
    kind = getattr(scripted, "original_name", type(scripted).__name__)
    if kind == "Conv2dLayer":
        return FoldedConv.folded(scripted)
    if kind in ("MaxPool2d", "AvgPool2d"):
        return Pool.like(scripted)
    if kind == "Sequential":
        return torch.nn.Sequential(*(eager_module(child) for _, child in scripted.named_children()))
    if kind in BRANCHES:
        return Branches([eager_module(getattr(scripted, name)) for name in BRANCHES[kind]])
    if kind == "InceptionE":
        return InceptionE(
            {name: eager_module(getattr(scripted, name)) for name in InceptionE.PARTS}
        )
    raise Unrecognised(kind)


def memory_format(device: torch.device) -> torch.memory_format:
    """channels-last on CPU and CUDA; NCHW on MPS, whose channels-last support is uneven."""
    return torch.contiguous_format if device.type == "mps" else torch.channels_last


def probe_batch(device: torch.device) -> torch.Tensor:
    """One fixed, image-like normalised input (a smooth colour field plus noise): enough to
    tell a structural mistake (1e-2 and up) from rounding (1e-5), at ~0.1 s per job."""
    g = torch.Generator().manual_seed(2015)
    coarse = torch.rand(1, 3, 8, 8, generator=g) * 2 - 1
    x = F.interpolate(coarse, size=(299, 299), mode="bicubic", align_corners=False)
    x = (x + 0.1 * torch.randn(1, 3, 299, 299, generator=g)).clamp(-1, 1)
    return x.to(device)


def fast_copy(
    layers: torch.nn.Module, device: torch.device, verified: bool = False
) -> torch.nn.Module:
    """The eager copy of `layers` on `device`, or `layers` itself when it cannot be copied or
    the copy's features of a probe batch differ from the TorchScript's.

    `verified`: the layers are the bundled file, checked against its sha256, whose copy the
    test suite pins (tests/test_inception.py); the probe (0.2 s per job) is then skipped.
    The copy carries `memory_format`, the layout its input should have (`input_format`).
    """
    try:
        copy = eager_module(layers).eval().to(device)
    except (Unrecognised, AttributeError) as exc:
        log.info("Inception: TorchScript as is (no eager copy of this network: %s)", exc)
        return layers
    fmt = memory_format(device)
    copy = copy.to(memory_format=fmt)
    copy.memory_format = fmt
    if verified:
        return copy
    probe = probe_batch(device)
    with torch.inference_mode():
        expected = layers(probe).reshape(len(probe), -1)
        got = copy(probe.contiguous(memory_format=fmt)).reshape(len(probe), -1)
    diff = (got - expected).abs().max().item() if got.shape == expected.shape else float("inf")
    if not diff <= PROBE_ATOL:
        log.warning("Inception: eager copy differs by %.2e on the probe; TorchScript used", diff)
        return layers
    return copy


def input_format(net: torch.nn.Module) -> torch.memory_format:
    """The layout `net` wants its input in: the copy's, or NCHW for a TorchScript module (the
    layout it was always given, so its features are those of earlier versions bit for bit)."""
    return getattr(net, "memory_format", torch.contiguous_format)


# --- the copy as a file: built once per run (rule inception_network), loaded by every job ----

# The version of the folding and of the file's layout: a file of another version is not used.
NETWORK_VERSION = "1"


def _spec(module: torch.nn.Module) -> Any:
    """The copy's structure as JSON (its tensors are the state dict): what `_build` rebuilds."""
    if isinstance(module, FoldedConv):
        return {"conv": [module.stride, module.padding]}
    if isinstance(module, Pool):
        return {"pool": [getattr(module, name) for name in Pool.SETTINGS]}
    if isinstance(module, torch.nn.Sequential):
        return {"sequential": [_spec(child) for child in module]}
    if isinstance(module, Branches):
        return {"branches": [_spec(child) for child in module.branches]}
    if isinstance(module, InceptionE):
        return {"e": {name: _spec(getattr(module, name)) for name in InceptionE.PARTS}}
    raise Unrecognised(type(module).__name__)


def _build(spec: Any, tensors: dict[str, torch.Tensor], prefix: str = "") -> torch.nn.Module:
    ((kind, value),) = spec.items()
    if kind == "conv":
        weight = tensors[prefix + "weight"].permute(0, 3, 1, 2)  # stored channels-last
        stride, padding = (tuple(v) if isinstance(v, list) else v for v in value)
        return FoldedConv(weight, tensors[prefix + "bias"], stride, padding)
    if kind == "pool":
        return Pool(*(tuple(v) if isinstance(v, list) else v for v in value))
    if kind == "sequential":
        return torch.nn.Sequential(
            *(_build(child, tensors, f"{prefix}{i}.") for i, child in enumerate(value))
        )
    if kind == "branches":
        return Branches(
            [_build(child, tensors, f"{prefix}branches.{i}.") for i, child in enumerate(value)]
        )
    if kind == "e":
        return InceptionE(
            {name: _build(value[name], tensors, f"{prefix}{name}.") for name in value}
        )
    raise ValueError(f"unknown part {kind!r} in the network file")


def save_network(copy: torch.nn.Module, path: str | Path, metadata: dict[str, str]) -> None:
    """The eager copy (CPU, channels-last) as a safetensors file: its folded float32 tensors,
    each convolution weight stored in its channels-last order (so loading it makes no copy),
    and its structure and `metadata` in the file's header. Written atomically."""
    from safetensors.torch import save_file

    tensors = {}
    for name, tensor in copy.state_dict().items():
        tensor = tensor.detach().cpu()
        tensors[name] = tensor.permute(0, 2, 3, 1).contiguous() if tensor.dim() == 4 else tensor
    header = {**metadata, "version": NETWORK_VERSION, "spec": json.dumps(_spec(copy))}
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    save_file(tensors, str(partial), metadata=header)
    partial.replace(path)


def network_metadata(path: str | Path) -> dict[str, str]:
    """The header of a network file, without reading its tensors."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {})


def load_network(path: str | Path, device: torch.device) -> torch.nn.Module:
    """The eager copy from its file, on `device`, the same float32 values as `fast_copy` gives
    (tests/test_inception.py: the same features, bit for bit)."""
    from safetensors.torch import load_file

    metadata = network_metadata(path)
    if metadata.get("version") != NETWORK_VERSION:
        raise ValueError(f"network file version {metadata.get('version')}, not {NETWORK_VERSION}")
    copy = _build(json.loads(metadata["spec"]), load_file(str(path))).eval()
    fmt = memory_format(device)
    copy = copy.to(device, memory_format=fmt) if device.type != "cpu" else copy
    copy.memory_format = fmt
    return copy
