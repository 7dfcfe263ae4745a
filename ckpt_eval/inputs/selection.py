"""`samples.checkpoints`: evaluate only some of the checkpoints found.

The watch command sets it to the checkpoints whose files have stopped changing, so that a
checkpoint the trainer is still writing is not planned (its half-written images would be read);
a person may set it to leave checkpoints out. Applied in one place, to what the workflow plans
from: the samples found, or the generate stage's LoRA checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.inputs.layouts.base import Found
from ckpt_eval.inputs.steps import split_candidate

if TYPE_CHECKING:
    from ckpt_eval.generate.plan import GenerationPlan


def check_names(wanted: Sequence[str], found: Iterable[str]) -> None:
    """Every name of samples.checkpoints must be a checkpoint found."""
    available = list(found)
    unknown = [n for n in wanted if n not in available]
    if unknown:
        raise CkptEvalError(
            f"samples.checkpoints names checkpoint(s) that were not found: {', '.join(unknown)}.",
            fix=f"use names of the checkpoints found: {', '.join(available) or 'none'}; or set "
            "samples.checkpoints: null to evaluate every checkpoint.",
        )


def select_samples(found: Found, wanted: Sequence[str] | None) -> Found:
    """The samples of the `wanted` checkpoints only (all when `wanted` is None)."""
    if wanted is None:
        return found
    check_names(wanted, found.by_checkpoint())
    keep = set(wanted)
    return replace(found, samples=[s for s in found.samples if s.checkpoint in keep])


def select_plan(plan: GenerationPlan, wanted: Sequence[str] | None) -> GenerationPlan:
    """The generate plan with the `wanted` LoRA checkpoints only (with generate.lora_scales,
    every scale of each: candidates `<checkpoint>@<scale>`); the base-model baseline stays."""
    from ckpt_eval.inputs.steps import BASELINE

    if wanted is None:
        return plan
    checkpoint = {n: split_candidate(n)[0] for n in plan.loras if n != BASELINE}
    check_names(wanted, dict.fromkeys(checkpoint.values()))
    keep = {n for n, c in checkpoint.items() if c in wanted} | {BASELINE}
    return replace(
        plan,
        loras={n: lora for n, lora in plan.loras.items() if n in keep},
        scales={n: scale for n, scale in plan.scales.items() if n in keep},
    )
