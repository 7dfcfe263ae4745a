"""Rows split over forked processes give the same bits as one process, and nothing is lost when
a child fails."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from ckpt_eval import forked
from ckpt_eval.forked import map_rows
from ckpt_eval.metrics.fid import fid_replicates


def _spectra(rows: np.ndarray) -> np.ndarray:
    """A row's own small eigendecomposition, as an FID replicate has: the LAPACK call whose
    bits a split must not change."""
    return np.array([np.linalg.eigvalsh(np.outer(r, r) + np.diag(r * r)).sum() for r in rows])


@pytest.mark.skipif(not forked.can_fork(), reason="rows are split on Linux only")
@pytest.mark.parametrize("processes", [2, 3, 7, 50])
def test_any_split_gives_the_bits_of_one_process(
    processes: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = np.random.default_rng(0).normal(size=(23, 9))
    one = map_rows(_spectra, rows, 1)
    assert np.array_equal(one, np.array([_spectra(r[None])[0] for r in rows]))
    who = tmp_path / "pids"

    def spectra_noting_the_process(part: np.ndarray) -> np.ndarray:
        with open(who, "a") as handle:
            handle.write(f"{os.getpid()} {len(part)}\n")
        return _spectra(part)

    with caplog.at_level(logging.WARNING, logger="ckpt_eval.forked"):
        assert np.array_equal(map_rows(spectra_noting_the_process, rows, processes), one)
    assert caplog.text == ""  # every child's rows came back from it
    done = [line.split() for line in who.read_text().splitlines()]
    assert len({pid for pid, _ in done}) == len(done) == min(processes, len(rows))
    assert sum(int(n) for _, n in done) == len(rows)


@pytest.mark.skipif(not forked.can_fork(), reason="rows are split on Linux only")
def test_the_fid_replicates_are_the_same_bits_on_two_processes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rng = np.random.default_rng(1)
    real = rng.normal(size=(60, 16))
    fake = rng.normal(size=(25, 16)) + 0.3
    counts = rng.multinomial(25, np.full(25, 1 / 25), size=101).astype(np.float64)
    stats = real.mean(axis=0), np.cov(real, rowvar=False)
    one = fid_replicates(*stats, fake, counts, processes=1)
    with caplog.at_level(logging.WARNING, logger="ckpt_eval.forked"):
        assert np.array_equal(fid_replicates(*stats, fake, counts, processes=2), one)
        assert np.array_equal(fid_replicates(*stats, fake, counts[:1], processes=2), one[:1])
    assert caplog.text == ""


@pytest.mark.skipif(not forked.can_fork(), reason="rows are split on Linux only")
def test_a_failed_child_has_its_rows_computed_here(caplog: pytest.LogCaptureFixture) -> None:
    parent = os.getpid()

    def only_here(rows: np.ndarray) -> np.ndarray:
        if os.getpid() != parent:
            raise MemoryError("a child killed or out of memory")
        return rows.sum(axis=1)

    rows = np.arange(12.0).reshape(6, 2)
    with caplog.at_level(logging.WARNING, logger="ckpt_eval.forked"):
        assert np.array_equal(map_rows(only_here, rows, 3), rows.sum(axis=1))
    assert caplog.text.count("its rows are computed here") == 2


def test_without_fork_the_rows_are_computed_in_this_process(monkeypatch) -> None:
    monkeypatch.setattr(forked, "can_fork", lambda: False)
    parent = os.getpid()
    seen = []

    def here(rows: np.ndarray) -> np.ndarray:
        seen.append((os.getpid(), len(rows)))
        return rows[:, 0]

    rows = np.arange(10.0).reshape(5, 2)
    assert np.array_equal(map_rows(here, rows, 4), rows[:, 0])
    assert seen == [(parent, 5)]
