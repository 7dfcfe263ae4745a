"""Keeping freed memory in a torch job: fewer page faults, the same numbers. Each case runs in
its own process, since the setting lasts for the process."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from ckpt_eval import allocator

REPO = Path(__file__).resolve().parent.parent
GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

FAULTS = """
import json, resource, sys
from ckpt_eval.allocator import keep_freed_memory
took = keep_freed_memory() if sys.argv[1] == "kept" else None
import torch
torch.ones(16 << 20).sum()  # the first buffer is faulted in either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):  # a batch loop: the same 64 MiB of activations taken and freed again
    torch.ones(16 << 20).sum()
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps({"took": took, "faults": after - before}))
"""

FORWARD = """
import hashlib, sys
from ckpt_eval.allocator import keep_freed_memory
if sys.argv[1] == "kept":
    assert keep_freed_memory()
import torch
from ckpt_eval.extract import inception
torch.set_num_threads(2)
cpu = torch.device("cpu")
layers, _ = inception.load_inception(inception.bundled_weights_path(), cpu)
net = inception.fast_copy(layers, cpu)
torch.manual_seed(0)
x = (torch.rand(2, 3, 299, 299) * 255).contiguous(memory_format=inception.input_format(net))
digest = hashlib.sha256()
with torch.inference_mode():
    for _ in range(3):  # later batches run in memory an earlier one freed
        digest.update(net(x).numpy().tobytes())
print(digest.hexdigest())
"""


def _run(code: str, mode: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, mode],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.skipif(not GLIBC, reason="the setting is glibc's")
def test_freed_buffers_are_reused_instead_of_faulted_in_again() -> None:
    plain = json.loads(_run(FAULTS, "plain"))
    kept = json.loads(_run(FAULTS, "kept"))
    assert kept["took"] is True
    # 20 x 64 MiB of 4 KiB pages faulted in again without it; with it 3 to 5 of the 20 buffers
    # on this 2-CPU machine (a freed buffer is not always the one handed back next), so the
    # bound is half: without the setting all 20 are
    assert plain["faults"] > 20 * (64 << 20) // 4096 // 2
    assert kept["faults"] < plain["faults"] / 2


@pytest.mark.skipif(not GLIBC, reason="the setting is glibc's")
def test_the_network_gives_the_same_bits_either_way() -> None:
    assert _run(FORWARD, "kept") == _run(FORWARD, "plain")


def test_elsewhere_the_allocator_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("", ""))
    assert allocator.keep_freed_memory() is False
    monkeypatch.setattr(allocator.platform, "system", lambda: "Darwin")
    assert allocator.keep_freed_memory() is False
