"""Loading a transformers model or processor from a hub id or a local folder, and the error that
says how to point the config at a folder when it cannot be loaded.

A hub id is tried from the local cache first (`local_files_only`), so an offline machine with
the model cached never waits on network retries. Before going to the hub, one TCP connection
to it is tried (3 s at most, once per process): huggingface_hub retries an unreachable host
five times with backoff (about 45 s), and an offline machine without the model must fail in
seconds. Weights are read from safetensors only: a pickled `pytorch_model.bin` could run code
from the folder.
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.inputs.images import sha256_file

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
SAFETENSORS_ONLY = "weights are read from model.safetensors only, never from a pickled .bin"


class NotLoaded(Exception):
    """`from_pretrained` failed from the cache and from the hub; the message is the last error."""


def from_pretrained(cls: Any, source: str, **kwargs: Any) -> Any:
    """`cls.from_pretrained(source, **kwargs)`, a hub id from the local cache first, then from
    the hub if it can be reached."""
    attempts = [{}] if Path(source).is_dir() else [{"local_files_only": True}, {}]
    if len(attempts) > 1 and (why := not_a_hub_id(source)):
        raise NotLoaded(_not_a_folder(why))
    errors: list[str] = []
    for extra in attempts:
        if errors and (why := hub_unreachable()):
            raise NotLoaded(_not_cached(why))
        try:
            return cls.from_pretrained(source, **kwargs, **extra)
        except Exception as exc:  # transformers raises OSError, ValueError, HTTP errors...
            errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    raise NotLoaded(errors[-1])


def _not_a_folder(why: str) -> str:
    return f"there is no such folder, and it is not a hub id ({why.rstrip('.')})"


def _not_cached(why: str) -> str:
    return f"it is not in the local Hugging Face cache and {why}"


def unloadable(source: str) -> str | None:
    """Why `source` cannot load, when that is known without importing torch or transformers
    (~3 s): no such folder and not a hub id, or a hub id whose config is not in the local cache
    and a hub that cannot be reached; the same reasons `from_pretrained` gives. None: only
    loading it tells."""
    if Path(source).is_dir():
        return None
    if why := not_a_hub_id(source):
        return _not_a_folder(why)
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(source, "config.json"), str) and (
        why := hub_unreachable()
    ):
        return _not_cached(why)
    return None


def not_a_hub_id(source: str) -> str | None:
    """Why `source` cannot be a hub repository id (a path such as /data/models/clip), or None."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(source)
    except HFValidationError as exc:
        return str(exc).splitlines()[0]
    return None


def hub_unreachable() -> str | None:
    """Why the Hugging Face hub cannot be reached from here, or None (also when a proxy is set:
    then the proxy decides, and huggingface_hub's own retries apply)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    error = _connection_error(constants.ENDPOINT)
    return f"the hub {constants.ENDPOINT} cannot be reached ({error})" if error else None


@functools.cache
def _connection_error(endpoint: str, timeout: float = 3.0) -> str | None:
    """One TCP connection to the endpoint's host, tried once per process."""
    url = urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as exc:
        return str(exc)
    return None


def load_error(
    what: str,
    source: str,
    error: NotLoaded,
    key: str,
    how: str,
    section: str,
    without: str,
    weights: bool = True,
) -> CkptEvalError:
    """The user's error: `what` ('The CLIP model') `source` could not be loaded; point the config
    `key` ('clip.model') at a folder made by `how`, or set `<section>.required: false`."""
    made = f"e.g. made once on a machine with network by {how}"
    return CkptEvalError(
        f"{what} '{source}' could not be loaded ({error}).",
        fix=f"point {key} at a local folder holding the "
        f"{'model' if weights else 'processor'} ({made}"
        f"{'; ' + SAFETENSORS_ONLY if weights else ''}), or set {section}.required: false "
        f"to run without {without}.",
    )


def model_load_error(
    extractor: Any, source: str, error: NotLoaded, own_processor: bool
) -> CkptEvalError:
    """The user's error for a model extractor's model (`ckpt_eval.features.extractors`) that
    could not be loaded: what to save to a folder (with `own_processor`, its processor too),
    and the `required: false` way out."""
    how = f"`{extractor.model_class}.from_pretrained(id).save_pretrained(dir)`"
    if own_processor and extractor.processor_class:
        how += f" and the same for {extractor.processor_class}"
    section = extractor.section
    return load_error(
        extractor.label, source, error, f"{section}.model", how, section, extractor.without
    )


def folder_weights_sha256(folder: str | Path) -> str | None:
    """One sha256 over a model folder's weight files (name and sha256 of each, sorted by name).

    A folder saved with `save_pretrained` has no hub revision, and the offline cluster case is
    exactly that; this says which weights the scores came from. Computed once per run (by the
    `<key>_model` job), not per checkpoint: CLIP ViT-L/14 is 1.7 GB. None if no weight file.
    """
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix in WEIGHT_SUFFIXES)
    if not files:
        return None
    lines = "".join(f"{p.relative_to(folder).as_posix()} {sha256_file(p)}\n" for p in files)
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()
