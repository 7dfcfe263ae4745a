"""JSON files every stage reads and writes: written atomically, so a killed job never leaves half
a file for the next one to read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_json(data: Any, path: str | Path) -> None:
    """Write JSON atomically (temp name, then rename) so a killed job never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=False, ensure_ascii=False)
        handle.write("\n")
    tmp.replace(path)


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
