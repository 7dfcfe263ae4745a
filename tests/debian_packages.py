"""Debian packages the tests need, installed when missing (as CI's fresh machine needs them):
the SLURM daemons of tests/slurm_cluster.py, the chromium of tests/test_report_browser.py.

Needs root and apt-get; without them, or when the install fails, `Unavailable` says why, and
`skip_or_fail` makes that a skip (or, in CI, a failure). Installs nothing when everything is
there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any, NoReturn

import pytest


class Unavailable(RuntimeError):
    """What the tests need cannot be had on this machine (not root, no apt, a package that will
    not install): the reason."""


def missing_packages(packages: tuple[str, ...]) -> list[str]:
    """The packages of `packages` that dpkg does not list as installed."""
    if not shutil.which("dpkg-query"):
        return list(packages)
    missing = []
    for name in packages:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True
        )
        if done.returncode != 0 or "install ok installed" not in done.stdout:
            missing.append(name)
    return missing


def install(packages: tuple[str, ...]) -> float:
    """Install those of `packages` that are missing (`apt-get update` first); seconds spent.

    No service may start at install (no systemd here; the tests start daemons themselves): a
    policy-rc.d that says no is in place for the time of the install, unless the machine has one.
    """
    missing = missing_packages(packages)
    if not missing:
        return 0.0
    if os.geteuid() != 0:
        raise Unavailable(f"not root, and these Debian packages are missing: {missing}")
    if not shutil.which("apt-get"):
        raise Unavailable(f"no apt-get on this machine to install {missing}")
    start = time.monotonic()
    policy = Path("/usr/sbin/policy-rc.d")
    ours = not policy.exists()
    if ours:
        policy.write_text("#!/bin/sh\n# ckpt-eval tests: no services at install\nexit 101\n")
        policy.chmod(0o755)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        for command in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
        ):
            done = subprocess.run(command, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                raise Unavailable(
                    f"`{' '.join(command)}` failed ({done.returncode}):\n{done.stdout[-2000:]}"
                    f"\n{done.stderr[-2000:]}"
                )
    finally:
        if ours:
            policy.unlink(missing_ok=True)
    still = missing_packages(packages)
    if still:
        raise Unavailable(f"apt-get install left these packages missing: {still}")
    return time.monotonic() - start


def skip_or_fail(request: Any, what: str, variable: str, reason: str) -> NoReturn:
    """Skip the test saying why `what` cannot run here, on the terminal even under `pytest -q`
    (past output capture, once per session and `what`) and in the warnings summary; or fail,
    when the environment variable `variable` is 1 (CI sets it: there the test must run)."""
    message = f"{what} not run: {reason}"
    if os.environ.get(variable) == "1":
        pytest.fail(f"{message} ({variable}=1: this run must not skip it)")
    said = request.config.__dict__.setdefault("_ckpt_eval_said", set())
    if what not in said:
        said.add(what)
        plugins = request.config.pluginmanager
        reporter = plugins.get_plugin("terminalreporter")
        capture = plugins.get_plugin("capturemanager")
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(f"\n{message}", yellow=True)
        warnings.warn(pytest.PytestWarning(message), stacklevel=2)
    pytest.skip(message)
