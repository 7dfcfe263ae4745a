"""The bench's own data set, and workflow projects on it.

Built with the demo's generator (`ckpt_eval.demo.build_demo`: crops of scikit-image's sample
photos, checkpoints degraded to different degrees) at 256x256: a real set and five checkpoints.
Four make the evaluated run; the fifth is the checkpoint added in the incremental figure. Built
once per size into the bench's work folder and reused; projects link to its files (hard links,
so every project sees the same bytes and building one costs nothing).
"""

from __future__ import annotations

import csv
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from ckpt_eval.demo import CHECKPOINTS, build_demo

SIZE = 256
RUN_CHECKPOINTS = CHECKPOINTS[:4]
ADDED_CHECKPOINT = CHECKPOINTS[4]


@dataclass(frozen=True)
class BenchData:
    root: Path
    n_real: int
    n_per_checkpoint: int

    @property
    def real(self) -> Path:
        return self.root / "real"

    def checkpoint(self, name: str) -> Path:
        return self.root / "samples" / name

    def images(self, folder: Path) -> list[Path]:
        return sorted(folder.glob("*.png"))

    def prompt_rows(self, names: tuple[str, ...]) -> list[list[str]]:
        with open(self.root / "prompts.csv", encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))[1:]
        return [row for row in rows if row[0].split("/")[0] in names]


def sizes(quick: bool) -> tuple[int, int]:
    """(real images, images per checkpoint): a few hundred each, fewer with --quick."""
    return (100, 50) if quick else (300, 200)


def bench_data(workdir: Path, quick: bool, shape: tuple[int, int] | None = None) -> BenchData:
    """The data set of `shape` (real images, images per checkpoint), default `sizes(quick)`."""
    n_real, n_per = shape or sizes(quick)
    root = workdir / f"data-{n_real}-{n_per}-{SIZE}"
    stamp = root / ".complete"
    if not stamp.exists():
        build_demo(root, n_real=n_real, n_per_checkpoint=n_per, size=SIZE, seed=0)
        stamp.write_text("built by bench/data.py\n")
    return BenchData(root, n_real, n_per)


def _link_tree(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("*.png")):
        os.link(path, target / path.name)


def linked_real(root: Path, colour: tuple[int, int, int], n: int = 10) -> Path:
    """`root`/real: `n` hard links to one 64-px PNG of `colour` (the plan figures need files,
    not distinct images); the PNG's path."""
    from PIL import Image

    (root / "real").mkdir(parents=True, exist_ok=True)
    one = root / "one.png"
    Image.new("RGB", (64, 64), colour).save(one)
    for i in range(n):
        os.link(one, root / "real" / f"real_{i}.png")
    return one


def write_prompt_rows(project: Path, rows: list[list[str]]) -> None:
    """`project`/prompts.csv of (file, prompt) rows."""
    with open(project / "prompts.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["file", "prompt"])
        writer.writerows(rows)


def write_prompts(project: Path, data: BenchData, names: tuple[str, ...]) -> None:
    write_prompt_rows(project, data.prompt_rows(names))


def write_config(project: Path, **config: object) -> Path:
    """`project`/config.yaml: the bench's settings (CPU, no CLIP model: it is not on this
    machine), updated by `config`."""
    settings = {
        "run": "bench",
        "real_images": "real",
        "samples": {"root": "samples"},
        "prompts": "prompts.csv",
        "device": "cpu",
        "clip": {"model": str(project / "no-clip-model-here"), "required": False},
        **config,
    }
    path = project / "config.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def make_project(
    project: Path, data: BenchData, checkpoints: tuple[str, ...] = RUN_CHECKPOINTS, **config: object
) -> Path:
    """A fresh workflow project on the run's four checkpoints (or `checkpoints`); CLIP is left
    out (its model is not on this machine, and the comparison with clean-fid is about FID and
    KID)."""
    if project.exists():
        shutil.rmtree(project)
    _link_tree(data.real, project / "real")
    for name in checkpoints:
        _link_tree(data.checkpoint(name), project / "samples" / name)
    write_prompts(project, data, checkpoints)
    write_config(project, **config)
    return project


def add_checkpoint(project: Path, data: BenchData) -> None:
    _link_tree(data.checkpoint(ADDED_CHECKPOINT), project / "samples" / ADDED_CHECKPOINT)
    write_prompts(project, data, (*RUN_CHECKPOINTS, ADDED_CHECKPOINT))


def remove_checkpoint(project: Path, data: BenchData) -> None:
    """Undo `add_checkpoint`, its results included, so that adding it again recomputes it."""
    name = ADDED_CHECKPOINT
    shutil.rmtree(project / "samples" / name)
    write_prompts(project, data, RUN_CHECKPOINTS)
    out = project / "results" / "bench"
    for path in (
        out / "manifests" / f"checkpoint_{name}.json",
        out / "features" / "inception" / f"checkpoint_{name}.npz",
        out / "features" / "clip" / f"checkpoint_{name}.npz",
        out / f"metrics_checkpoint_{name}.json",
        out / "bootstrap" / f"checkpoint_{name}.npz",
    ):
        path.unlink(missing_ok=True)


def photo_crops(folder: Path, n: int, size: int, seed: int = 0, shift: int = 0) -> list[Path]:
    """`n` square crops of scikit-image's sample photos at `size` pixels, JPEG (quick to write),
    colours shifted by `shift`: what a report's JPEG thumbnails of real samples weigh, unlike a
    smooth synthetic image. Also used by tests/test_render.py's size-budget test."""
    import numpy as np
    from PIL import Image
    from skimage import data

    photos = [
        data.astronaut(),
        data.coffee(),
        data.chelsea(),
        data.rocket(),
        data.hubble_deep_field(),
    ]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        photo = photos[i % len(photos)]
        side = int(rng.integers(200, min(photo.shape[:2])))
        y = int(rng.integers(0, photo.shape[0] - side + 1))
        x = int(rng.integers(0, photo.shape[1] - side + 1))
        crop = photo[y : y + side, x : x + side].astype(np.int16) + shift
        image = Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8)).resize((size, size))
        path = folder / f"img_{i:03d}.jpg"
        image.save(path, quality=92)
        paths.append(path)
    return paths
