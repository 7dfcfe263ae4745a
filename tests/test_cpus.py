"""The CPUs a job sizes its thread pools by: the affinity mask where there is one."""

from __future__ import annotations

import pytest

from ckpt_eval import cpus


def test_the_affinity_mask_not_the_machine_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpus.os, "cpu_count", lambda: 64)
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: {3, 5})
    assert cpus.available() == 2


def test_without_an_affinity_mask_the_machine_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(cpus.os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(cpus.os, "cpu_count", lambda: 8)
    assert cpus.available() == 8
    monkeypatch.setattr(cpus.os, "cpu_count", lambda: None)  # undeterminable
    assert cpus.available() == 1
