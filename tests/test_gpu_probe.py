"""Deciding at plan time whether CUDA can be present, without importing torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ckpt_eval import gpu_probe


def test_no_driver_files_means_no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu_probe.sys, "platform", "linux")
    monkeypatch.setattr(gpu_probe.glob, "glob", lambda pattern: [])
    assert gpu_probe.cuda_impossible() and not gpu_probe.cuda_available()


@pytest.mark.parametrize("found", ["/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg"])
def test_a_driver_file_means_ask_torch(monkeypatch: pytest.MonkeyPatch, found: str) -> None:
    monkeypatch.setattr(gpu_probe.sys, "platform", "linux")
    monkeypatch.setattr(
        gpu_probe.glob, "glob", lambda pattern: [found] if "/dev/" in pattern else []
    )
    assert not gpu_probe.cuda_impossible()
    import torch

    assert gpu_probe.cuda_available() == torch.cuda.is_available()


def test_macos_never_has_cuda_and_other_systems_ask(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu_probe.sys, "platform", "darwin")
    assert gpu_probe.cuda_impossible()
    monkeypatch.setattr(gpu_probe.sys, "platform", "win32")
    assert not gpu_probe.cuda_impossible()


def test_the_answer_on_this_machine_agrees_with_torch_and_may_skip_importing_it() -> None:
    code = (
        "import sys\n"
        "from ckpt_eval.gpu_probe import cuda_available, cuda_impossible\n"
        "print(cuda_available(), cuda_impossible(), 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    available, impossible, imported = done.stdout.split()
    import torch

    assert available == str(torch.cuda.is_available())
    # torch is imported exactly when the driver files leave the question open
    assert imported == ("False" if impossible == "True" else "True")
