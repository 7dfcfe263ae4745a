"""What the report's two jobs (the page, the contact sheets) read, in one place: the consolidated
result, the checkpoints' manifests by name, and where the previews of their images are kept."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ckpt_eval.caches import PREVIEWS
from ckpt_eval.inputs.manifest import read_manifest
from ckpt_eval.jsonio import read_json


def report_inputs(
    result_path: str | Path, manifest_paths: Sequence[str | Path]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(the consolidated result, each checkpoint's manifest by its name)."""
    manifests = {m["name"]: m for m in (read_manifest(p) for p in manifest_paths)}
    return read_json(result_path), manifests


def previews_folder(run_dir: str | Path) -> Path:
    """results/<run>/previews/ (`ckpt_eval.report.previews`), shared by both jobs."""
    return Path(run_dir) / PREVIEWS
