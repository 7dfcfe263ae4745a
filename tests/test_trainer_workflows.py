"""Each trainer's output folder, as `init` configures it, through the workflow's organize step
(the first of a checkpoint's Inception job) and a job that pairs prompts (CLIP's features, with
no CLIP model offline: they record the prompts they would embed): no file moved by hand, every
sample paired with the prompt it was made from."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import trainer_outputs as make
import yaml
from conftest import snakemake
from trainer_outputs import tiny_image

from ckpt_eval.features.cache import load_features
from ckpt_eval.init_config import InitRequest, run_init

pytestmark = pytest.mark.workflow

TREES: dict[str, Callable[[Path], make.Tree]] = {
    # end-of-epoch samples, mapped to steps by the checkpoints' metadata
    "kohya": lambda p: make.kohya(p / "train", steps=(), epochs=(1, 2), steps_per_epoch=150),
    "ai-toolkit": lambda p: make.ai_toolkit(p / "output"),
    "simpletuner": lambda p: make.simpletuner(p / "project"),
    "onetrainer": lambda p: make.onetrainer(p / "workspace"),
}


def initialised(root: Path, tree_root: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.chdir(root)
    tiny_image(root / "real" / "a.png", 1)
    tiny_image(root / "real" / "b.png", 2)
    run_init(
        InitRequest(source=tree_root.relative_to(root), real=Path("real"), output=Path("c.yaml"))
    )
    config = yaml.safe_load((root / "c.yaml").read_text())
    # no CLIP weights offline: its jobs record what they would embed, and no arrays
    config["clip"] = {"model": str(root / "no-clip-model"), "required": False}
    (root / "c.yaml").write_text(yaml.safe_dump(config))
    return config


def paired_target(config: dict, name: str) -> str:
    """Checkpoint `name`'s CLIP features file: a job that pairs each image with its prompt."""
    return f"results/{config['run']}/features/clip/checkpoint_{name}.npz"


def manifest_target(config: dict, name: str) -> str:
    """Checkpoint `name`'s manifest: its Inception job's (the CLIP job organizes the same images
    for itself, in memory)."""
    return f"results/{config['run']}/manifests/checkpoint_{name}.json"


def paired_prompts(root: Path, config: dict, name: str) -> list[str]:
    """Each image's prompt in that file, in its manifest's order."""
    _, meta = load_features(root / paired_target(config, name))
    return meta["prompts"]


@pytest.mark.parametrize("trainer", list(TREES))
def test_trainer_output_through_organize_and_prompts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trainer: str
) -> None:
    tree = TREES[trainer](tmp_path)
    config = initialised(tmp_path, tree.root, monkeypatch)
    out = f"results/{config['run']}"
    targets = [paired_target(config, name) for name in tree.checkpoints]
    targets += [manifest_target(config, name) for name in tree.checkpoints]
    snakemake(tmp_path, tmp_path / "c.yaml", *targets)
    for name in tree.checkpoints:
        manifest = json.loads(
            (tmp_path / out / "manifests" / f"checkpoint_{name}.json").read_text()
        )
        prompts = paired_prompts(tmp_path, config, name)
        assert len(prompts) == len(manifest["images"]) > 0
        assert set(prompts) == set(tree.prompts.values())
        for image in manifest["images"]:  # the files of this checkpoint only, where they lie
            assert (tree.root / image["file"]).is_file()
    assert not (tmp_path / out / "metrics.csv").exists()  # only what was asked for


def test_kohya_prompt_is_paired_with_its_own_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make.kohya(tmp_path / "train", steps=(100,))
    config = initialised(tmp_path, tmp_path / "train", monkeypatch)
    paired, organized = (t(config, "step-000100") for t in (paired_target, manifest_target))
    snakemake(tmp_path, tmp_path / "c.yaml", paired, organized)
    manifest = json.loads((tmp_path / organized).read_text())
    files = [image["file"] for image in manifest["images"]]
    by_file = dict(zip(files, paired_prompts(tmp_path, config, "step-000100"), strict=True))
    assert by_file == {
        "sample/dog_000100_00_20240501120000_42.png": "a photo of sks dog",
        "sample/dog_000100_01_20240501120000_7.png": "a watercolor painting of sks dog",
        "sample/dog_000100_02_20240501120000.png": (
            "# indented: sd-scripts only skips lines whose first character is #"
        ),
    }


def test_missing_trainer_prompts_stop_before_any_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make.kohya(tmp_path / "train", prompt_file=False)
    initialised(tmp_path, tmp_path / "train", monkeypatch)
    done = snakemake(tmp_path, tmp_path / "c.yaml", check=False)
    assert done.returncode != 0
    assert "6 sample image(s) have no prompt" in done.stdout + done.stderr
    assert "samples.prompt_file" in done.stdout + done.stderr
    assert not (tmp_path / "results").exists()


def test_diffusers_checkpoints_stop_saying_samples_must_be_generated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make.diffusers(tmp_path / "out")
    initialised(tmp_path, tmp_path / "out", monkeypatch)
    done = snakemake(tmp_path, tmp_path / "c.yaml", check=False)
    assert done.returncode != 0
    assert "samples must be generated" in done.stdout + done.stderr
    assert not (tmp_path / "results").exists()
