"""Caches that heal: how the workflow finds a damaged or missing file of `results/<run>/` and has
Snakemake rewrite it (and what depends on it) in the same plain run.

Two Snakemake behaviours decide the design:

- Snakemake rebuilds a missing file only if something it must produce needs it. A deleted
  intermediate file (a feature cache, a manifest) whose downstream outputs are present and up to
  date is not rebuilt ("Nothing to be done"). So every file a finished run keeps is a target of
  `rule all` (`kept_files` in workflow/rules/common.smk): a missing one is a missing target, and
  Snakemake's own rules rebuild it, then rerun whatever is older than it.
- Snakemake trusts the content of a file that exists. A truncated or overwritten cache looks
  finished. While the Snakefile is read, `damage` looks at each kept file's size and last bytes
  (no full read: a no-op rerun stays a stat and a small read per file) and `remove_damaged`
  deletes the damaged ones: a damaged file can never be used, and once gone it is a missing
  target, which Snakemake rebuilds with its job, then reruns what is older than it. (Adding them
  to `--forcerun` instead is not possible from a Snakefile: Snakemake 9 reads the Snakefile
  before it sets the DAG settings.) A dry run removes them too.

What the plan-time look cannot see (valid-looking content from the wrong inputs: another
checkpoint's features, an edited manifest or feature metadata) the job that reads the file
finds, since it reads the file anyway: the file is removed without being used (`unusable`) and
the error says to run the same command again, which rebuilds it as a missing target.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable
from pathlib import Path

from ckpt_eval.errors import CkptEvalError

# How every JSON file the workflow writes ends (ckpt_eval.jsonio.write_json, indent 2): the
# top-level object's closing brace alone on the last line. Nested closing brackets are indented
# and strings hold no raw newline, so a cut anywhere else cannot end like this.
JSON_END = (b"\n}\n", b"\n]\n")
# results/<run>/previews/: the report's shrunk images, kept and pruned by the report's jobs
# (ckpt_eval/report/previews.py); not a Snakemake output, so nothing here heals or checks it
PREVIEWS = "previews"
# The last bytes of the other text outputs (consolidate's CSV, the reports).
TEXT_END = {".csv": (b"\n",), ".md": (b"\n",), ".html": (b"</html>", b"</html>\n")}


def damage(path: str | Path) -> str | None:
    """Why `path` is not a complete file as this workflow writes it, or None (also for a
    missing file: that is Snakemake's to rebuild). Reads the size and the last bytes only;
    for a .npz the zip directory at its end, which a truncated archive has lost."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"it cannot be read ({exc.strerror})"
    if path.is_dir():
        return None
    if size == 0:
        return "it is empty"
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            return _npz_damage(path, size)
        ends = JSON_END if suffix == ".json" else TEXT_END.get(suffix)
        if ends is None:
            return None
        with open(path, "rb") as handle:
            handle.seek(max(0, size - 16))
            tail = handle.read()
    except OSError as exc:
        return f"it cannot be read ({exc.strerror})"
    if not tail.endswith(ends):
        return "it ends before its last line (truncated, or written over by something else)"
    return None


def _npz_damage(path: Path, size: int) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except zipfile.BadZipFile:
        return "it is not a complete .npz archive (truncated, or written over by something else)"
    if not any(m.filename == "meta.npy" for m in members):
        return "it has no `meta` record (not a feature file written by ckpt-eval)"
    if any(m.header_offset + m.compress_size > size for m in members):
        return "an array in it ends past the end of the file (truncated)"
    return None


def damaged(paths: Iterable[str | Path]) -> dict[str, str]:
    """The damaged files among `paths`, each with why."""
    found = {}
    for path in paths:
        reason = damage(path)
        if reason is not None:
            found[str(path)] = reason
    return found


def remove_damaged(paths: Iterable[str | Path]) -> str | None:
    """Remove the damaged files among `paths`; what to print about them (None if none): which
    files, why, and that this run rewrites them (nothing for the user to do)."""
    found = damaged(paths)
    if not found:
        return None
    lines = [
        f"ckpt-eval: {len(found)} damaged file(s) in the results, removed without being used; "
        "this run rewrites them and what depends on them:"
    ]
    for path, reason in sorted(found.items()):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            reason += f"; it could not be removed ({exc.strerror}): make its folder writable"
        lines.append(f"  {path}: {reason}")
    return "\n".join(lines)


def unwritable(out: str | Path, paths: Iterable[str | Path]) -> str | None:
    """A notice when the results folder, one of its folders or files cannot be written (a
    read-only mount, permissions), or None. Snakemake itself then stops any job that would
    write there ("Write-protected output files"), without saying what to do; a run with
    nothing to do only reads the results and goes through. One access() per folder and file."""
    out = Path(out)
    if not out.is_dir():
        return None
    folders = [out]
    for root, dirs, _ in os.walk(out):
        # the report's previews are a cache it manages itself: thousands of files, not walked
        dirs[:] = [d for d in dirs if not (Path(root) == out and d == PREVIEWS)]
        folders += [Path(root) / d for d in dirs if d != "logs"]
    existing = [Path(p) for p in paths if os.path.lexists(p)]
    blocked = next((p for p in [*folders, *existing] if not os.access(p, os.W_OK)), None)
    if blocked is None:
        return None
    return (
        f"ckpt-eval: {blocked} cannot be written (read-only file system or permissions). A run "
        "with work to do stops at Snakemake's 'Write-protected output files'; results are "
        f"only read.\n  fix: make {out} writable (e.g. `chmod -R u+w {out}`), or give the "
        "config another `run:` name (its results then go to results/<name>/)."
    )


def unusable(path: str | Path, why: str) -> CkptEvalError:
    """The error of a job that found one of its cached inputs unusable: the file is removed
    first (it can never be read as valid), so the same command again rebuilds it (a missing
    target, see the module docstring). Nothing else is touched."""
    try:
        os.unlink(path)
        removed = "The file was removed without being used."
    except FileNotFoundError:
        removed = "The file is gone."
    except OSError as exc:
        return CkptEvalError(
            f"Cached file cannot be used: {why}. It could not be removed ({exc.strerror}).",
            path=path,
            fix="delete the file (make its folder writable first), then run the same command "
            "again: Snakemake rewrites it.",
        )
    return CkptEvalError(
        f"Cached file cannot be used: {why}. {removed}",
        path=path,
        fix="run the same command again: Snakemake rewrites the removed file and what depends "
        "on it.",
    )
