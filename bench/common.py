"""What every figure needs: medians of timed runs, Snakemake runs, and how busy the machine was.

Timing is `time.perf_counter` (wall clock: what a user waits for). Ratios are measured side by
side, their runs interleaved (A, B, A, B, ...), so that load from other processes falls on both
sides alike; each side's figure is the median of its runs.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SNAKEMAKE = str(BIN / "snakemake")


@dataclass
class Context:
    """Settings of one bench run, shared by the figures."""

    quick: bool
    repeats: int
    workdir: Path
    threads: int = 2  # torch threads of feature extraction: the config's feature_threads
    cache: dict[str, Any] = field(default_factory=dict)
    # another checkout of the workflow (`--baseline`): the figures that run the workflow run
    # its too, interleaved with this one's, to measure a change under the same load
    baseline: Path | None = None


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def interleaved(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each run, `repeats` times, in the order A, B, ..., A, B, ..."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            times[name].append(timed(fn)[0])
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    """median (min-max) of seconds, for the tables."""
    return f"{median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def snakemake(workdir: Path, *args: str, cores: int = 2, repo: Path = REPO) -> tuple[float, str]:
    """Run this checkout's workflow (or `repo`'s) in `workdir`; (wall seconds, its output)."""
    command = [SNAKEMAKE, "-s", str(repo / "Snakefile"), "-d", str(workdir), "--cores", str(cores)]
    env = dict(os.environ, PYTHONPATH=str(repo))
    start = time.perf_counter()
    done = subprocess.run([*command, *args], capture_output=True, text=True, env=env, cwd=workdir)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"snakemake {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout + done.stderr


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children so far: the difference
    around a run is what the run computed, a figure that load from other processes inflates
    far less than its wall time (on an idle core the two are about the same)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _busy_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def _own_cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class MachineLoad:
    """How much of the machine other processes used while a figure ran.

    The machine's busy CPU time (/proc/stat) minus this process's and its finished children's
    (getrusage), as a share of all cores over the wall time. Linux only; elsewhere None.
    """

    def __enter__(self) -> MachineLoad:
        self.available = Path("/proc/stat").is_file()
        self.start = time.perf_counter()
        self.own = _own_cpu_seconds()
        self.jiffies = _busy_jiffies() if self.available else (0, 0)
        self.others: float | None = None
        self.loadavg = [os.getloadavg()[0]] if hasattr(os, "getloadavg") else []
        return self

    def __exit__(self, *exc: object) -> None:
        if self.loadavg:
            self.loadavg.append(os.getloadavg()[0])
        if not self.available:
            return
        busy, total = _busy_jiffies()
        hz = os.sysconf("SC_CLK_TCK")
        machine_busy = (busy - self.jiffies[0]) / hz
        own = _own_cpu_seconds() - self.own
        capacity = (total - self.jiffies[1]) / hz
        self.others = max(machine_busy - own, 0.0) / capacity if capacity > 0 else None

    def note(self) -> str:
        if self.others is None:
            return "Machine load from other processes: not measured (no /proc/stat)."
        shared = "shared" if self.others > 0.05 else "not shared"
        loads = getattr(self, "loadavg", [])
        load = (
            f"; load average (1 min) {loads[0]:.1f} when it began, {loads[-1]:.1f} when it ended"
            if len(loads) == 2
            else ""
        )
        return (
            f"Other processes used {100 * self.others:.0f}% of the machine's CPU time while "
            f"this figure ran (the machine was {shared}){load}."
        )


@dataclass(frozen=True)
class Target:
    """One target of a figure as this run measured it: what docs/performance.md quotes
    (`bench/quote.py`), so the docs say what RESULTS.md says and nothing else."""

    what: str  # what is measured, e.g. "fresh run over its extraction, 5 x 200"
    measured: str  # with its unit, e.g. "1.21 x"
    limit: str  # e.g. "<= 1.5 x"
    met: bool


def yes_no(target: Target) -> str:
    """How a section's text says whether the target was met: the same fact the quote shows."""
    return "yes" if target.met else "NO"
