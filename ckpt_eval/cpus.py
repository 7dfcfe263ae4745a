"""How many CPUs this process may run on: what a job sizes its thread pools by.

The affinity mask, not the machine's count: under SLURM (and `taskset`, containers with a
cpuset) a job sees the cores it was given, and more threads than that only take turns.
"""

from __future__ import annotations

import os


def available() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows: no affinity mask
        return os.cpu_count() or 1
