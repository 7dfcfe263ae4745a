"""The workflow passes `snakemake --lint` and `snakefmt --check`, and the Python passes ruff, as
`make lint` runs them: CI runs only `make test`, so these keep the lint clean there too.

Each checker is also shown a small deliberately bad input, so that a checker that stopped
reporting (a changed flag, a changed exit code) fails here instead of passing everything.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO

BIN = Path(sys.executable).parent
SNAKEFILES = ["Snakefile", "workflow/rules"]
PYTHON = ["ckpt_eval", "scripts", "tests", "bench"]  # as `make lint`


def run(*command: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd)


def test_snakemake_lint_is_clean() -> None:
    done = run(str(BIN / "snakemake"), "--lint")
    assert done.returncode == 0, done.stdout + done.stderr


def test_snakemake_lint_reports_a_rule_without_log_or_env(tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(
        'rule bad:\n    output:\n        "x.txt",\n    shell:\n        "touch {output}"\n'
    )
    done = run(str(BIN / "snakemake"), "--lint", "--workflow-profile", "none", cwd=tmp_path)
    assert done.returncode != 0
    assert "No log directive defined" in done.stdout + done.stderr


def test_snakefmt_is_clean() -> None:
    done = run(str(BIN / "snakefmt"), "--check", *SNAKEFILES)
    assert done.returncode == 0, done.stdout + done.stderr


def test_snakefmt_reports_a_badly_formatted_rule(tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text('rule bad:\n  output: "x.txt"\n  shell: "touch {output}"\n')
    assert run(str(BIN / "snakefmt"), "--check", "Snakefile", cwd=tmp_path).returncode != 0


def test_ruff_is_clean() -> None:
    for command in (["check"], ["format", "--check"]):
        done = run(str(BIN / "ruff"), *command, *PYTHON)
        assert done.returncode == 0, done.stdout + done.stderr
