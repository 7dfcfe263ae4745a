"""Resolving the config's `device` on this (CPU-only) machine."""

from __future__ import annotations

import pytest
import torch

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.extract.device import resolve_device

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
mps = getattr(torch.backends, "mps", None)
no_mps = pytest.mark.skipif(bool(mps and mps.is_available()), reason="needs a machine without MPS")


@no_gpu
@no_mps
def test_auto_is_cpu_without_accelerators() -> None:
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")


def test_cpu_is_always_fine() -> None:
    device = resolve_device("cpu")
    assert isinstance(device, torch.device)
    assert device.type == "cpu"


@no_gpu
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_absent_cuda_raises(name: str) -> None:
    with pytest.raises(CkptEvalError) as info:
        resolve_device(name)
    assert name in str(info.value)
    assert info.value.fix is not None and "cpu" in info.value.fix


def test_cuda_index_beyond_device_count_raises() -> None:
    with pytest.raises(CkptEvalError, match="cuda:99"):
        resolve_device("cuda:99")


@no_mps
def test_absent_mps_raises() -> None:
    with pytest.raises(CkptEvalError, match="mps"):
        resolve_device("mps")


def test_auto_picks_cuda_when_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"
