"""The on-disk format of cached features: one .npz per image set and extractor.

Arrays plus a JSON `meta` string (no pickles: loaded with allow_pickle=False). The meta says what
the features were made from (image hashes, extractor, weights sha256, preprocessing), so a
mismatch with the inputs is detected instead of silently reused.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ckpt_eval.errors import CkptEvalError


def save_features(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write to a temp name and rename, so a killed job never leaves a file that looks complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
    os.replace(tmp, path)


def load_features(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k != "meta"}
            meta = json.loads(str(data["meta"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise CkptEvalError(
            f"Cannot read cached features: {exc}",
            path=path,
            fix="delete the file; the next run recomputes it.",
        ) from exc
    return arrays, meta


def check_matches(meta: dict[str, Any], manifest: dict[str, Any], path: str | Path) -> None:
    """Refuse features whose recorded images are not the manifest's images, in order."""
    expected = [image["sha256"] for image in manifest["images"]]
    if meta.get("image_sha256") != expected:
        raise CkptEvalError(
            "Cached features were made from other images than the manifest lists.",
            path=path,
            fix="delete the file (or run with --forcerun) to recompute it.",
        )
