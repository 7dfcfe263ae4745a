"""The on-disk format of cached features: one .npz per image set and extractor.

Arrays plus a JSON `meta` string (no pickles: loaded with allow_pickle=False). The meta says what
the features were made from (image hashes, extractor, weights sha256, preprocessing), so a
mismatch with the inputs is detected instead of silently reused.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ckpt_eval.atomic import atomic_write
from ckpt_eval.caches import unusable
from ckpt_eval.errors import CkptEvalError
from ckpt_eval.features.moments import StreamedSet


def save_features(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write to a temp name and rename (`atomic_write`), so a killed job never leaves a file
    that looks complete."""
    with atomic_write(path, "wb") as handle:
        np.savez(handle, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)


def load_features(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    with _opened(path) as data:
        return {k: data[k] for k in data.files if k != "meta"}, json.loads(str(data["meta"]))


@contextmanager
def _opened(path: str | Path) -> Iterator[Any]:
    """The open .npz. Content that cannot be read (truncated, corrupt, not a feature file) makes
    it unusable: removed, and the error says to run again. A file the system will not let us
    read (permissions) is left alone, with that fix."""
    try:
        with np.load(path, allow_pickle=False) as data:
            yield data
    except (ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise unusable(path, f"cached features cannot be read ({exc})") from exc
    except FileNotFoundError as exc:
        raise CkptEvalError(
            "Cached features are missing.",
            path=path,
            fix="run the same command again: Snakemake rewrites every missing file of the run.",
        ) from exc
    except OSError as exc:
        raise CkptEvalError(
            f"Cannot read cached features: {exc.strerror}.",
            path=path,
            fix="make the file readable, then run the same command again.",
        ) from exc


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
        raise unusable(path, "cached features do not match their inputs: " + "; ".join(problems))


def streamed_arrays(streamed: StreamedSet) -> dict[str, np.ndarray]:
    """The arrays of an Inception file: `inception` (the rows), and for a subsampled set which
    rows they are (`inception_index`), how many there were and their float64 statistics."""
    arrays = {"inception": streamed.rows}
    if streamed.index is not None:
        arrays.update(
            inception_index=streamed.index.astype(np.int64),
            inception_count=np.array(streamed.count, np.int64),
            inception_mean=streamed.mean,
            inception_cov=streamed.covariance,
        )
    return arrays


def inception_set(arrays: dict[str, np.ndarray]) -> StreamedSet:
    """The Inception rows of a feature file, with the statistics of all rows if subsampled."""
    rows = arrays["inception"]
    if "inception_index" not in arrays:
        return StreamedSet(rows, None, len(rows), None, None)
    return StreamedSet(
        rows,
        arrays["inception_index"],
        int(arrays["inception_count"]),
        arrays["inception_mean"],
        arrays["inception_cov"],
    )


def load_meta(path: str | Path) -> dict[str, Any]:
    """Only the meta of a feature file (the arrays are not read: a real set's may be large)."""
    with _opened(path) as data:
        return json.loads(str(data["meta"]))
