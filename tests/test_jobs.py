"""run_job: a user error is one readable message (log and terminal), anything else a traceback."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from ckpt_eval import timing
from ckpt_eval.errors import CkptEvalError
from ckpt_eval.jobs import run_job

ERROR = CkptEvalError("The thing is broken.", path="/data/x.png", fix="replace x.png.")


@pytest.fixture(autouse=True)
def restore_logging_and_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """run_job reconfigures the root logger (and torch threads) for its process: undo that."""
    monkeypatch.delenv("CKPT_EVAL_DEBUG", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # run_job sets these: restored after
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    threads = torch.get_num_threads()
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
    torch.set_num_threads(threads)


def _smk(tmp_path: Path, **extra) -> SimpleNamespace:
    return SimpleNamespace(log=[str(tmp_path / "logs" / "job.log")], rule="r", **extra)


def _logs_dir(tmp_path: Path) -> Path:
    (tmp_path / "logs").mkdir(exist_ok=True)
    return tmp_path / "logs" / "job.log"


def test_user_error_exits_1_with_message_in_log_and_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _logs_dir(tmp_path)
    terminal = sys.stderr

    def body(smk) -> None:
        print("progress 50%", file=sys.stderr)
        raise ERROR

    with pytest.raises(SystemExit) as info:
        run_job(_smk(tmp_path), body)
    assert info.value.code == 1
    assert sys.stderr is terminal  # restored

    expected = f"ckpt-eval error in rule r:\n{ERROR}\n"
    assert "fix: replace x.png." in expected and "file: /data/x.png" in expected
    text = log.read_text(encoding="utf-8")
    assert text.count(expected) == 1
    assert "progress 50%" in text  # the job's stderr went to its log
    assert "Traceback" not in text

    err = capsys.readouterr().err
    assert err.count(expected) == 1
    assert "progress 50%" not in err  # not on the terminal
    assert "Traceback" not in err


def test_debug_env_reraises_user_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _logs_dir(tmp_path)
    monkeypatch.setenv("CKPT_EVAL_DEBUG", "1")

    def body(smk) -> None:
        raise ERROR

    with pytest.raises(CkptEvalError) as info:
        run_job(_smk(tmp_path), body)
    assert info.value is ERROR
    assert "The thing is broken." in capsys.readouterr().err


def test_other_exception_propagates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = _logs_dir(tmp_path)
    terminal = sys.stderr

    def body(smk) -> None:
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError, match="a bug"):
        run_job(_smk(tmp_path), body)
    assert sys.stderr is terminal
    assert "ckpt-eval error" not in log.read_text(encoding="utf-8")
    assert "ckpt-eval error" not in capsys.readouterr().err


def test_success_leaves_the_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = _logs_dir(tmp_path)
    terminal = sys.stderr
    seen = []

    def body(smk) -> None:
        seen.append(smk.rule)
        print("progress 100%", file=sys.stderr)
        logging.getLogger("ckpt_eval.test").info("wrote 3 files")

    assert run_job(_smk(tmp_path), body) is None
    assert seen == ["r"]
    assert sys.stderr is terminal
    text = log.read_text(encoding="utf-8")
    assert "progress 100%" in text
    assert "wrote 3 files" in text  # logging goes to the log too
    assert "error" not in text
    assert capsys.readouterr().err == ""


def test_without_log_the_message_goes_to_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def body(smk) -> None:
        raise ERROR

    with pytest.raises(SystemExit) as info:
        run_job(SimpleNamespace(log=[], rule="organize"), body)
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.count(f"ckpt-eval error in rule organize:\n{ERROR}\n") == 1
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_threads_limit_torch(tmp_path: Path) -> None:
    _logs_dir(tmp_path)
    wanted = 1 if torch.get_num_threads() != 1 else 2  # differs from the current setting
    seen = []
    run_job(_smk(tmp_path, threads=wanted), lambda smk: seen.append(torch.get_num_threads()))
    assert seen == [wanted]


def test_a_feature_job_computes_with_its_fixed_torch_threads(tmp_path: Path) -> None:
    """params.torch_threads (config feature_threads) wins over what Snakemake grants, so that
    --cores does not change the float32 sums."""
    _logs_dir(tmp_path)
    wanted = 1 if torch.get_num_threads() != 1 else 2
    granted = 3 if wanted != 3 else 4
    seen = []
    smk = _smk(tmp_path, threads=granted, params=SimpleNamespace(torch_threads=wanted))
    run_job(smk, lambda smk: seen.append(torch.get_num_threads()))
    assert seen == [wanted]


def test_a_feature_job_that_imports_torch_later_gets_its_threads_too() -> None:
    """A job imports torch only when it needs it (a CLIP job without a model never does):
    the thread count must hold for a torch imported after run_job started (a fresh process:
    this one has torch already)."""
    code = (
        "import sys, types\n"
        "from ckpt_eval.jobs import run_job\n"
        "seen = []\n"
        "def body(smk):\n"
        "    import torch\n"
        "    seen.append(torch.get_num_threads())\n"
        "smk = types.SimpleNamespace(log=[], rule='r', threads=3,\n"
        "    params=types.SimpleNamespace(torch_threads=1))\n"
        "run_job(smk, body)\n"
        "print('torch' in sys.modules, seen)\n"
    )
    import os
    import subprocess
    import sys

    # as Snakemake starts a job granted 3 threads (snakemake/shell.py sets these)
    env = dict(os.environ, OMP_NUM_THREADS="3", MKL_NUM_THREADS="3", OPENBLAS_NUM_THREADS="3")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True [1]"


EXITING_JOB = """
import sys
from types import SimpleNamespace
from ckpt_eval.jobs import run_job

def body(smk):
    print("to stdout, unflushed", end="")
    print("progress to the log", file=sys.stderr)
    if sys.argv[2] == "fail":
        raise RuntimeError("a bug")

run_job(SimpleNamespace(log=[sys.argv[1]], rule="r"), body, torch_job=True)
print("never printed")
"""


def test_a_job_that_exits_when_done_keeps_its_output_and_its_failures(tmp_path: Path) -> None:
    """The process ends at once after success (no interpreter teardown), with what it wrote
    flushed; a failure is not cut short: it keeps its traceback and its non-zero status."""
    log = tmp_path / "job.log"

    def job(outcome: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", EXITING_JOB, str(log), outcome]
        return subprocess.run(command, capture_output=True, text=True, check=False)

    done = job("ok")
    assert (done.returncode, done.stdout) == (0, "to stdout, unflushed")
    progress, timing_line = log.read_text(encoding="utf-8").splitlines()
    assert progress == "progress to the log"
    assert timing_line.startswith(timing.PREFIX)  # a successful job's last line
    failed = job("fail")
    assert failed.returncode == 1 and "RuntimeError: a bug" in failed.stderr


def test_a_successful_job_logs_where_its_time_went(tmp_path: Path) -> None:
    """The timing line (`ckpt_eval.timing`): when the process began, when the body began and
    ended, and the phases the body timed; a failed job writes none."""
    import time

    log = _logs_dir(tmp_path)

    def body(smk) -> None:
        with timing.phase("extract"):
            time.sleep(0.05)
        with timing.phase("extract"):  # a phase entered twice adds up
            time.sleep(0.05)

    before = time.time()
    run_job(_smk(tmp_path), body)
    record = timing.read_timing(log.read_text(encoding="utf-8"))
    assert record["rule"] == "r"
    assert record["process_start"] <= before <= record["body_start"] <= record["end"]
    assert record["end"] - record["body_start"] >= 0.1
    assert 0.1 <= record["phases"]["extract"] <= record["end"] - record["body_start"]
    assert record["script_start"] is None  # no scripts/_checkout.py in this process

    def failing(smk) -> None:
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        run_job(_smk(tmp_path), failing)
    assert timing.read_timing(log.read_text(encoding="utf-8")) is None


def test_a_jobs_phases_do_not_carry_into_the_next_job_of_the_same_process(tmp_path: Path) -> None:
    """Phases are per job: a second `run_job` in one process (the tests do this) logs only
    its own, whether the first job succeeded or failed."""
    log = _logs_dir(tmp_path)

    def slow(smk) -> None:
        with timing.phase("extract"):
            pass
        timing._phases["extract"] = 100.0  # as if the first job had extracted for 100 s

    def failing(smk) -> None:
        with timing.phase("weights"):
            raise ZeroDivisionError("a bug")

    def quick(smk) -> None:
        with timing.phase("extract"):
            pass

    run_job(_smk(tmp_path), slow)
    assert timing.read_timing(log.read_text(encoding="utf-8"))["phases"]["extract"] == 100.0
    with pytest.raises(ZeroDivisionError):
        run_job(_smk(tmp_path), failing)
    run_job(_smk(tmp_path), quick)
    phases = timing.read_timing(log.read_text(encoding="utf-8"))["phases"]
    assert set(phases) == {"extract"} and phases["extract"] < 1.0
