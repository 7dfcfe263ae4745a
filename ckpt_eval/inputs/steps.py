"""Parse a checkpoint's training step (or epoch) from its name, so the report can sort by it."""

from __future__ import annotations

import re
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Position:
    """Where a checkpoint sits in training: a step, an epoch, or unknown (e.g. `final`)."""

    step: int | None
    epoch: int | None

    @property
    def sort_key(self) -> tuple[int, int]:
        # Steps and epochs are not comparable; a run names them one way, and unknowns go last.
        if self.step is not None:
            return (0, self.step)
        if self.epoch is not None:
            return (1, self.epoch)
        return (2, 0)


def parse_position(name: str) -> Position:
    """`step-1500`, `checkpoint-1500`, `1500`, `name-000150` give steps; `e000003` an epoch.

    `step 100`, `step_100`, `Step100`, `checkpoint 100` are steps too; white space around the
    name is ignored.
    """
    name = name.strip()
    for kind, pattern in _PATTERNS:
        match = pattern.search(name)
        if match:
            value = int(match.group(1))
            return Position(step=value, epoch=None) if kind == "step" else Position(None, value)
    return Position(step=None, epoch=None)
