"""Every file the workflow writes goes through `atomic_write`: complete, or not there at all.

The data goes to a temporary file beside the target (same folder, so the same file system) and
is renamed over the target with `os.replace` only once it is written, flushed and closed. A job
killed at any moment (`kill -9`, power loss) or a disk that fills up half-way therefore never
leaves a half-written result under its real name for a later job or a reader to take for a
finished one. The temporary name is unique per process (two writers never share one) and starts
with a dot; a killed writer's temporary file is left behind but is never read.

A write that fails for a reason the user can fix (disk full, quota, read-only or not writable
folder) becomes one `CkptEvalError` naming the file, saying that nothing half-written was left,
and what to do; any other error propagates unchanged.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from ckpt_eval.errors import CkptEvalError

# the process's umask (read once: setting it is the only way to read it)
_UMASK = os.umask(0o022)
os.umask(_UMASK)

# errno -> (what happened, the fix), for the write failures that are the user's to fix
_FIXABLE = {
    errno.ENOSPC: (
        "the disk is full",
        "free space on the disk that holds this folder, then run the same command again: "
        "the jobs that did not finish rerun, the finished ones are kept.",
    ),
    errno.EDQUOT: (
        "the disk quota is exceeded",
        "free space within your quota (or raise it), then run the same command again.",
    ),
    errno.EROFS: (
        "the file system is read-only",
        "run on a writable file system, or give the config another `run:` name on one.",
    ),
    errno.EACCES: (
        "the folder is not writable",
        "make the results folder writable (e.g. `chmod -R u+w results/<run>`), then run the "
        "same command again.",
    ),
    errno.EPERM: (
        "the folder is not writable",
        "make the results folder writable (e.g. `chmod -R u+w results/<run>`), then run the "
        "same command again.",
    ),
}


def write_failure(path: str | Path, exc: OSError) -> CkptEvalError | None:
    """The user-facing error for a failed write of `path`, or None if `exc` is not theirs."""
    known = _FIXABLE.get(exc.errno)
    if known is None:
        return None
    what, fix = known
    return CkptEvalError(
        f"Could not write the file: {what} ({exc.strerror}). Nothing half-written was left: "
        "results are written under a temporary name and renamed only when complete.",
        path=path,
        fix=fix,
    )


@contextmanager
def atomic_write(
    path: str | Path, mode: str = "w", durable: bool = True, **open_args
) -> Iterator[IO]:
    """Open a temporary file beside `path` for writing (`mode` "w" or "wb"); on success it
    replaces `path`, on any error it is removed and `path` is left as it was. Not `durable`:
    no fsync, for a file that is checked when read and made again if a crash left it cut
    (fsync costs milliseconds a file, and a report keeps a thousand previews)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise (write_failure(path, exc) or exc) from exc
    try:
        with os.fdopen(fd, mode, **open_args) as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        # mkstemp makes the file private (0600); results get the usual umask permissions
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and (failure := write_failure(path, exc)) is not None:
            raise failure from exc
        raise


def write_text(path: str | Path, text: str) -> None:
    """`Path.write_text` (UTF-8), atomically."""
    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def write_bytes(path: str | Path, data: bytes) -> None:
    """`Path.write_bytes`, atomically."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)
