"""Tiny trainer output folders, built from each trainer's own naming rules (cited per builder).

Each builder writes a few 16x16 images where and as the trainer writes its samples, plus the
files its prompts come from, and returns what a test needs to check the reader against.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image
from safetensors.numpy import save_file


def tiny_image(path: Path, seed: int, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=fmt or ("JPEG" if path.suffix == ".jpg" else "PNG"))
    return path


def lora_file(path: Path, **metadata: str) -> Path:
    """A real (one-tensor) safetensors file with sd-scripts-style `ss_*` metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"lora_down.weight": np.zeros((1, 1), np.float32)}, str(path), metadata=metadata)
    return path


@dataclass
class Tree:
    root: Path
    prompts: dict[int, str]  # prompt index -> the prompt the trainer sampled with
    checkpoints: list[str]  # checkpoint names the reader should give, in training order


# kohya-ss sd-scripts, library/train_util.py: sample_images_common reads --sample_prompts
# (.txt lines, `#` comments and blank lines dropped before enumerating; `--d` is the seed) and
# sample_image_inference saves
# f"{output_name + '_'}{num_suffix}_{i:02d}_{ts_str}{seed_suffix}.png" into <output_dir>/sample,
# num_suffix = f"e{epoch:06d}" at an epoch's end, else f"{steps:06d}";
# ts_str = time.strftime("%Y%m%d%H%M%S"). Checkpoint files: EPOCH_FILE_NAME "{}-{:06d}",
# STEP_FILE_NAME "{}-step{:08d}"; train_network.py writes ss_steps/ss_epoch into the metadata.
KOHYA_PROMPTS = """# sample prompts for sks dog
a photo of sks dog --n blurry, lowres --w 512 --h 512 --d 42 --s 28 --l 7.5

   \t
a watercolor painting of sks dog --d 7
  # indented: sd-scripts only skips lines whose first character is #
"""


def kohya(
    root: Path,
    output_name: str | None = "dog",
    steps: tuple[int, ...] = (100, 200),
    epochs: tuple[int, ...] = (),
    steps_per_epoch: int | None = None,
    prompt_file: bool = True,
    stamp: str = "20240501120000",
) -> Tree:
    sample = root / "sample"
    if prompt_file:
        sample.mkdir(parents=True, exist_ok=True)
        (sample / "prompt.txt").write_text(KOHYA_PROMPTS, encoding="utf-8")
    prefix = f"{output_name}_" if output_name else ""
    seeds = {0: 42, 1: 7, 2: None}
    names = [(f"{step:06d}", step) for step in steps] + [(f"e{e:06d}", e) for e in epochs]
    for n, (num, _) in enumerate(names):
        for index, seed in seeds.items():
            suffix = "" if seed is None else f"_{seed}"
            tiny_image(sample / f"{prefix}{num}_{index:02d}_{stamp}{suffix}.png", 10 * n + index)
    model = output_name or "epoch"
    for epoch in epochs:
        meta = {"ss_epoch": str(epoch)}
        if steps_per_epoch:
            meta["ss_steps"] = str(epoch * steps_per_epoch)
        lora_file(root / f"{model}-{epoch:06d}.safetensors", **meta)
    for step in steps:
        lora_file(root / f"{output_name or 'at'}-step{step:08d}.safetensors", ss_steps=str(step))
    prompts = {
        0: "a photo of sks dog",
        1: "a watercolor painting of sks dog",
        2: "# indented: sd-scripts only skips lines whose first character is #",
    }
    checkpoints = [f"step-{s:06d}" for s in steps] + [
        f"e{e:06d}-step-{e * steps_per_epoch:06d}" if steps_per_epoch else f"e{e:06d}"
        for e in epochs
    ]
    return Tree(root, prompts, checkpoints)


# ostris ai-toolkit, jobs/process/BaseSDTrainProcess.py `sample`:
# filename = f"[time]_{step_num}_[count].{ext}" with step_num = f"_{str(step).zfill(9)}", filled in
# by toolkit/config_modules.py GenerateImageConfig._get_path_no_ext ([time] = int(time*1000),
# [count] = the prompt's place in the generated list, zfill(len(str(0))) = unpadded); the seed is
# sample.seed (+ i with walk_seed), a sample's own seed replacing it. Checkpoints
# f"{name}{step_num}.safetensors" beside samples/ and the job's config.yaml.
def ai_toolkit(
    training_folder: Path, name: str = "dog_lora", steps: tuple[int, ...] = (250, 500)
) -> Tree:
    root = training_folder / name
    config = {
        "job": "extension",
        "config": {
            "name": name,
            "process": [
                {
                    "type": "sd_trainer",
                    "training_folder": str(training_folder),
                    "trigger_word": "p3rs0n",
                    "sample": {
                        "sampler": "flowmatch",
                        "sample_every": 250,
                        "seed": 42,
                        "walk_seed": True,
                        "samples": [
                            {"prompt": "[trigger] holding a sign that says hello --w 512"},
                            {"prompt": "a portrait of [name] in the snow", "seed": 7},
                            {"prompt": "[trigger] riding a bike"},
                        ],
                    },
                }
            ],
        },
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    for n, step in enumerate(steps):
        for count in range(3):
            ms = 1714564800000 + 1000 * n + count
            tiny_image(root / "samples" / f"{ms}__{step:09d}_{count}.jpg", 100 + 10 * n + count)
        lora_file(root / f"{name}_{step:09d}.safetensors")
    prompts = {
        0: "p3rs0n holding a sign that says hello",
        1: "a portrait of p3rs0n in the snow",
        2: "p3rs0n riding a bike",
    }
    return Tree(root, prompts, [f"step-{s:06d}" for s in steps])


# SimpleTuner, simpletuner/helpers/training/validation.py `save_images`:
# f"step_{global_step}_{validation_shortname}_{validation_img_idx}_{res_label}.png"
# in <output_dir>/validation_images (older releases: f"step_{step}_{shortname}_{resolution}.png");
# shortnames are the keys of --user_prompt_library, and `validation` for --validation_prompt.
def simpletuner(project: Path, steps: tuple[int, ...] = (100, 200)) -> Tree:
    root = project / "output" / "models"
    config_dir = project / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    library = {
        "sks_portrait": "a studio portrait of sks woman",
        "sks_beach": {"prompt": "sks woman walking on a beach"},
    }
    (config_dir / "user_prompt_library.json").write_text(json.dumps(library), encoding="utf-8")
    settings = {
        "--output_dir": "output/models",
        "--user_prompt_library": "config/user_prompt_library.json",
        "--validation_prompt": "a photo of sks woman",
    }
    (config_dir / "config.json").write_text(json.dumps(settings), encoding="utf-8")
    shortnames = ["sks_portrait", "sks_beach", "validation"]
    for n, step in enumerate(steps):
        for k, short in enumerate(shortnames):
            name = f"step_{step}_{short}_0_1024x1024.png"
            tiny_image(root / "validation_images" / name, 200 + 10 * n + k)
        (root / f"checkpoint-{step}").mkdir(parents=True)
    prompts = {
        0: "a studio portrait of sks woman",
        1: "sks woman walking on a beach",
        2: "a photo of sks woman",
    }
    return Tree(root, prompts, [f"step-{s:06d}" for s in steps])


# OneTrainer, modules/trainer/GenericTrainer.py `__sample_loop`: sample_dir =
# workspace/samples/f"{str(i)} - {safe_prompt}{folder_postfix}" (i enumerates all definitions;
# safe_prompt = modules/util/path_util.py safe_filename: alnum and " ._-#", cut to 32) and
# sample_path = f"{save_filename_prefix}{get_string_timestamp()}-training-sample-"
# f"{train_progress.filename_string()}" (modules/util/time_util.py "%Y-%m-%d_%H-%M-%S",
# modules/util/TrainProgress.py f"{global_step}-{epoch}-{epoch_step}"); `__save_config_to_workspace`
# writes the config (with `samples`) to workspace/config/<timestamp>.json.
ONETRAINER_SAMPLES = [
    {"enabled": True, "prompt": "a photo of sks cat, sitting on a sofa", "seed": 42},
    {"enabled": False, "prompt": "disabled: never sampled", "seed": 1},
    {
        "enabled": True,
        "prompt": "a very detailed oil painting of sks cat wearing a tiny hat",
        "seed": 3,
        "random_seed": True,
    },
]


def onetrainer(
    workspace: Path, steps: tuple[tuple[int, int, int], ...] = ((50, 0, 50), (100, 1, 25))
) -> Tree:
    (workspace / "config").mkdir(parents=True, exist_ok=True)
    snapshot = {"workspace_dir": str(workspace), "samples": ONETRAINER_SAMPLES}
    (workspace / "config" / "2024-05-01_10-00-00.json").write_text(json.dumps(snapshot))
    folders = {
        0: "0 - a photo of sks cat sitting on a",
        2: "2 - a very detailed oil painting of",
    }
    for n, (step, epoch, epoch_step) in enumerate(steps):
        stamp = f"2024-05-01_10-{n:02d}-00"
        for index, folder in folders.items():
            name = f"{stamp}-training-sample-{step}-{epoch}-{epoch_step}.png"
            tiny_image(workspace / "samples" / folder / name, 300 + 10 * n + index)
        lora_file(workspace / "save" / f"{stamp}-save-{step}-{epoch}-{epoch_step}.safetensors")
    prompts = {0: ONETRAINER_SAMPLES[0]["prompt"], 2: ONETRAINER_SAMPLES[2]["prompt"]}
    return Tree(workspace, prompts, [f"step-{s[0]:06d}" for s in steps])


# diffusers, examples/text_to_image/train_text_to_image_lora.py: accelerator.save_state(
# os.path.join(args.output_dir, f"checkpoint-{global_step}")); validation images go to trackers.
def diffusers(root: Path, steps: tuple[int, ...] = (500, 1000)) -> Tree:
    for step in steps:
        lora_file(root / f"checkpoint-{step}" / "pytorch_lora_weights.safetensors")
    return Tree(root, {}, [f"step-{s:06d}" for s in steps])
