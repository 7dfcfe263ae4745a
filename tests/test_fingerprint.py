"""The organize jobs' parameter that stands for their image files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ckpt_eval.inputs.fingerprint import files_fingerprint


def _files(tmp_path: Path) -> list[Path]:
    paths = []
    for name, content in (("a.png", b"aaaa"), ("b.png", b"bb")):
        path = tmp_path / name
        path.write_bytes(content)
        os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
        paths.append(path)
    return paths


def test_the_fingerprint_is_the_sha256_of_each_files_path_size_and_mtime(tmp_path: Path) -> None:
    a, b = _files(tmp_path)
    lines = b"".join(
        os.fsencode(p) + b"\0" + f"{size}\0{1_700_000_000_000_000_000}".encode() + b"\n"
        for p, size in ((a, 4), (b, 2))
    )
    assert files_fingerprint([a, b]) == hashlib.sha256(lines).hexdigest()
    assert files_fingerprint([str(a), str(b)]) == files_fingerprint([a, b])


def test_what_changes_it_and_what_does_not(tmp_path: Path) -> None:
    a, b = _files(tmp_path)
    before = files_fingerprint([a, b])
    assert files_fingerprint([a, b]) == before  # nothing changed
    assert files_fingerprint([b, a]) != before  # another order is another set of rows
    assert files_fingerprint([a]) != before  # an image left out
    stat = a.stat()
    a.write_bytes(b"AAAA")  # edited in place, same size: the modification time tells
    os.utime(a, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert files_fingerprint([a, b]) != before
    os.utime(a, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert files_fingerprint([a, b]) == before  # mtime put back: size and mtime are the facts
    a.write_bytes(b"AAAAA")
    os.utime(a, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert files_fingerprint([a, b]) != before  # another size


def test_a_symlink_counts_as_its_target_and_a_missing_file_as_missing(tmp_path: Path) -> None:
    a, b = _files(tmp_path)
    link = tmp_path / "link.png"
    link.symlink_to(a)
    pointed_at_a = files_fingerprint([link])
    link.unlink()
    link.symlink_to(b)
    assert files_fingerprint([link]) != pointed_at_a
    gone = tmp_path / "gone.png"
    missing = hashlib.sha256(os.fsencode(gone) + b"\0missing\n").hexdigest()
    assert files_fingerprint([gone]) == missing
