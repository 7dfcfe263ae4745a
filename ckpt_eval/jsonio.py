"""JSON files every stage reads and writes: written atomically (`ckpt_eval.atomic`), so a killed
job never leaves half a file for the next one to read; a file that cannot be read as JSON is a
cache to recompute, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ckpt_eval.atomic import atomic_write


def write_json(data: Any, path: str | Path) -> None:
    """Write JSON atomically (temp name, then rename) so a killed job never leaves half a file.

    The layout (indent 2, a newline at the end) is what `ckpt_eval.caches.damage` checks at
    plan time: a complete file ends with a closing bracket at the start of the last line."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=False, ensure_ascii=False)
        handle.write("\n")


def read_json(path: str | Path) -> Any:
    """A JSON file this workflow wrote. One that is not valid JSON (truncated, edited, another
    file written over it) is removed, so it is never used, and the error says to run again:
    every such file is a target of the workflow, so Snakemake writes it anew."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        from ckpt_eval.caches import unusable

        raise unusable(path, f"it is not valid JSON ({exc})") from exc
