"""Shared fixtures: a tiny on-disk project (real set, checkpoints, prompts) for workflow runs."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def write_images(
    folder: Path, n: int, seed: int, size: tuple[int, int] = (48, 40), blur: bool = False
) -> list[Path]:
    """Smooth random colour fields: cheap, varied, and each set reproducible from its seed."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        small = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize(size, Image.BICUBIC)
        if blur:
            image = image.resize((8, 8)).resize(size)
        path = folder / f"img_{i:03d}.png"
        image.save(path)
        paths.append(path)
    return paths


def refuse_decoding(monkeypatch, only: set[str] | None = None) -> None:
    """From now on the report's previews may not decode an image file (of `only`, if given):
    what they show must come from the previews kept."""
    import ckpt_eval.report.previews as previews_module
    from ckpt_eval.inputs.images import load_rgb

    def decode(path):
        if only is None or str(path) in only:
            raise AssertionError(f"{path} was decoded again")
        return load_rgb(path)

    monkeypatch.setattr(previews_module, "load_rgb", decode)


def make_project(
    root: Path, checkpoints: dict[str, int], n_real: int = 10, **config_overrides
) -> Path:
    """Write real images, samples, prompts.csv and config.yaml under `root`; returns the config.

    Paths in the config are relative to `root` (the workflow's working directory), so a copy of
    the folder is a complete, independent project.
    """
    write_images(root / "real", n_real, seed=1)
    rows = []
    for index, (name, n) in enumerate(checkpoints.items()):
        for path in write_images(root / "samples" / name, n, seed=100 + index):
            rows.append({"file": f"{name}/{path.name}", "prompt": f"a picture number {path.stem}"})
    with open(root / "prompts.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "prompt"])
        writer.writeheader()
        writer.writerows(rows)
    config = {
        "run": "t",
        "real_images": "real",
        "samples": {"root": "samples"},
        "prompts": "prompts.csv",
        "device": "cpu",
        "num_workers": 0,
        "kid": {"subsets": 10},
        "clip": {"model": "no-such-clip-model", "required": False},
        "report": {"thumbnails": 2},
    }
    config.update(config_overrides)
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def snakemake(
    workdir: Path,
    config: Path,
    *args: str,
    check: bool = True,
    cores: str | None = "2",
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real workflow (this checkout's Snakefile) in `workdir`.

    `cores=None` leaves the cores to a profile given in `args`; `env` adds environment variables.
    """
    env = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    command = [
        SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(config),
        *(["--cores", cores] if cores else []),
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir)
    if check and done.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{done.stdout}\n{done.stderr}")
    return done


def only_own_script(html: str) -> str:
    """Check that report.html runs one script, its own (ckpt_eval/report/templates/report.js),
    and that its Content-Security-Policy lets no other run (by its sha256, no 'unsafe-inline'
    for scripts) and allows no request (`default-src 'none'`); returns the script."""
    from ckpt_eval.report.render import TEMPLATES, script_hash

    script = (TEMPLATES / "report.js").read_text(encoding="utf-8")
    assert html.count("<script") == 1 and f"<script>{script}</script>" in html
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    assert "default-src 'none'" in csp and f"script-src {script_hash(script)}" in csp
    assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";")[0]
    return script


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path, {"step-100": 5, "step-200": 5, "step-300": 5})


@pytest.fixture(scope="session")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One full run of three checkpoints, shared read-only by the workflow tests of every module
    (test_workflow, test_snakemake_report, test_reproducible): a test that changes it works on
    a copy."""
    root = tmp_path_factory.mktemp("run")
    config = make_project(root, {"step-100": 5, "checkpoint-200": 6, "e000003": 5})
    snakemake(root, config)
    return root


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from clip_fixture import make_tiny_clip

    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture
def repo() -> Path:
    return REPO


__all__ = ["make_project", "only_own_script", "snakemake", "write_images", "shutil"]
