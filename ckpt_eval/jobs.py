"""Glue between a Snakemake script job and the library: logging and errors people can read."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from ckpt_eval.allocator import keep_freed_memory
from ckpt_eval.errors import CkptEvalError
from ckpt_eval.timing import forget_phases, timing_line


def run_job(snakemake: Any, body: Callable[[Any], None], torch_job: bool = False) -> None:
    """Run `body(snakemake)` with stderr (progress bars included) going to the rule's log.

    A CkptEvalError is the user's to fix: its message goes to the log and the terminal, once,
    without a traceback (set CKPT_EVAL_DEBUG=1 to see it). Anything else is a bug: traceback.
    `torch_job` (the jobs that load torch): freed memory is kept for the next batch
    (`ckpt_eval.allocator`). A successful job's log ends with its timing line
    (`ckpt_eval.timing`), and its process ends right away (`end_process`) when it runs as a
    Snakemake script (a body run from elsewhere, as in the tests, returns).
    """
    body_start = time.time()
    log_path = snakemake.log[0] if snakemake.log else None
    terminal = sys.stderr
    handle = open(log_path, "w", encoding="utf-8") if log_path else None  # noqa: SIM115
    if handle:
        sys.stderr = handle
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s", force=True)
    # A feature job computes with `feature_threads` torch threads whatever Snakemake grants it:
    # float32 sums come out a few ulps apart with another thread count, and the same inputs must
    # give the same bytes under --cores 1 and --cores 8. Other jobs use what they are given.
    threads = getattr(getattr(snakemake, "params", None), "torch_threads", None) or getattr(
        snakemake, "threads", None
    )
    if isinstance(threads, int) and threads > 0:
        limit_torch_threads(threads)
    if torch_job:
        keep_freed_memory()
    try:
        body(snakemake)
        if handle:
            handle.write(timing_line(str(snakemake.rule), _script_start(), body_start))
    except CkptEvalError as exc:
        message = f"ckpt-eval error in rule {snakemake.rule}:\n{exc}\n"
        if handle:
            handle.write(message)
        terminal.write(message)
        if os.environ.get("CKPT_EVAL_DEBUG"):
            raise
        sys.exit(1)
    finally:
        forget_phases()
        if handle:
            sys.stderr = terminal
            handle.close()
    if torch_job or _script_start() is not None:
        end_process()


def _script_start() -> float | None:
    """When the job's script began: scripts/_checkout.py, every script's first import, notes
    it (None when the body runs from elsewhere, as in the tests)."""
    return getattr(sys.modules.get("_checkout"), "STARTED", None)


def end_process() -> None:
    """End a finished job's process without the interpreter's teardown.

    With torch loaded, Python's exit (freeing the network and torch's modules, joining its
    thread pools) takes ~0.5 s, as long as a small checkpoint's metrics job; without it, numpy,
    matplotlib and the rest still take tens of milliseconds, and Snakemake starts the next job
    only once this process is gone: on the path from adding a checkpoint to its report that is
    time spent on nothing (bench figure 3). Every output is written and closed by now
    (atomically renamed files), thread pools and forked children are joined, the log handle is
    closed; the standard streams are flushed here.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def limit_torch_threads(threads: int) -> None:
    """Make torch compute with `threads` threads in this process, imported yet or not.

    A job imports torch only if it needs it (a CLIP job with no CLIP model never does, and
    saves the 1.5 s). torch sizes its thread pool from OMP_NUM_THREADS and MKL_NUM_THREADS
    when it is imported (Snakemake sets both to the job's granted threads), so setting them
    here covers a later import, and set_num_threads an earlier one.
    """
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
