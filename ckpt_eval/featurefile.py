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


def check_matches(
    meta: dict[str, Any],
    manifest: dict[str, Any],
    path: str | Path,
    expected: dict[str, Any] | None = None,
) -> None:
    """Refuse features not made from the manifest's images (in order) or by the expected
    extractor (`expected`: meta key -> value, e.g. weights sha256, preprocessing version).

    A refused file is deleted before the error is raised: it can never be read as valid, and the
    next run recomputes it. Nothing else is touched.
    """
    problems = []
    if meta.get("image_sha256") != [image["sha256"] for image in manifest["images"]]:
        problems.append("it was made from other images than the manifest lists")
    for key, value in (expected or {}).items():
        if meta.get(key) != value:
            problems.append(f"its {key} is {meta.get(key)!r}, expected {value!r}")
    if problems:
        Path(path).unlink(missing_ok=True)
        raise CkptEvalError(
            "Cached features do not match their inputs: "
            + "; ".join(problems)
            + ". The stale file was removed without being used.",
            path=path,
            fix="run the same command again: Snakemake recomputes the removed file.",
        )
