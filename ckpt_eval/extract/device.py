"""Resolve the config's `device` to a torch device that exists on this machine."""

from __future__ import annotations

import torch

from ckpt_eval.errors import CkptEvalError


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks cuda, then mps, then cpu; an explicit device that is absent is an error."""
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else torch.device("cpu")
    if name.startswith("cuda"):
        index = int(name.split(":")[1]) if ":" in name else 0
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise CkptEvalError(
                f"device '{name}' was asked for but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s).",
                fix="set device: auto or cpu in the config.",
            )
    if name == "mps" and not has_mps:
        raise CkptEvalError("device 'mps' is not available here.", fix="set device: auto or cpu.")
    return torch.device(name)
