"""One subfolder per checkpoint, named after it (`step-1500/`, `e000003/`): the original layout.

Prompts come from the `prompts` file, as they always have.
"""

from __future__ import annotations

from pathlib import Path

from ckpt_eval.inputs.discover import discover_checkpoints
from ckpt_eval.inputs.layouts.base import Detection, Found, Options, Sample, image_files, relative
from ckpt_eval.inputs.steps import parse_position


def detect(root: Path, extensions: tuple[str, ...]) -> Detection | None:
    """Subfolders whose names carry a step or epoch, holding images themselves (trainers that
    nest their samples deeper are left to their own readers)."""
    if not root.is_dir():
        return None
    named = [
        p
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and _has_position(p.name)
    ]
    images = sum(len([i for i in image_files(p, extensions) if i.parent == p]) for p in named)
    if not images:
        return None
    return Detection(
        "folders",
        images,
        images,
        f"{len(named)} subfolders named like checkpoints ({images} images)",
    )


def _has_position(name: str) -> bool:
    position = parse_position(name)
    return position.step is not None or position.epoch is not None


def read(options: Options) -> Found:
    samples = []
    for name, paths in discover_checkpoints(options.root, options.extensions).items():
        position = parse_position(name)
        samples += [
            Sample(
                path=path,
                file=relative(path, options.root),
                checkpoint=name,
                step=position.step,
                epoch=position.epoch,
            )
            for path in paths
        ]
    return Found("folders", options.root, samples)
