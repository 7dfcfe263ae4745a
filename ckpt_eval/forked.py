"""A loop over independent rows, split over forked processes: the job's CPUs for the one part of
a metrics job that is long, its bootstrap replicates (FID's: a small eigendecomposition each).

Each row is computed alone from what the loop read before the split, so the result is the same
bits for any number of processes (tests/test_forked.py). Forked, not spawned: the children
share the parent's arrays (copy-on-write) and start in milliseconds, and nothing is pickled but
their results. Where fork is not offered (Windows) or is unsafe with the BLAS numpy uses
(macOS' Accelerate), the rows are computed here, one process.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Callable

import numpy as np

log = logging.getLogger(__name__)


def can_fork() -> bool:
    return hasattr(os, "fork") and sys.platform.startswith("linux")


def map_rows(
    compute: Callable[[np.ndarray], np.ndarray], rows: np.ndarray, processes: int
) -> np.ndarray:
    """`compute(rows)`, one result per row in order, with the rows split over `processes`
    processes (this one included). A child that fails has its rows computed here again, so an
    error is raised with its own traceback and nothing is lost."""
    rows = np.asarray(rows)
    parts = np.array_split(rows, max(1, min(processes, len(rows))))
    if len(parts) == 1 or not can_fork():
        return compute(rows)
    children = [_fork(compute, part) for part in parts[1:]]
    results = [compute(parts[0])]
    for part, (pid, reader) in zip(parts[1:], children, strict=True):
        with os.fdopen(reader, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        try:
            if status != 0:
                raise OSError(f"exit status {status}")
            results.append(np.load(io.BytesIO(data), allow_pickle=False))
        except (OSError, ValueError) as exc:
            log.warning("a forked process failed (%s); its rows are computed here", exc)
            results.append(compute(part))
    return np.concatenate(results)


def _fork(compute: Callable[[np.ndarray], np.ndarray], part: np.ndarray) -> tuple[int, int]:
    """(pid, read end of its pipe) of a child that writes `compute(part)` as .npy and exits."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write the result, then leave without running the parent's exits
        code = 1
        try:
            os.close(reader)
            buffer = io.BytesIO()  # np.save writes a real file by its position, a pipe has none
            np.save(buffer, np.asarray(compute(part)), allow_pickle=False)
            with os.fdopen(writer, "wb") as pipe:
                pipe.write(buffer.getvalue())
            code = 0
        finally:
            os._exit(code)
    os.close(writer)
    return pid, reader
