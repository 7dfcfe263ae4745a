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

import logging

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

    def __init__(self, scripted: torch.nn.Module) -> None:
        super().__init__()
        scale = torch.rsqrt(scripted.var.detach().double() + BN_EPS)
        weight = scripted.weight.detach().double() * scale[:, None, None, None]
        bias = scripted.beta.detach().double() - scripted.mean.detach().double() * scale
        self.weight = torch.nn.Parameter(weight.float(), requires_grad=False)
        self.bias = torch.nn.Parameter(bias.float(), requires_grad=False)
        self.stride = scripted.stride
        self.padding = scripted.padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu_(F.conv2d(x, self.weight, self.bias, self.stride, self.padding))


class Pool(torch.nn.Module):
    """MaxPool2d / AvgPool2d with the scripted module's settings."""

    def __init__(self, scripted: torch.nn.Module) -> None:
        super().__init__()
        self.average = scripted.original_name == "AvgPool2d"
        self.kernel_size = scripted.kernel_size
        self.stride = scripted.stride
        self.padding = scripted.padding
        self.ceil_mode = bool(scripted.ceil_mode)
        self.count_include_pad = bool(getattr(scripted, "count_include_pad", True))

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

    def __init__(self, scripted: torch.nn.Module) -> None:
        super().__init__()
        for name in (
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
        ):
            setattr(self, name, eager_module(getattr(scripted, name)))

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
        return FoldedConv(scripted)
    if kind in ("MaxPool2d", "AvgPool2d"):
        return Pool(scripted)
    if kind == "Sequential":
        return torch.nn.Sequential(*(eager_module(child) for _, child in scripted.named_children()))
    if kind in BRANCHES:
        return Branches([eager_module(getattr(scripted, name)) for name in BRANCHES[kind]])
    if kind == "InceptionE":
        return InceptionE(scripted)
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
