"""An Inception job's first images decoded while torch is imported.

On a CPU of two cores the job imports torch on one of them for about a second, with the other
idle; then every batch is decoded between two forward passes (`inception._decoded_in_threads`).
So before the import the job forks a child that reads, resizes and normalises the first images
(`resize.network_input`, no torch) into memory shared with it, and says which are done through
a pipe. When the network is ready the child is stopped; the batches take the images it finished
and decode the rest as before. The same function makes every image in either process, so the
features are the same bits (tests/test_predecode.py); an image the child could not read is left
to the job, whose error names it.

At most AHEAD images (299x299x3 float32: 1.07 MB each, 137 MB in all) are kept. Where fork is
not offered or is unsafe (`ckpt_eval.forked.can_fork`), nothing is decoded ahead.
"""

from __future__ import annotations

import mmap
import os
import signal
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ckpt_eval.extract.resize import SIZE, network_input
from ckpt_eval.forked import can_fork

AHEAD = 128  # images decoded ahead at most: four batches of 32 (192 measured no faster here)
SHAPE = (SIZE[1], SIZE[0], 3)


class Predecoded:
    """Images `paths[:AHEAD]` being decoded by a child process until `stop`."""

    def __init__(self, paths: Sequence[str | Path], ahead: int = AHEAD):
        self.count = min(ahead, len(paths)) if can_fork() else 0
        self.ready: dict[int, np.ndarray] = {}
        self._pid: int | None = None
        if self.count == 0:
            return
        size = self.count * int(np.prod(SHAPE)) * 4
        self._memory = mmap.mmap(-1, size)  # anonymous and shared: the child writes, we read
        self._images = np.frombuffer(self._memory, np.float32).reshape(self.count, *SHAPE)
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: decode in order, say each one done, leave without cleanup
            try:
                os.close(reader)
                for index in range(self.count):
                    try:
                        self._images[index] = network_input(paths[index])
                    except Exception:  # the job reads it again and names the file
                        continue
                    os.write(writer, index.to_bytes(4, "little"))
            finally:
                os._exit(0)
        os.close(writer)
        self._pid, self._reader = pid, reader

    def __enter__(self) -> Predecoded:
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the child if it runs (a job that fails before its batches leaves none behind)
        and release the shared memory: the batches hold copies by now."""
        self.stop()
        self.ready = {}
        if self.count:
            del self._images
            try:
                self._memory.close()
            except BufferError:  # a view is still held somewhere: freed with it
                pass
            self.count = 0

    def stop(self) -> dict[int, np.ndarray]:
        """Stop the child; the images it finished, by index (views of the shared memory, valid
        until the `with` block ends)."""
        if self._pid is None:
            return self.ready
        try:
            os.kill(self._pid, signal.SIGKILL)
        except ProcessLookupError:  # it had finished
            pass
        os.waitpid(self._pid, 0)
        with os.fdopen(self._reader, "rb") as pipe:
            said = pipe.read()
        done = [int.from_bytes(said[i : i + 4], "little") for i in range(0, len(said) // 4 * 4, 4)]
        self.ready = {index: self._images[index] for index in done}
        self._pid = None
        return self.ready
