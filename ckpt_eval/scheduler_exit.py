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
"""

from __future__ import annotations

import threading

# the qualified name of the function the scheduler's timers call (snakemake 9:
# JobScheduler._schedule_reevalutation's lambda; the misspelling is Snakemake's)
REEVALUATION = "JobScheduler._schedule_reevalutation.<locals>."


def is_reevaluation_timer(thread: threading.Thread) -> bool:
    function = getattr(thread, "function", None)
    return isinstance(thread, threading.Timer) and getattr(function, "__qualname__", "").startswith(
        REEVALUATION
    )


def cancel_reevaluation_timers() -> int:
    """Cancel the scheduler's pending re-evaluation timers; how many were pending."""
    pending = [t for t in threading.enumerate() if is_reevaluation_timer(t)]
    for timer in pending:
        timer.cancel()
    return len(pending)
