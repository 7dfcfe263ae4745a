"""Find the checkpoints and their images at plan time, so that each checkpoint is its own job."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.inputs.steps import parse_position


def list_images(folder: str | Path, extensions: Iterable[str]) -> list[Path]:
    """Image files below `folder`, recursively, in a stable (sorted) order; hidden files skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CkptEvalError(
            "Folder not found.",
            path=folder,
            fix="check the path in the config (relative paths "
            "are relative to the directory snakemake runs in).",
        )
    wanted = {"." + e.lower().lstrip(".") for e in extensions}
    files = [
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in wanted
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def discover_checkpoints(root: str | Path, extensions: Iterable[str]) -> dict[str, list[Path]]:
    """One checkpoint per subfolder of `root`, sorted by training position then name."""
    root = Path(root)
    if not root.is_dir():
        raise CkptEvalError(
            "samples.root is not a folder.",
            path=root,
            fix="set samples.root to the folder "
            "holding one subfolder of sample images per checkpoint.",
        )
    extensions = list(extensions)
    found: dict[str, list[Path]] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = list_images(sub, extensions)
        if not images:
            raise CkptEvalError(
                f"Checkpoint folder '{sub.name}' holds no images ({', '.join(extensions)}).",
                path=sub,
                fix="add its sample images, or move the folder out of samples.root.",
            )
        found[sub.name] = images
    if not found:
        raise CkptEvalError(
            "No checkpoint folders found.",
            path=root,
            fix="samples.root must hold one subfolder of sample images per checkpoint.",
        )
    return dict(sorted(found.items(), key=lambda kv: (parse_position(kv[0]).sort_key, kv[0])))
