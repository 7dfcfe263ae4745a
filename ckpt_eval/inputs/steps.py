"""Parse a checkpoint's training step (or epoch) from its name, so the report can sort by it.

A candidate of a LoRA strength sweep (`generate.lora_scales`) is a checkpoint rendered at one
LoRA scale, named `<checkpoint>@<scale>` (`step-000100@0.8`): the step is read from the part
before `@`, and candidates sort by step, then by scale. This module is the one home of that
naming, so every stage that sorts or labels checkpoints sees a candidate the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ckpt_eval.errors import CkptEvalError

# Separators between words and the number: `-`, `_`, `.` or white space (`step 100` is a folder
# name people type), any number of them (`step - 100`).
_SEP = r"[-_.\s]"
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "step",
        re.compile(rf"(?:^|{_SEP})(?:step|checkpoint|ckpt|global{_SEP}?step){_SEP}*(\d+)$", re.I),
    ),
    ("epoch", re.compile(rf"(?:^|{_SEP})(?:e|epoch){_SEP}*(\d+)$", re.I)),
    ("step", re.compile(r"^(\d+)$")),
    ("step", re.compile(rf"{_SEP}(\d+)$")),
]
SCALE_SEPARATOR = "@"
_SCALE = re.compile(r"^(?P<checkpoint>.+)@(?P<scale>\d+(?:\.\d+)?)$")
# a scale is written with at most this many decimals, so that its name is exact
SCALE_DECIMALS = 4


# The base model alone (generate:): sorts first (step 0) and is the baseline every LoRA is
# compared with.
BASELINE = "base-step-000000"


@dataclass(frozen=True)
class Position:
    """Where a checkpoint sits in training: a step, an epoch, or unknown (e.g. `final`); and
    for a strength-sweep candidate, its LoRA scale."""

    step: int | None
    epoch: int | None
    scale: float | None = None

    @property
    def sort_key(self) -> tuple[int, int] | tuple[int, int, float]:
        # Steps and epochs are not comparable; a run names them one way, and unknowns go last.
        # A scale is a third element: at one step the candidates sort by scale (a shorter
        # tuple, a checkpoint without one, sorts first).
        if self.step is not None:
            key = (0, self.step)
        elif self.epoch is not None:
            key = (1, self.epoch)
        else:
            key = (2, 0)
        return key if self.scale is None else (*key, self.scale)


def scale_text(scale: float) -> str:
    """A LoRA scale as candidate names write it: `0.6`, `0.75`, `1.0` (at most 4 decimals)."""
    text = f"{scale:.{SCALE_DECIMALS}f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def candidate_name(checkpoint: str, scale: float) -> str:
    """`step-000100@0.8`: a checkpoint at one LoRA scale of a strength sweep."""
    return f"{checkpoint}{SCALE_SEPARATOR}{scale_text(scale)}"


def split_candidate(name: str) -> tuple[str, float | None]:
    """(checkpoint, scale) of a candidate name; (name, None) for a plain checkpoint."""
    match = _SCALE.match(name)
    if match is None:
        return name, None
    return match["checkpoint"], float(match["scale"])


def check_plain_names(names: Iterable[str], root: str | Path) -> None:
    """Stop when a checkpoint's own name reads as a sweep candidate (`run@1000`, `lora@0.8`).

    The scale of a candidate is carried by its name alone (rows, order, CSV, charts and the
    recommendation read it from there), so such a folder or LoRA file would be reported as a
    checkpoint at a LoRA scale it never had, and lose its step.
    """
    for name in names:
        checkpoint, scale = split_candidate(name)
        if scale is not None:
            raise CkptEvalError(
                f"Checkpoint '{name}' is named like a candidate of a LoRA strength sweep "
                f"(`<checkpoint>{SCALE_SEPARATOR}<scale>`): it would be reported as "
                f"'{checkpoint}' at LoRA scale {scale_text(scale)}.",
                path=Path(root) / name,
                fix=f"rename it without '{SCALE_SEPARATOR}' (e.g. "
                f"'{name.replace(SCALE_SEPARATOR, '-')}').",
            )


def parse_position(name: str) -> Position:
    """`step-1500`, `checkpoint-1500`, `1500`, `name-000150` give steps; `e000003` an epoch;
    `step-1500@0.8` step 1500 at LoRA scale 0.8.

    `step 100`, `step_100`, `Step100`, `checkpoint 100` are steps too; white space around the
    name is ignored.
    """
    checkpoint, scale = split_candidate(name.strip())
    for kind, pattern in _PATTERNS:
        match = pattern.search(checkpoint)
        if match:
            value = int(match.group(1))
            if kind == "step":
                return Position(step=value, epoch=None, scale=scale)
            return Position(step=None, epoch=value, scale=scale)
    return Position(step=None, epoch=None, scale=scale)
