"""A finished run's Snakemake process ends when its work does, not up to a second later.

Snakemake's scheduler limits how many jobs start per timespan (`--max-jobs-per-timespan`,
100 per 1 s by default): while jobs run, each pass of its loop starts a `threading.Timer` of
the timespan that wakes the loop again. The timer is not a daemon thread, so the one started by
the last pass keeps the process alive until it fires, after the run is over: measured ~1 s of
every run (bench/RESULTS.md, "Snakemake's exit"). The timespan cannot be shortened instead: its
pattern reads `10ms` as 10 minutes, and a timespan of 0 s makes the loop spin while jobs run.

Cancelling those timers once the scheduler has returned (the workflow's `onsuccess` and
`onerror` handlers run after it) changes nothing else: a timer's only act is to wake a loop that
has ended. Only Snakemake's own re-evaluation timers are cancelled (told by the function they
call), so any other timer of the process keeps running.

Then the interpreter's own exit: its last garbage collections walk every object Snakemake and
its plugins left (pydantic and SQLAlchemy models, the DAG), ~0.25 s of every invocation, a
no-op rerun included, for memory the OS takes back at once anyway. `collect_nothing_at_exit`
freezes the heap first (`gc.freeze`): objects are still freed by their reference counts, files
flushed and closed as before, only the collector's walks are skipped.
"""

from __future__ import annotations

import atexit
import gc
import threading

# the qualified name of the function the scheduler's timers call (snakemake 9:
# JobScheduler._schedule_reevalutation's lambda; the misspelling is Snakemake's)
REEVALUATION = "JobScheduler._schedule_reevalutation.<locals>."


def is_reevaluation_timer(thread: threading.Thread, scheduler: object | None = None) -> bool:
    """A re-evaluation timer of Snakemake's scheduler (of `scheduler` only, when given: the
    function it calls closes over the scheduler it wakes)."""
    function = getattr(thread, "function", None)
    if not (
        isinstance(thread, threading.Timer)
        and getattr(function, "__qualname__", "").startswith(REEVALUATION)
    ):
        return False
    cells = getattr(function, "__closure__", None) or ()
    return scheduler is None or any(cell.cell_contents is scheduler for cell in cells)


def cancel_reevaluation_timers(scheduler: object | None = None) -> int:
    """Cancel the pending re-evaluation timers of `scheduler` (a workflow's, after its loop has
    returned; of every scheduler if None); how many were pending. Another workflow run in the
    same process through Snakemake's API keeps its own."""
    pending = [t for t in threading.enumerate() if is_reevaluation_timer(t, scheduler)]
    for timer in pending:
        timer.cancel()
    return len(pending)


def collect_nothing_at_exit() -> None:
    """At exit, freeze the heap so the interpreter's last collections skip it. Registered while
    the Snakefile is read, it runs before the exit handlers of modules imported earlier (logging
    flushing its handlers among them), which run after it as always."""
    atexit.register(gc.freeze)
