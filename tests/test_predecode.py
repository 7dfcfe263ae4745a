"""Images decoded ahead by the child are the bits the job would make; nothing is lost if the
child is stopped early, cannot read an image, or cannot run."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from conftest import write_images

from ckpt_eval.extract import predecode
from ckpt_eval.extract.predecode import Predecoded
from ckpt_eval.extract.resize import network_input
from ckpt_eval.forked import can_fork

forking = pytest.mark.skipif(not can_fork(), reason="images are decoded ahead on Linux only")


@forking
def test_the_images_decoded_ahead_are_the_jobs_bits(tmp_path) -> None:
    paths = write_images(tmp_path / "a", 6, seed=1, size=(64, 40))
    (tmp_path / "a" / "broken.png").write_bytes(b"not a png")
    paths.insert(2, tmp_path / "a" / "broken.png")
    with Predecoded(paths, ahead=5) as ahead:
        time.sleep(1.0)  # five small images: the child is done
        ready = ahead.stop()
        assert sorted(ready) == [0, 1, 3, 4]  # the unreadable one is left to the job
        for index, image in ready.items():
            assert np.array_equal(image, network_input(paths[index]))
    assert ahead.ready == {} and ahead.stop() == {}


@forking
def test_a_child_stopped_at_once_leaves_no_process_and_no_half_image(tmp_path) -> None:
    paths = write_images(tmp_path / "b", 40, seed=2, size=(512, 512))
    with Predecoded(paths) as ahead:
        pid = ahead._pid
        ready = ahead.stop()
        assert len(ready) < len(paths)
        for index, image in ready.items():
            assert np.array_equal(image, network_input(paths[index]))
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, 0)  # reaped


def test_without_fork_nothing_is_decoded_ahead(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(predecode, "can_fork", lambda: False)
    paths = write_images(tmp_path / "c", 3, seed=3)
    with Predecoded(paths) as ahead:
        assert ahead.count == 0 and ahead.stop() == {}
