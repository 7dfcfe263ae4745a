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
