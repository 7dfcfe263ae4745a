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


# --- LoRA strength sweep -------------------------------------------------------------------


def test_a_strength_sweep_plans_every_checkpoint_at_every_scale(tmp_path: Path) -> None:
    """Candidates `<checkpoint>@<scale>` in step, then scale order; the baseline once; each job
    at its own scale; the same images (names, prompts, seeds) for every candidate."""
    make.diffusers(tmp_path / "out", steps=(500, 1000))
    plan = generation_plan(
        config(tmp_path / "out", "diffusers", prompts=["a dog"], lora_scales=[1.0, 0.6, 0.8]),
        tmp_path / "results",
    )
    names = [f"step-{s:06d}@{x}" for s in (500, 1000) for x in ("0.6", "0.8", "1.0")]
    assert list(plan.loras) == [BASELINE, *names]
    assert plan.scales == {BASELINE: None} | dict(zip(names, [0.6, 0.8, 1.0] * 2, strict=True))
    assert plan.loras["step-000500@0.6"] == plan.loras["step-000500@1.0"]
    assert [parse_position(n).step for n in names] == [500] * 3 + [1000] * 3
    assert sorted(names, key=lambda n: parse_position(n).sort_key) == names
    assert plan.job_params("step-000500@0.8")["lora_scale"] == 0.8
    assert plan.job_params(BASELINE)["lora_scale"] == 1.0
    seeds = plan.samples().by_checkpoint()
    assert {tuple(s.seed for s in group) for group in seeds.values()} == {
        tuple(p.image_seed for p in plan.images)
    }
    # adding a scale leaves the other jobs' params as they were: it adds jobs, reruns none
    wider = generation_plan(
        config(tmp_path / "out", "diffusers", prompts=["a dog"], lora_scales=[0.6, 0.8, 1.0, 1.2]),
        tmp_path / "results",
    )
    assert all(wider.job_params(n) == plan.job_params(n) for n in plan.loras)
    assert "step-001000@1.2" in wider.loras


def test_without_a_sweep_the_plan_and_its_job_params_are_as_before(tmp_path: Path) -> None:
    """The default (no lora_scales) keeps the names and the generate jobs' params it had
    before the sweep and the trainer settings existed, so existing runs rerun nothing."""
    make.diffusers(tmp_path / "out", steps=(500,))
    plan = generation_plan(
        config(tmp_path / "out", "diffusers", prompts=["a dog"], lora_scale=0.7),
        tmp_path / "results",
    )
    assert list(plan.loras) == [BASELINE, "step-000500"]
    assert sorted(plan.job_params("step-000500")) == sorted(
        [
            "base_model", "prompts", "pipeline", "negative_prompt", "seed",
            "images_per_prompt", "steps", "guidance_scale", "width", "height", "scheduler",
            "dtype", "lora_scale", "baseline", "attention_slicing", "vae_tiling", "cpu_offload",
        ]
    )  # fmt: skip
    assert plan.job_params("step-000500")["lora_scale"] == 0.7
    assert [p.image_seed for p in plan.images] == [image_seed(0, 0, i) for i in range(8)]


def test_sweep_errors_say_what_to_do(tmp_path: Path) -> None:
    make.diffusers(tmp_path / "out", steps=(500,))
    with pytest.raises(CkptEvalError, match="lora_scale and generate.lora_scales are both set"):
        generation_plan(
            config(tmp_path / "out", "diffusers", prompts=["a"], lora_scale=0.5, lora_scales=[1]),
            tmp_path / "results",
        )
    with pytest.raises(CkptEvalError, match="at most 4 decimals"):
        generation_plan(
            config(tmp_path / "out", "diffusers", prompts=["a"], lora_scales=[0.12345]),
            tmp_path / "results",
        )
    with pytest.raises(CkptEvalError, match="generate.lora_scales"):  # the schema: distinct
        config(tmp_path / "out", "diffusers", lora_scales=[0.5, 0.5])
    with pytest.raises(CkptEvalError, match="generate.lora_scales"):
        config(tmp_path / "out", "diffusers", lora_scales=[-0.5])


# --- the trainer's own sample settings -----------------------------------------------------


def test_kohya_prompt_flags_become_each_prompts_settings(tmp_path: Path) -> None:
    """sd-scripts' `--n --w --h --d --s --l` (train_util.line_to_prompt_dict) win over the
    section for their prompt; what a prompt does not state comes from the section."""
    make.kohya(tmp_path / "train", steps=(100,))
    plan = generation_plan(
        config(tmp_path / "train", "kohya", images_per_prompt=2, steps=20, width=256),
        tmp_path / "results",
    )
    first, first_again, second, _, third, _ = plan.images
    # a photo of sks dog --n blurry, lowres --w 512 --h 512 --d 42 --s 28 --l 7.5
    assert (first.negative_prompt, first.width, first.height) == ("blurry, lowres", 512, 512)
    assert (first.seed, first.steps, first.guidance_scale) == (42, 28, 7.5)
    assert first.image_seed == 42  # image 0 starts from the trainer's seed itself
    assert first_again.image_seed == image_seed(42, 0, 1)
    assert first.stated == ("seed", "negative_prompt", "width", "height", "steps", "guidance_scale")
    # a watercolor painting of sks dog --d 7: only the seed is its own
    assert (second.seed, second.image_seed, second.stated) == (7, 7, ("seed",))
    assert (second.negative_prompt, second.width, second.steps) == (None, 256, 20)
    # the indented `#` line is a prompt without flags: the section's seed hash
    assert (third.stated, third.image_seed) == ((), image_seed(0, 2, 0))
    # the sample images the layout reads pair by the same seeds
    assert plan.settings.per_prompt[0]["seed"] == 42
    # trainer_settings: false renders every prompt with the section's settings
    plain = generation_plan(
        config(tmp_path / "train", "kohya", trainer_settings=False), tmp_path / "results"
    )
    assert plain.settings.per_prompt == ()
    assert {(p.width, p.steps, p.stated) for p in plain.images} == {(None, 30, ())}


def test_kohya_flag_syntax_as_sd_scripts_reads_it(tmp_path: Path) -> None:
    from ckpt_eval.inputs.layouts.kohya import read_prompt_list

    prompts = tmp_path / "p.txt"
    prompts.write_text(
        "a cat --W 250 --h 30 --S 5000 --l 1.2.3 --N ugly --d 9\n"  # case-insensitive
        "d 5 first part is tested too\n",
        encoding="utf-8",
    )
    a, b = read_prompt_list(prompts)
    # width to a multiple of 8, height at least 64, steps clamped to 1000, a bad --l ignored
    assert (a.width, a.height, a.steps, a.guidance_scale) == (248, 64, 1000, None)
    assert (a.negative_prompt, a.seed, a.prompt) == ("ugly", 9, "a cat")
    assert (b.seed, b.prompt) == (5, "d 5 first part is tested too")
    toml = tmp_path / "p.toml"
    toml.write_text(
        '[prompt]\nwidth = 640\nscale = 5.0\n[[prompt.subset]]\nprompt = "a dog"\nseed = 3\n'
        'sample_steps = 12\nnegative_prompt = "bad"\n',
        encoding="utf-8",
    )
    (c,) = read_prompt_list(toml)
    assert c.stated() == {
        "seed": 3, "negative_prompt": "bad", "width": 640, "steps": 12, "guidance_scale": 5.0
    }  # fmt: skip
    # sd-scripts clamps --s of a text line only; an entry's sample_steps is used as it is
    toml.write_text('[[prompt.subset]]\nprompt = "a dog"\nsample_steps = 2000\n')
    assert read_prompt_list(toml)[0].steps == 2000


def test_ai_toolkit_sample_block_becomes_each_prompts_settings(tmp_path: Path) -> None:
    import yaml

    tree = make.ai_toolkit(tmp_path, steps=(250,))
    job = yaml.safe_load((tree.root / "config.yaml").read_text())
    sample = job["config"]["process"][0]["sample"]
    sample.update(width=768, height=512, neg="lowres", guidance_scale=4, sample_steps=25)
    sample["samples"][1].update(width=1024, sample_steps=10)
    sample["samples"][2]["prompt"] += " --n blurry --cfg 3.5 --d 99"
    (tree.root / "config.yaml").write_text(yaml.safe_dump(job))
    plan = generation_plan(config(tree.root, "ai-toolkit", images_per_prompt=1), tmp_path / "r")
    assert plan.settings.prompts == tuple(tree.prompts[i] for i in range(3))
    one, two, three = plan.images
    # seed 42 walked by index, sample 1's own 7; the block's size --w 512 of prompt 0 wins
    assert (one.seed, one.width, one.height, one.negative_prompt) == (42, 512, 512, "lowres")
    assert (one.guidance_scale, one.steps) == (4.0, 25)
    assert (two.seed, two.width, two.steps) == (7, 1024, 10)
    assert (three.seed, three.negative_prompt, three.guidance_scale) == (99, "blurry", 3.5)
    assert [p.image_seed for p in plan.images] == [42, 7, 99]


def test_simpletuner_validation_settings_become_each_prompts_settings(tmp_path: Path) -> None:
    import json

    tree = make.simpletuner(tmp_path, steps=(100,))
    dummy_lora(tree.root / "checkpoint-100" / "pytorch_lora_weights.safetensors")
    config_file = tmp_path / "config" / "config.json"
    settings = json.loads(config_file.read_text())
    settings.update(
        {
            "--validation_seed": 1234,
            "--validation_guidance": 4.5,
            "--validation_num_inference_steps": 18,
            "--validation_resolution": "768x512,1024",
            "--validation_negative_prompt": "blurry",
        }
    )
    config_file.write_text(json.dumps(settings))
    plan = generation_plan(config(tree.root, "simpletuner", images_per_prompt=1), tmp_path / "r")
    assert plan.settings.prompts == tuple(tree.prompts[i] for i in range(3))
    assert {
        (p.seed, p.image_seed, p.guidance_scale, p.steps, p.width, p.height, p.negative_prompt)
        for p in plan.images
    } == {(1234, 1234, 4.5, 18, 768, 512, "blurry")}
    # validation_randomize: no seed of its own; without validation_seed: `seed`, else 0
    settings.update({"--validation_randomize": True})
    config_file.write_text(json.dumps(settings))
    plan = generation_plan(config(tree.root, "simpletuner", images_per_prompt=1), tmp_path / "r")
    assert {"seed" in p.stated for p in plan.images} == {False}
    del settings["--validation_randomize"], settings["--validation_seed"]
    config_file.write_text(json.dumps({**settings, "--seed": 5}))
    plan = generation_plan(config(tree.root, "simpletuner", images_per_prompt=1), tmp_path / "r")
    assert {p.image_seed for p in plan.images} == {5}


def test_trainer_settings_that_cannot_be_rendered_stop_naming_the_prompt(tmp_path: Path) -> None:
    make.diffusers(tmp_path / "out", steps=(500,))
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a dog --d 99999999999999999999999\n", encoding="utf-8")
    with pytest.raises(CkptEvalError, match="'a dog' has seed .* outside"):
        generation_plan(config(tmp_path / "out", "diffusers", prompts=str(prompts)), tmp_path)
    tree = make.simpletuner(tmp_path / "st", steps=(100,))
    dummy_lora(tree.root / "checkpoint-100" / "pytorch_lora_weights.safetensors")
    (tmp_path / "st" / "config" / "config.json").write_text(
        '{"--validation_prompt": "a cat", "--validation_resolution": "1001x512"}'
    )
    with pytest.raises(CkptEvalError, match="'a cat' asks for width 1001"):
        generation_plan(config(tree.root, "simpletuner"), tmp_path / "r")


def test_a_lora_named_like_a_sweep_candidate_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "loras"
    dummy_lora(root / "my-lora@0.5.safetensors")
    with pytest.raises(CkptEvalError, match=r"'my-lora@0\.5' is named like a candidate"):
        generation_plan(config(root, "folders", prompts=["x"]), tmp_path / "results")
    (root / "my-lora@0.5.safetensors").rename(root / "my-lora-0.5.safetensors")
    plan = generation_plan(config(root, "folders", prompts=["x"]), tmp_path / "results")
    assert list(plan.loras) == [BASELINE, "my-lora-0.5"]


def test_ai_toolkit_setting_that_is_no_number_is_named_where_it_is(tmp_path: Path) -> None:
    import yaml

    tree = make.ai_toolkit(tmp_path, steps=(250,))
    job_file = tree.root / "config.yaml"
    job = yaml.safe_load(job_file.read_text())
    sample = job["config"]["process"][0]["sample"]
    for section, name, where in [
        (sample["samples"][1], "width", "sample.samples[1].width"),
        (sample["samples"][2], "seed", "sample.samples[2].seed"),
        (sample, "seed", "sample.seed"),
    ]:
        good = section[name] if name in section else None
        section[name] = "big"
        job_file.write_text(yaml.safe_dump(job))
        with pytest.raises(CkptEvalError) as caught:
            generation_plan(config(tree.root, "ai-toolkit"), tmp_path / "r")
        assert f"{where} = 'big' is not a number" in str(caught.value)
        assert f"write {where} as a number" in str(caught.value)
        if good is None:  # the fix: remove it (or write a number)
            del section[name]
        else:
            section[name] = good
    job_file.write_text(yaml.safe_dump(job))
    assert generation_plan(config(tree.root, "ai-toolkit"), tmp_path / "r").images
