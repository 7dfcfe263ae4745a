import threading

from snakemake.scheduling.job_scheduler import JobScheduler

from ckpt_eval.scheduler_exit import cancel_reevaluation_timers, is_reevaluation_timer


class LoopStub:
    """What `_schedule_reevalutation` touches of its scheduler: the semaphore it releases."""

    def __init__(self) -> None:
        self._open_jobs = threading.Semaphore(0)


def test_the_schedulers_own_timer_is_cancelled_and_no_other():
    # Snakemake's real method starts the timer: if it is renamed or changed, this fails
    # instead of the exit silently waiting again
    scheduler = LoopStub()
    before = set(threading.enumerate())
    JobScheduler._schedule_reevalutation(scheduler, 60)
    (timer,) = set(threading.enumerate()) - before
    other = threading.Timer(60, lambda: None)
    other.start()
    try:
        assert is_reevaluation_timer(timer) and not is_reevaluation_timer(other)
        assert cancel_reevaluation_timers() == 1
        timer.join(5)
        assert not timer.is_alive()
        assert not scheduler._open_jobs.acquire(blocking=False)  # it never fired
        assert other.is_alive()
    finally:
        other.cancel()


def test_with_no_timer_pending_nothing_is_cancelled():
    assert cancel_reevaluation_timers() == 0
