"""The manifest of an image set: what each image is (hash, size, mode), and what was left out.

Features and metrics are computed from the manifest, never from a fresh directory listing, so
the images a number came from are always on record.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.inputs.discover import relative_file
from ckpt_eval.inputs.images import probe, sha256_file


def build_manifest(
    name: str,
    images: Iterable[str | Path],
    root: str | Path,
    on_bad_image: str = "error",
    threads: int = 1,
    decode: bool = True,
) -> dict[str, Any]:
    """Hash and probe every image, on `threads` threads (decoding and hashing release the GIL),
    in the order of the sorted paths; a bad one stops the run (the first in that order) or is
    listed as skipped.

    `decode` false: each image hashed only, not decoded nor probed (entries without size or
    mode), for a job that computes nothing from the pixels and whose bad image another job
    stops the run for (`ckpt_eval.extract.feature_jobs.model_set`): with `on_bad_image: error`
    its images and hashes are those of the decoding route whenever that route succeeds."""
    root = Path(root)
    entries: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    paths = sorted(Path(p) for p in images)
    threads = max(1, threads)
    pool = ThreadPoolExecutor(max_workers=threads)
    try:
        look = _look_at if decode else _hash_only
        looked = in_order(pool, look, paths, ahead=64 * threads)
        looked = tqdm(looked, f"organize {name}", len(paths), unit="img")
        for path, seen in zip(paths, looked, strict=True):
            if isinstance(seen, CkptEvalError):
                if on_bad_image != "skip":
                    raise seen
                skipped.append(
                    {"path": str(path), "file": relative_file(path, root), "reason": seen.what}
                )
                continue
            entries.append({"path": str(path), "file": relative_file(path, root), **seen})
    finally:  # a bad image stops the run without the rest being looked at
        pool.shutdown(cancel_futures=True)
    if not entries:
        raise CkptEvalError(
            f"'{name}' has no readable image left ({len(skipped)} skipped).",
            path=root,
            fix="add readable images; the skipped files are: "
            + ", ".join(s["path"] for s in skipped[:5]),
        )
    return sealed(
        {
            "name": name,
            "root": str(root),
            "images": entries,
            "skipped": skipped,
            "duplicates": duplicate_groups(entries),
        }
    )


def in_order(
    pool: ThreadPoolExecutor, look: Callable[[Path], Any], paths: list[Path], ahead: int
) -> Iterator[Any]:
    """`pool.map(look, paths)` with at most `ahead` images in flight. `map` submits every path
    at once: for a real set of 50,000 images, 50,000 pending futures (each with its lock and
    condition) raised the peak of a process that only organizes from 99 to 153 MiB, memory
    that the real set's Inception job, which organizes first, then keeps for its whole
    extraction (`ckpt_eval.allocator`)."""
    todo = iter(paths)
    pending: deque[Future[Any]] = deque(pool.submit(look, p) for p in islice(todo, ahead))
    while pending:
        seen = pending.popleft().result()
        pending.extend(pool.submit(look, p) for p in islice(todo, 1))
        yield seen


def _look_at(path: Path) -> dict[str, Any] | CkptEvalError:
    """An image's sha256 and what `probe` says of it, or why it cannot be read."""
    try:
        info = probe(path)
    except CkptEvalError as exc:
        return exc
    return {"sha256": sha256_file(path), **info}


def _hash_only(path: Path) -> dict[str, Any] | CkptEvalError:
    """An image's sha256, or why its file cannot be read."""
    try:
        return {"sha256": sha256_file(path)}
    except OSError as exc:
        return CkptEvalError(
            f"Cannot read the image file: {exc.strerror}.",
            path=path,
            fix="make the file readable (or remove it from the folder), then run again.",
        )


def _digest(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "seal"}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sealed(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest with its `seal`: the sha256 of the rest of its content, so an edit by hand
    (a line removed, a hash changed) is found by the job that reads it (`read_manifest`)."""
    return {**manifest, "seal": _digest(manifest)}


def read_manifest(path: str | Path) -> dict[str, Any]:
    """A manifest organize wrote, checked against its seal. An edited one is never used: it is
    removed and the error says to run again, which rebuilds it from the images (a manifest says
    what the images are; it is not a place to change them)."""
    from ckpt_eval.caches import unusable
    from ckpt_eval.jsonio import read_json

    manifest = read_json(path)
    if not isinstance(manifest, dict) or manifest.get("seal") != _digest(manifest):
        raise unusable(
            path,
            "the manifest was changed after organize wrote it (its content does not match its "
            "seal); to leave images out, remove them from the image folder instead",
        )
    return manifest


def as_manifest(manifest: dict[str, Any] | str | Path) -> dict[str, Any]:
    """A manifest a job made itself, as it is, or one read from its file (`read_manifest`)."""
    return manifest if isinstance(manifest, dict) else read_manifest(manifest)


def duplicate_groups(entries: list[dict[str, Any]]) -> list[list[str]]:
    """Files with byte-identical content, grouped: all are kept (a generator that repeats itself
    is part of what is measured), but the report names them, since a copy mistake looks alike."""
    by_hash: dict[str, list[str]] = {}
    for entry in entries:
        by_hash.setdefault(entry["sha256"], []).append(entry["file"])
    return [files for files in by_hash.values() if len(files) > 1]
