"""Rendering with diffusers on a tiny random pipeline (tests/diffusion_fixture.py): LoRAs change
the images and nothing else does, a LoRA is gone after its checkpoint, the baseline is the base
model's own output, reruns keep what is on disk, and failures name the checkpoint."""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusion_fixture import kohya_file, make_lora, make_tiny_pipeline
from PIL import Image

from ckpt_eval.config import validate_config
from ckpt_eval.errors import CkptEvalError
from ckpt_eval.generate.pipeline import generate
from ckpt_eval.generate.plan import (
    GenerateSettings,
    GenerationPlan,
    generation_plan,
    image_seed,
    plan_images,
)
from ckpt_eval.inputs.images import sha256_file

PROMPTS = ("a photo of a dog", "an oil painting of a mountain landscape")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    base = make_tiny_pipeline(root / "base")
    a = make_lora(base, root / "checkpoint-100", seed=1)
    return {
        "base": base,
        "a": a,
        "b": make_lora(base, root / "checkpoint-200", seed=2),
        "kohya_a": kohya_file(a, root / "kohya" / "dog-step00000100.safetensors"),
        # a LoRA of another base model (text width 32, not 16): its shapes do not fit
        "other": make_lora(
            make_tiny_pipeline(root / "other-base", cross_attention_dim=32),
            root / "other",
            seed=3,
        ),
    }


def settings(models: dict[str, Path], **changes) -> GenerateSettings:
    return GenerateSettings(
        **{
            "base_model": str(models["base"]),
            "prompts": PROMPTS,
            "images_per_prompt": 2,
            "steps": 2,
            **changes,
        }
    )


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def files(folder: Path) -> list[Path]:
    return sorted(folder.glob("p*-i*.png"))


@pytest.fixture(scope="module")
def rendered(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One process, one pipeline: the baseline after two LoRAs, and LoRA A twice around B."""
    root = tmp_path_factory.mktemp("rendered")
    generate(
        {"a": models["a"], "b": models["b"], "base": None, "a-again": models["a"]},
        settings(models),
        root,
        "cpu",
    )
    return root


def test_loras_change_the_images_and_the_same_lora_gives_the_same_images(
    rendered: Path,
) -> None:
    a, b, again = (files(rendered / name) for name in ("a", "b", "a-again"))
    assert len(a) == len(b) == len(again) == 4
    for image_a, image_b, image_again in zip(a, b, again, strict=True):
        assert not np.array_equal(pixels(image_a), pixels(image_b))
        # after B was loaded and unloaded, A renders exactly as before
        assert np.array_equal(pixels(image_a), pixels(image_again))
    # different seeds of one prompt give different images
    assert not np.array_equal(pixels(a[0]), pixels(a[1]))


def test_baseline_is_the_base_models_own_output(models: dict[str, Path], rendered: Path) -> None:
    """Rendered after two LoRAs were unloaded, equal to a fresh pipeline called directly."""
    from diffusers import AutoPipelineForText2Image

    pipe = AutoPipelineForText2Image.from_pretrained(models["base"], dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    for planned in plan_images(settings(models)):
        generator = torch.Generator("cpu").manual_seed(
            image_seed(0, planned.prompt_index, planned.image_index)
        )
        direct = pipe(
            planned.prompt, num_inference_steps=2, guidance_scale=7.5, generator=generator
        ).images[0]
        assert np.array_equal(np.asarray(direct), pixels(rendered / "base" / planned.file))
    lora = pixels(rendered / "a" / "p000-i000.png")
    assert not np.array_equal(lora, pixels(rendered / "base" / "p000-i000.png"))


def test_sidecar_and_png_text_carry_how_each_image_was_made(
    models: dict[str, Path], rendered: Path
) -> None:
    image = rendered / "b" / "p001-i000.png"
    sidecar = json.loads(image.with_suffix(".json").read_text())
    assert sidecar["checkpoint"] == "b"
    assert sidecar["prompt"] == PROMPTS[1]
    assert sidecar["negative_prompt"] is None
    assert (sidecar["prompt_index"], sidecar["image_index"]) == (1, 0)
    assert sidecar["seed"] == 0
    assert sidecar["image_seed"] == image_seed(0, 1, 0)
    assert sidecar["steps"] == 2
    assert sidecar["guidance_scale"] == 7.5
    assert sidecar["scheduler"] is None and sidecar["scheduler_class"] == "DDIMScheduler"
    assert sidecar["lora"] == str(models["b"])
    assert sidecar["lora_sha256"] == sha256_file(models["b"])
    assert sidecar["base_model"] == str(models["base"])
    assert sidecar["size"] == [32, 32]
    assert (sidecar["dtype"], sidecar["device"]) == ("float32", "cpu")
    assert sidecar["image_sha256"] == sha256_file(image)
    with Image.open(image) as png:
        text = {key: json.loads(value) for key, value in png.text.items()}
    assert text == {k: v for k, v in sidecar.items() if k != "image_sha256"}
    base = json.loads((rendered / "base" / "p000-i000.json").read_text())
    assert base["lora"] is None and base["lora_sha256"] is None
    record = json.loads((rendered / "b" / "images.json").read_text())
    assert [i["file"] for i in record["images"]] == [p.name for p in files(rendered / "b")]
    assert record["images"][2]["sha256"] == sidecar["image_sha256"]
    assert (record["rendered"], record["reused"]) == (4, 0)


def test_kohya_keys_give_the_same_images_as_the_diffusers_file(
    models: dict[str, Path], rendered: Path, tmp_path: Path
) -> None:
    generate({"k": models["kohya_a"]}, settings(models, images_per_prompt=1), tmp_path, "cpu")
    for image in files(tmp_path / "k"):
        assert np.array_equal(pixels(image), pixels(rendered / "a" / image.name))


def test_a_rerun_renders_only_what_is_missing_or_stale(
    models: dict[str, Path], rendered: Path, tmp_path: Path
) -> None:
    shutil.copytree(rendered / "a", tmp_path / "a")
    before = {p.name: p.read_bytes() for p in files(tmp_path / "a")}
    (tmp_path / "a" / "p001-i001.png").unlink()
    (tmp_path / "a" / "p000-i001.json").unlink()  # an image without its sidecar
    (tmp_path / "a" / "p001-i000.png").write_bytes(b"half a png")  # does not match its sidecar
    record = generate({"a": models["a"]}, settings(models), tmp_path, "cpu")["a"]
    assert (record["rendered"], record["reused"]) == (3, 1)
    assert {p.name: p.read_bytes() for p in files(tmp_path / "a")} == before  # same bytes
    record = generate({"a": models["a"]}, settings(models), tmp_path, "cpu")["a"]
    assert (record["rendered"], record["reused"]) == (0, 4)
    # another setting that changes pixels: everything again
    record = generate({"a": models["a"]}, settings(models, steps=3), tmp_path, "cpu")["a"]
    assert (record["rendered"], record["reused"]) == (4, 0)


def kohya_plan(models: dict[str, Path], prompt_file: Path, tmp_path: Path) -> GenerationPlan:
    """The plan of a kohya output folder whose --sample_prompts file states each prompt's
    settings (generate.prompts null: the trainer's own)."""
    config = validate_config(
        {
            "run": "k",
            "real_images": "real",
            "samples": {
                "root": str(models["kohya_a"].parent),
                "layout": "kohya",
                "prompt_file": str(prompt_file),
            },
            "generate": {"base_model": str(models["base"]), "images_per_prompt": 1},
        }
    )
    return generation_plan(config, tmp_path)


KOHYA_FLAGS = (
    "a photo of a dog --n blurry --w 64 --h 64 --d 42 --s 2 --l 5\n"
    "an oil painting of a mountain landscape --w 64 --h 64 --d {seed} --s 2\n"
)


def test_kohya_per_prompt_settings_render_the_same_images_twice(
    models: dict[str, Path], tmp_path: Path
) -> None:
    """sd-scripts' prompt flags reach the pipeline: each prompt at its own size, steps, guidance,
    negative prompt and seed (--d), and two renders of the plan give the same bytes. Another
    --d gives another image, and only that prompt's image is rendered again."""
    prompt_file = tmp_path / "prompt.txt"
    prompt_file.write_text(KOHYA_FLAGS.format(seed=7), encoding="utf-8")
    plan = kohya_plan(models, prompt_file, tmp_path)
    lora = {"step-000100": plan.loras["step-000100"]}
    once = generate(lora, plan.settings, tmp_path / "once", "cpu")["step-000100"]
    twice = generate(lora, plan.settings, tmp_path / "twice", "cpu")["step-000100"]
    assert once["rendered"] == twice["rendered"] == 2
    first, second = files(tmp_path / "once" / "step-000100")
    for image in (first, second):
        again = tmp_path / "twice" / "step-000100" / image.name
        assert again.read_bytes() == image.read_bytes()
        assert np.array_equal(pixels(again), pixels(image))
    dog = json.loads(first.with_suffix(".json").read_text())
    assert (dog["seed"], dog["image_seed"], dog["negative_prompt"]) == (42, 42, "blurry")
    assert (dog["steps"], dog["guidance_scale"], dog["size"]) == (2, 5.0, [64, 64])
    assert dog["trainer_settings"] == [
        "seed", "negative_prompt", "width", "height", "steps", "guidance_scale"
    ]  # fmt: skip
    landscape = json.loads(second.with_suffix(".json").read_text())
    assert (landscape["image_seed"], landscape["guidance_scale"]) == (7, 7.5)  # the section's
    record = json.loads((tmp_path / "once" / "step-000100" / "images.json").read_text())
    assert [i["image_seed"] for i in record["images"]] == [42, 7]
    assert record["images"][1]["trainer_settings"] == {
        "seed": 7,
        "width": 64,
        "height": 64,
        "steps": 2,
    }
    # another --d for the second prompt: its image changes, the first is kept as it was
    before = {p.name: p.read_bytes() for p in (first, second)}
    prompt_file.write_text(KOHYA_FLAGS.format(seed=8), encoding="utf-8")
    changed = kohya_plan(models, prompt_file, tmp_path)
    record = generate(lora, changed.settings, tmp_path / "once", "cpu")["step-000100"]
    assert (record["rendered"], record["reused"]) == (1, 1)
    assert first.read_bytes() == before[first.name]
    assert not np.array_equal(
        pixels(second), np.asarray(Image.open(io.BytesIO(before[second.name])))
    )
    assert json.loads(second.with_suffix(".json").read_text())["image_seed"] == 8


def test_a_lora_scale_is_the_adapters_weight(models: dict[str, Path], tmp_path: Path) -> None:
    """Scale 0 renders the base model's images, 0.5 images between none and the full LoRA."""
    loras = {"zero": models["a"], "half": models["a"], "full": models["a"], "base": None}
    for name, scale in (("zero", 0.0), ("half", 0.5), ("full", 1.0), ("base", 1.0)):
        generate(
            {name: loras[name]}, settings(models, lora_scale=scale, images_per_prompt=1),
            tmp_path, "cpu",
        )  # fmt: skip
    for image in files(tmp_path / "base"):
        zero, half, full, base = (
            pixels(tmp_path / n / image.name).astype(float)
            for n in ("zero", "half", "full", "base")
        )
        assert np.array_equal(zero, base)
        assert not np.array_equal(half, base) and not np.array_equal(half, full)
        sidecar = json.loads((tmp_path / "half" / image.name).with_suffix(".json").read_text())
        assert sidecar["lora_scale"] == 0.5


def test_scheduler_by_name_and_one_that_does_not_fit(
    models: dict[str, Path], rendered: Path, tmp_path: Path
) -> None:
    euler = settings(models, images_per_prompt=1, scheduler="EulerDiscreteScheduler")
    generate({"base": None}, euler, tmp_path, "cpu")
    sidecar = json.loads((tmp_path / "base" / "p000-i000.json").read_text())
    assert sidecar["scheduler"] == sidecar["scheduler_class"] == "EulerDiscreteScheduler"
    assert not np.array_equal(
        pixels(tmp_path / "base" / "p000-i000.png"), pixels(rendered / "base" / "p000-i000.png")
    )
    with pytest.raises(CkptEvalError, match="does not fit this base model") as error:
        generate({"base": None}, replace(euler, scheduler="NoSuchScheduler"), tmp_path, "cpu")
    assert "DDIMScheduler" in error.value.fix


def test_missing_base_model_names_the_checkpoint(models: dict[str, Path], tmp_path: Path) -> None:
    missing = replace(settings(models), base_model=str(tmp_path / "no-such-model"))
    with pytest.raises(CkptEvalError, match="to render checkpoint step-000100") as error:
        generate({"step-000100": models["a"]}, missing, tmp_path / "out", "cpu")
    assert "no-such-model" in error.value.what
    assert "save_pretrained" in error.value.fix


@pytest.mark.parametrize("lora", ["other", "junk"])
def test_a_lora_that_does_not_fit_names_the_checkpoint(
    models: dict[str, Path], tmp_path: Path, lora: str
) -> None:
    if lora == "junk":  # safetensors, but no LoRA weights of this model in it
        from safetensors.torch import save_file

        path = tmp_path / "junk.safetensors"
        save_file({"text_model.other.weight": torch.zeros(2, 2)}, str(path))
    else:
        path = models[lora]
    with pytest.raises(CkptEvalError, match="LoRA of checkpoint step-000300 does not fit") as err:
        generate({"step-000300": path}, settings(models), tmp_path / "out", "cpu")
    assert err.value.path == str(path)
    assert not list((tmp_path / "out" / "step-000300").glob("*.png"))


@pytest.mark.parametrize(
    "error",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB)"),
    ],
)
def test_out_of_memory_names_the_checkpoint_and_the_memory_switches(
    models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    from diffusers import StableDiffusionPipeline

    real_call = StableDiffusionPipeline.__call__
    calls = []

    def call_then_fail(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise error
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(StableDiffusionPipeline, "__call__", call_then_fail)
    with pytest.raises(CkptEvalError, match="Out of memory rendering checkpoint step-000100") as e:
        generate({"step-000100": models["a"]}, settings(models), tmp_path, "cpu")
    assert "p000-i001.png" in e.value.what and "1 image(s) rendered before it" in e.value.what
    for switch in ("attention_slicing", "vae_tiling", "cpu_offload"):
        assert f"generate.{switch}" in e.value.fix
    assert [p.name for p in files(tmp_path / "step-000100")] == ["p000-i000.png"]  # kept
    assert not (tmp_path / "step-000100" / "images.json").exists()
