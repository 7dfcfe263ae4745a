"""Parse a checkpoint's training step (or epoch) from its name, so the report can sort by it."""

from __future__ import annotations

import re
from dataclasses import dataclass

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("step", re.compile(r"(?:^|[-_.])(?:step|checkpoint|ckpt|global[-_]?step)[-_.]?(\d+)$", re.I)),
    ("epoch", re.compile(r"(?:^|[-_.])(?:e|epoch)[-_.]?(\d+)$", re.I)),
    ("step", re.compile(r"^(\d+)$")),
    ("step", re.compile(r"[-_.](\d+)$")),
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
    """`step-1500`, `checkpoint-1500`, `1500`, `name-000150` give steps; `e000003` an epoch."""
    for kind, pattern in _PATTERNS:
        match = pattern.search(name)
        if match:
            value = int(match.group(1))
            return Position(step=value, epoch=None) if kind == "step" else Position(None, value)
    return Position(step=None, epoch=None)
