"""The generate stage's plan: checkpoints from the trainer's LoRA files, prompts, per-image seeds
and file names, all known before any job runs (no torch, no diffusers here)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import trainer_outputs as make
from trainer_outputs import lora_file as dummy_lora

from ckpt_eval.config import validate_config
from ckpt_eval.errors import CkptEvalError
from ckpt_eval.generate.plan import (
    BASELINE,
    GenerateSettings,
    generation_plan,
    image_seed,
    lora_file,
    plan_images,
)
from ckpt_eval.inputs.steps import parse_position


def config(root: Path, layout: str, **generate) -> dict:
    return validate_config(
        {
            "run": "g",
            "real_images": "real",
            "samples": {"root": str(root), "layout": layout},
            "generate": {"base_model": "base", **generate},
        }
    )


def test_image_seed_is_the_documented_hash_and_independent_of_the_plans_size() -> None:
    assert image_seed(7, 2, 3) == int.from_bytes(
        hashlib.sha256(b"ckpt-eval:7:2:3").digest()[:8], "big"
    ) & (2**63 - 1)
    seeds = {image_seed(s, p, i) for s in range(3) for p in range(20) for i in range(20)}
    assert len(seeds) == 3 * 20 * 20  # base seeds 0 and 1 share no image
    small = plan_images(GenerateSettings("b", ("x", "y"), images_per_prompt=2))
    large = plan_images(GenerateSettings("b", ("x", "y", "z"), images_per_prompt=5))
    by_index = {(p.prompt_index, p.image_index): p.image_seed for p in large}
    for image in small:  # more prompts or images leave the existing seeds as they were
        assert by_index[(image.prompt_index, image.image_index)] == image.image_seed


def test_images_are_named_so_a_listing_sorts_them_by_prompt_then_image() -> None:
    settings = GenerateSettings("b", tuple(f"prompt {n}" for n in range(12)), images_per_prompt=3)
    planned = plan_images(settings)
    assert len(planned) == 36
    assert [p.file for p in planned] == sorted(p.file for p in planned)
    assert planned[0].file == "p000-i000.png" and planned[-1].file == "p011-i002.png"
    assert {p.prompt for p in planned if p.prompt_index == 5} == {"prompt 5"}
    wide = plan_images(GenerateSettings("b", ("a",), images_per_prompt=1500))
    assert wide[-1].file == "p0000-i1499.png"
    assert [p.file for p in wide] == sorted(p.file for p in wide)


def test_diffusers_checkpoints_plan_one_folder_of_images_each_plus_the_baseline(
    tmp_path: Path,
) -> None:
    make.diffusers(tmp_path / "out", steps=(500, 1000))
    plan = generation_plan(
        config(tmp_path / "out", "diffusers", prompts=["a dog", "a cat"], images_per_prompt=2),
        tmp_path / "results",
    )
    assert list(plan.loras) == [BASELINE, "step-000500", "step-001000"]
    assert plan.loras[BASELINE] is None
    assert plan.loras["step-000500"] == (
        tmp_path / "out" / "checkpoint-500" / "pytorch_lora_weights.safetensors"
    )
    assert parse_position(BASELINE).step == 0
    assert plan.root == tmp_path / "results" / "generated"
    samples = plan.samples()
    checkpoints = samples.checkpoints()
    assert list(checkpoints) == list(plan.loras)
    assert checkpoints["step-000500"] == [
        plan.root / "step-000500" / f"p00{p}-i00{i}.png" for p in range(2) for i in range(2)
    ]
    prompts = plan.prompts()["step-001000"]
    assert prompts == {
        "step-001000/p000-i000.png": "a dog",
        "step-001000/p000-i001.png": "a dog",
        "step-001000/p001-i000.png": "a cat",
        "step-001000/p001-i001.png": "a cat",
    }
    assert plan.record("step-000500") == plan.root / "step-000500" / "images.json"
    no_baseline = generation_plan(
        config(tmp_path / "out", "diffusers", prompts=["x"], baseline=False), tmp_path / "results"
    )
    assert list(no_baseline.loras) == ["step-000500", "step-001000"]


def test_kohya_checkpoints_without_samples_and_prompts_from_its_prompt_file(
    tmp_path: Path,
) -> None:
    tree = make.kohya(tmp_path / "train", steps=(), epochs=(1, 2), steps_per_epoch=150)
    shutil.rmtree(tmp_path / "train" / "sample", ignore_errors=True)
    (tmp_path / "prompts.txt").write_text(make.KOHYA_PROMPTS, encoding="utf-8")
    plan = generation_plan(
        config(tmp_path / "train", "kohya", prompts=str(tmp_path / "prompts.txt")),
        tmp_path / "results",
    )
    assert list(plan.loras) == [BASELINE, *tree.checkpoints]
    assert plan.loras["e000002-step-000300"].name == "dog-000002.safetensors"
    # sd-scripts' flags (--n, --d, ...) and `#` lines are not part of the prompt
    assert plan.settings.prompts == tuple(tree.prompts[i] for i in sorted(tree.prompts))


def test_kohya_prompts_default_to_the_trainers_prompt_file(tmp_path: Path) -> None:
    tree = make.kohya(tmp_path / "train", steps=(100, 200))
    plan = generation_plan(config(tmp_path / "train", "kohya"), tmp_path / "results")
    assert plan.prompt_source.endswith("sample/prompt.txt")
    assert plan.settings.prompts == tuple(tree.prompts[i] for i in sorted(tree.prompts))
    assert list(plan.loras) == [BASELINE, "step-000100", "step-000200"]


def test_kohya_folder_with_two_runs_and_no_samples_asks_which(tmp_path: Path) -> None:
    dummy_lora(tmp_path / "train" / "dog-000001.safetensors")
    dummy_lora(tmp_path / "train" / "cat-000001.safetensors")
    with pytest.raises(CkptEvalError, match="2 training runs: cat, dog"):
        generation_plan(config(tmp_path / "train", "kohya", prompts=["x"]), tmp_path / "results")
    plan = generation_plan(
        {**config(tmp_path / "train", "kohya", prompts=["x"])}
        | {"samples": {**config(tmp_path / "train", "kohya")["samples"], "training_run": "cat"}},
        tmp_path / "results",
    )
    assert [p.name for p in plan.loras.values() if p] == ["cat-000001.safetensors"]


def test_folder_of_lora_files_and_folders(tmp_path: Path) -> None:
    root = tmp_path / "loras"
    dummy_lora(root / "my-lora-000500.safetensors")
    dummy_lora(root / "step-250" / "pytorch_lora_weights.safetensors")
    dummy_lora(root / "final" / "adapter.safetensors")
    (root / "notes.txt").parent.mkdir(exist_ok=True)
    (root / "notes.txt").write_text("not a checkpoint")
    plan = generation_plan(config(root, "folders", prompts=["x"]), tmp_path / "results")
    assert list(plan.loras) == [BASELINE, "step-250", "my-lora-000500", "final"]
    assert plan.loras["final"] == root / "final" / "adapter.safetensors"


def test_plan_errors_say_what_to_do(tmp_path: Path) -> None:
    make.diffusers(tmp_path / "out", steps=(500,))
    with pytest.raises(CkptEvalError, match="generate.prompts is not set"):
        generation_plan(config(tmp_path / "out", "diffusers"), tmp_path / "results")
    with pytest.raises(CkptEvalError, match="empty one"):
        generation_plan(
            config(tmp_path / "out", "diffusers", prompts=["a dog", "  "]), tmp_path / "results"
        )
    with pytest.raises(CkptEvalError, match="was not found"):
        generation_plan(
            config(tmp_path / "out", "diffusers", prompts="missing.txt"), tmp_path / "results"
        )
    both = config(tmp_path / "out", "diffusers", prompts=["a"])
    both["prompts"] = "prompts.csv"
    with pytest.raises(CkptEvalError, match="both `prompts` and `generate:`"):
        generation_plan(both, tmp_path / "results")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CkptEvalError, match="no LoRA checkpoints were found"):
        generation_plan(config(tmp_path / "empty", "folders", prompts=["a"]), tmp_path / "results")
    pickle = tmp_path / "old.ckpt"
    pickle.write_bytes(b"x")
    with pytest.raises(CkptEvalError, match="not a .safetensors file"):
        lora_file(pickle)
    dummy_lora(tmp_path / "two" / "a.safetensors")
    dummy_lora(tmp_path / "two" / "b.safetensors")
    with pytest.raises(CkptEvalError, match="holds 2 .safetensors files"):
        lora_file(tmp_path / "two")


def test_schema_generate_section(tmp_path: Path) -> None:
    # the folders layout needs no `prompts` when the samples are generated
    filled = config(tmp_path, "folders", prompts=["a"])
    assert filled["generate"]["images_per_prompt"] == 8
    assert filled["generate"]["dtype"] == "auto"
    assert filled["generate"]["cpu_offload"] is False
    with pytest.raises(
        CkptEvalError, match="generate.base_model: .base_model. is a required property"
    ):
        validate_config({"run": "g", "real_images": "r", "samples": {"root": "s"}, "generate": {}})
    with pytest.raises(CkptEvalError, match="generate.dtype"):
        config(tmp_path, "folders", dtype="float64")
    with pytest.raises(CkptEvalError, match="generate.stpes"):
        config(tmp_path, "folders", stpes=3)
    with pytest.raises(CkptEvalError, match="prompts"):  # without generate: still required
        validate_config({"run": "g", "real_images": "r", "samples": {"root": "s"}})


def test_settings_round_trip_through_rule_params() -> None:
    settings = GenerateSettings("b", ("x", "y"), width=64, scheduler="EulerDiscreteScheduler")
    params = settings.as_params()
    assert params["prompts"] == ["x", "y"]
    assert GenerateSettings.from_params(params) == settings
