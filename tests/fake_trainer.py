"""A fake trainer for the watch tests: a thread that saves sample folders into samples.root on a
schedule, the way a trainer does between training steps, each PNG written in two halves with a
pause between them (a reader that does not wait would find a truncated image)."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image


def png_bytes(seed: int, size: tuple[int, int] = (48, 40)) -> bytes:
    """A smooth random colour field, as conftest.write_images draws them."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(small).resize(size, Image.BICUBIC).save(buffer, format="PNG")
    return buffer.getvalue()


def image_names(n: int) -> list[str]:
    return [f"img_{i:03d}.png" for i in range(n)]


class FakeTrainer(threading.Thread):
    """Saves checkpoint `names[k]` (`images` PNGs) `every` seconds, starting at once."""

    def __init__(
        self,
        root: Path,
        names: list[str],
        images: int,
        every: float,
        pause: float = 0.4,
    ) -> None:
        super().__init__(daemon=True)
        self.root, self.names, self.images = root, names, images
        self.every, self.pause = every, pause
        self.saved: dict[str, float] = {}  # checkpoint -> when its last image was complete
        self.stop = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        for k, name in enumerate(self.names):
            if self.stop.wait(max(0.0, start + k * self.every - time.monotonic())):
                return
            folder = self.root / name
            folder.mkdir(parents=True, exist_ok=True)
            for i, file in enumerate(image_names(self.images)):
                data = png_bytes(1000 * (k + 1) + i)
                with open(folder / file, "wb") as handle:
                    handle.write(data[: len(data) // 2])
                    handle.flush()
                    time.sleep(self.pause)
                    handle.write(data[len(data) // 2 :])
                time.sleep(self.pause)
            self.saved[name] = time.monotonic()
