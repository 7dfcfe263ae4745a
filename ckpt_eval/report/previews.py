"""Shrunk copies of the sample images the report shows, kept between runs.

The report shows every checkpoint's images: all of them in the grid's contact sheets, some on
the page. Made from the files each time, adding one checkpoint decoded every image of every
other checkpoint again: for 1024-pixel PNGs about 35 ms each, so 8 checkpoints of 64 images
cost the report ~20 s of decoding for nothing new. A preview is a pure function of the image's
bytes, the side it is shrunk to, the Pillow that shrinks it and this module's way of making it
(`FORMAT`), so it is kept under `results/<run>/previews/` named by exactly those (the image's
sha256 from its manifest) and made again only when one of them changes. Nothing needs to
invalidate it; a preview is kept only if the file still has that sha256 when it is made.

- A sheet's cell is kept as its pixels (.npy: no smaller as a PNG for these images, and read 15x
  faster), so the sheet is the one drawn from the image now. A page thumbnail is the JPEG the
  page embeds, kept as its bytes: the page is the same.
- An image no manifest lists (a real image of a close pair) is shrunk from its file, not kept.
- A preview that cannot be read is made again from the image: a kill cannot leave one cut
  (`atomic_write`), but a power cut can, as previews are written without fsync (a thousand
  fsyncs would cost a fresh run seconds for files that are checked when read anyway).
- After a report is written, the previews it did not use are removed (`prune`): the folder
  holds what the current report shows, not every image a run ever had. The page and the contact
  sheets are two jobs that may run at once, so each prunes only its own kind (`CELL`, `PAGE`).
- A preview that cannot be written (a read-only folder, a full disk) is used without being
  kept; the job's log says so once (`warn_not_kept`). The report is the same either way.
"""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np
from PIL import Image

from ckpt_eval.atomic import atomic_write
from ckpt_eval.errors import CkptEvalError
from ckpt_eval.inputs.images import load_rgb, sha256_file

VERSION_PREFIX = "pillow-"  # results/<run>/previews/pillow-<version>-<FORMAT>/
# Bump when what a preview holds changes (load_rgb's conversion, the shrink, the file format):
# previews made before are then in another folder, never read, and pruned.
FORMAT = "f1"
UNREADABLE = (OSError, ValueError, EOFError)
JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"  # a whole JPEG begins and ends with these
CELL = ".npy"  # how a contact sheet's cell is kept: its pixels (the contact_sheets job's kind)
PAGE = ".jpg"  # how a page thumbnail is kept: its JPEG bytes (the report job's kind)
T = TypeVar("T")


def shrink(path: str | Path, side: int) -> Image.Image:
    """The image as every extractor reads it (`load_rgb`), shrunk to fit `side` pixels, aspect
    kept, never enlarged."""
    image = Image.fromarray(load_rgb(path))
    image.thumbnail((side, side))
    return image


def jpeg_bytes(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _read_pixels(kept: Path) -> Image.Image | None:
    pixels = np.load(kept, allow_pickle=False)
    if pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3:
        return Image.fromarray(pixels)
    return None


def _read_jpeg(kept: Path) -> bytes | None:
    data = kept.read_bytes()
    return data if data[:2] == JPEG_START and data[-2:] == JPEG_END else None


def _of_kind(name: str, kind: str) -> bool:
    """A preview of `kind`, or the temporary file of a killed write of one
    (`.<name>.<random>.tmp`, `ckpt_eval.atomic`)."""
    if name.startswith(".") and name.endswith(".tmp"):
        name = name[1:].rsplit(".", 2)[0]
    return name.endswith(kind)


class Previews:
    """The previews of the images `manifests` list, kept in `folder` (None: made each time).

    The cache is a help, never a condition: a preview that cannot be written (a folder made
    read-only, a full disk) is used unkept, and the report is written as without it."""

    def __init__(self, folder: str | Path | None, manifests: Iterable[Mapping[str, Any]] = ()):
        # one folder per Pillow version and preview format: either may give other pixels
        self.folder = (
            Path(folder) / f"{VERSION_PREFIX}{Image.__version__}-{FORMAT}" if folder else None
        )
        self._sha = {
            img["path"]: img["sha256"] for m in manifests for img in m["images"] if "sha256" in img
        }
        self._used: set[Path] = set()
        self._jpegs: dict[tuple[str, int, int], bytes] = {}
        self._lock = threading.Lock()
        self.not_kept: str | None = None  # why a preview could not be written, the first time

    def _kept(self, path: str | Path, name: str) -> Path | None:
        sha = self._sha.get(str(path))
        if self.folder is None or sha is None:
            return None
        kept = self.folder / f"{sha}-{name}"
        with self._lock:
            self._used.add(kept)
        return kept

    def _keep(self, kept: Path, path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
        """Write a preview made just now, if the image is still the one its manifest hashed:
        an image replaced since organize ran must not be kept under the old image's name."""
        try:
            if sha256_file(path) != self._sha[str(path)]:
                return
            with atomic_write(kept, "wb", durable=False) as handle:
                write(handle)
        except (OSError, CkptEvalError) as exc:
            with self._lock:
                self.not_kept = self.not_kept or f"{kept.parent}: {exc}".splitlines()[0]

    def _made_or_kept(
        self,
        path: str | Path,
        name: str,
        read: Callable[[Path], T | None],
        make: Callable[[], T],
        write: Callable[[IO[bytes], T], None],
    ) -> T:
        """The kept preview `name` of `path` if `read` accepts it, else one made now (and kept)."""
        kept = self._kept(path, name)
        if kept is not None:
            try:
                found = read(kept)
            except UNREADABLE:
                found = None
            if found is not None:
                return found
        made = make()
        if kept is not None:
            self._keep(kept, path, lambda handle: write(handle, made))
        return made

    def cell(self, path: str | Path, side: int) -> Image.Image:
        """A contact sheet's cell: the image shrunk to `side`, the same pixels kept or not."""
        return self._made_or_kept(
            path,
            f"{side}{CELL}",
            _read_pixels,
            lambda: shrink(path, side),
            lambda handle, image: np.save(handle, np.asarray(image), allow_pickle=False),
        )

    def jpeg(self, path: str | Path, side: int, quality: int) -> bytes:
        """The page's JPEG of the image shrunk to `side`, the same bytes kept or not."""
        key = (str(path), side, quality)
        with self._lock:
            known = self._jpegs.get(key)
        if known is not None:  # one image may be in the grid, the samples and the close pairs
            return known
        data = self._made_or_kept(
            path,
            f"{side}-q{quality}{PAGE}",
            _read_jpeg,
            lambda: jpeg_bytes(shrink(path, side), quality),
            lambda handle, made: handle.write(made),
        )
        with self._lock:
            self._jpegs[key] = data
        return data

    def prune(self, kind: str) -> int:
        """Remove the previews of `kind` (CELL or PAGE) that this job did not use, the temporary
        files of killed writes of that kind included, and the folders of other Pillow versions
        or formats once empty; how many files were removed. Only this module's folders are
        looked in, and a file that cannot be removed is left."""
        if self.folder is None or not self.folder.parent.is_dir():
            return 0
        removed = 0
        for version in self.folder.parent.glob(f"{VERSION_PREFIX}*"):
            if not version.is_dir():
                continue
            for kept in version.iterdir():
                if kept in self._used or not kept.is_file():
                    continue
                if not _of_kind(kept.name, kind):
                    continue
                try:
                    kept.unlink()
                    removed += 1
                except OSError:
                    pass
            if version != self.folder:
                try:
                    version.rmdir()  # only if empty
                except OSError:
                    pass
        return removed

    def warn_not_kept(self, job: str) -> None:
        """Say once, in the job's log, that some previews were used without being kept."""
        if self.not_kept:
            print(
                f"ckpt-eval: some previews could not be kept ({self.not_kept}); the {job} is "
                "complete, the next one shrinks those images again.",
                file=sys.stderr,
            )
