"""Where a job's time goes: its process start, its imports and named phases of its work.

Every job writes one line to its log when it ends (`ckpt_eval.jobs.run_job`):

    ckpt-eval timing: {"rule": ..., "process_start": ..., "script_start": ..., "body_start":
    ..., "end": ..., "phases": {"import torch": 1.02, "weights": 0.21, "extract": 6.1, ...}}

`process_start` is when the job's process was created (the shell Snakemake runs the script
in), `script_start` when the script's first line ran (the interpreter has started and unpickled
Snakemake's job object by then), `body_start` when the script's imports were done and its work
began, `end` when the work was written; all in seconds since the epoch, so that the bench can
lay the jobs of a run on one time line against Snakemake's own start and end. `phases` are the
seconds of the parts of the work timed with `phase` (not all of it: what is not in a phase is
the rest of the body). The bench (`bench/breakdown.py`) reads these lines; nothing else does.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PREFIX = "ckpt-eval timing: "

_phases: dict[str, float] = {}


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Time a part of this process's job; a phase entered twice adds up."""
    start = time.perf_counter()
    try:
        yield
    finally:
        _phases[name] = _phases.get(name, 0.0) + time.perf_counter() - start


def forget_phases() -> None:
    """Start the next job's phases from nothing: a process that runs several jobs (the tests,
    a watch loop calling `run_job` in-process) must not add one job's phases to the next's."""
    _phases.clear()


def process_start() -> float | None:
    """When this process was created, in seconds since the epoch (Linux, to the clock tick:
    10 ms), from its start time since boot in /proc; None elsewhere."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        since_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - since_boot
    except (OSError, IndexError, ValueError, AttributeError):
        return None
    return time.time() - age


def timing_line(rule: str, script_start: float | None, body_start: float) -> str:
    """This job's timing line (see the module's docstring), its phases so far included."""
    record: dict[str, Any] = {
        "rule": rule,
        "process_start": process_start(),
        "script_start": script_start,
        "body_start": body_start,
        "end": time.time(),
        "phases": {name: round(seconds, 4) for name, seconds in _phases.items()},
    }
    return PREFIX + json.dumps(record) + "\n"


def read_timing(text: str) -> dict[str, Any] | None:
    """The timing record of a job's log, or None if the log has none (a failed job)."""
    for line in reversed(text.splitlines()):
        if line.startswith(PREFIX):
            return json.loads(line[len(PREFIX) :])
    return None
