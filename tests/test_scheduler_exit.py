import threading

from snakemake.scheduling.job_scheduler import JobScheduler

from ckpt_eval.scheduler_exit import cancel_reevaluation_timers, is_reevaluation_timer


class LoopStub:
    """What `_schedule_reevalutation` touches of its scheduler: the semaphore it releases."""

    def __init__(self) -> None:
        self._open_jobs = threading.Semaphore(0)


def test_the_schedulers_own_timer_is_cancelled_and_no_other():
    # Snakemake's real method starts the timers: if it is renamed or changed, this fails
    # instead of the exit silently waiting again
    ours, other_run = LoopStub(), LoopStub()
    before = set(threading.enumerate())
    JobScheduler._schedule_reevalutation(ours, 60)
    (timer,) = set(threading.enumerate()) - before
    JobScheduler._schedule_reevalutation(other_run, 60)  # another workflow in this process
    (other_timer,) = set(threading.enumerate()) - before - {timer}
    unrelated = threading.Timer(60, lambda: None)
    unrelated.start()
    try:
        assert is_reevaluation_timer(timer, ours) and not is_reevaluation_timer(other_timer, ours)
        assert not is_reevaluation_timer(unrelated)
        assert cancel_reevaluation_timers(ours) == 1
        timer.join(5)
        assert not timer.is_alive()
        assert not ours._open_jobs.acquire(blocking=False)  # it never fired
        assert other_timer.is_alive() and unrelated.is_alive()
    finally:
        for left in (other_timer, unrelated):
            left.cancel()
            left.join(5)


def test_with_no_timer_pending_nothing_is_cancelled():
    assert cancel_reevaluation_timers() == 0


def test_at_exit_the_heap_is_frozen_and_nothing_written_is_lost(tmp_path):
    """The exit handlers registered before (logging's among them) still run after the freeze,
    and a file left open is still flushed and closed by its reference count."""
    import subprocess
    import sys

    from conftest import REPO

    log, after, left_open = (tmp_path / n for n in ("log.txt", "after.txt", "open.txt"))
    code = f"""
import atexit, gc, logging
logging.basicConfig(filename={str(log)!r}, level=logging.INFO)
atexit.register(lambda: open({str(after)!r}, "w").write(str(gc.get_freeze_count())))
from ckpt_eval.scheduler_exit import collect_nothing_at_exit
collect_nothing_at_exit()
cycle = [[]]
cycle[0].append(cycle)
logging.info("the last line")
handle = open({str(left_open)!r}, "w")
handle.write("written, never closed")
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert int(after.read_text()) > 0  # the handler registered before ran after the freeze
    assert "the last line" in log.read_text()
    assert left_open.read_text() == "written, never closed"
