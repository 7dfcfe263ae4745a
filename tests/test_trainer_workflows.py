"""Each trainer's output folder, as `init` configures it, through the workflow's organize and
prompts stages: no file moved by hand, every sample paired with the prompt it was made from."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import trainer_outputs as make
import yaml
from conftest import snakemake
from trainer_outputs import tiny_image

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
    return yaml.safe_load((root / "c.yaml").read_text())


@pytest.mark.parametrize("trainer", list(TREES))
def test_trainer_output_through_organize_and_prompts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trainer: str
) -> None:
    tree = TREES[trainer](tmp_path)
    config = initialised(tmp_path, tree.root, monkeypatch)
    out = f"results/{config['run']}"
    targets = [f"{out}/prompts/{name}.json" for name in tree.checkpoints]
    snakemake(tmp_path, tmp_path / "c.yaml", *targets)
    for name in tree.checkpoints:
        manifest = json.loads(
            (tmp_path / out / "manifests" / f"checkpoint_{name}.json").read_text()
        )
        pairs = json.loads((tmp_path / out / "prompts" / f"{name}.json").read_text())
        assert len(pairs["pairs"]) == len(manifest["images"]) > 0
        assert {p["prompt"] for p in pairs["pairs"]} == set(tree.prompts.values())
        assert not any(p["fallback"] for p in pairs["pairs"])
        for image in manifest["images"]:  # the files of this checkpoint only, where they lie
            assert (tree.root / image["file"]).is_file()
    assert not (tmp_path / out / "features").exists()  # only what was asked for ran


def test_kohya_prompt_is_paired_with_its_own_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make.kohya(tmp_path / "train", steps=(100,))
    config = initialised(tmp_path, tmp_path / "train", monkeypatch)
    target = f"results/{config['run']}/prompts/step-000100.json"
    snakemake(tmp_path, tmp_path / "c.yaml", target)
    pairs = json.loads((tmp_path / target).read_text())["pairs"]
    by_file = {p["file"]: p["prompt"] for p in pairs}
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
