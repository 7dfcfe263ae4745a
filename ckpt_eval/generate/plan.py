"""Plan the generate stage: which checkpoints, which prompts, which seed for which image.

With a `generate:` section every checkpoint renders the same prompts with the same per-image
seeds, so that checkpoint A's image k and checkpoint B's image k differ only by the LoRA (which
is what makes the paired CLIP comparison meaningful). Everything here is known before any job
runs (the workflow plans the organize jobs from it), and nothing here imports torch or
diffusers, so planning stays fast; the rendering itself is in `ckpt_eval.generate.pipeline`.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.inputs.layouts import options_from_config, read_layout, sample_prompts
from ckpt_eval.inputs.layouts.base import (
    STATED,
    Found,
    Sample,
    SampleSettings,
    checkpoint_order,
)
from ckpt_eval.inputs.layouts.kohya import read_prompt_list
from ckpt_eval.inputs.steps import BASELINE, candidate_name, check_plain_names, scale_text

# The file a diffusers training script writes into each checkpoint-<step>/ folder.
DIFFUSERS_LORA = "pytorch_lora_weights.safetensors"
RECORD = "images.json"
# torch.Generator.manual_seed takes seeds below 2**64
MAX_SEED = 2**64 - 1


@dataclass(frozen=True)
class GenerateSettings:
    """The `generate:` section, validated: what every checkpoint is rendered with."""

    base_model: str
    prompts: tuple[str, ...]
    pipeline: str = "auto"
    negative_prompt: str | None = None
    seed: int = 0
    images_per_prompt: int = 8
    steps: int = 30
    guidance_scale: float = 7.5
    width: int | None = None
    height: int | None = None
    scheduler: str | None = None
    dtype: str = "auto"
    lora_scale: float = 1.0
    lora_scales: tuple[float, ...] | None = None
    trainer_settings: bool = True
    baseline: bool = True
    attention_slicing: bool = False
    vae_tiling: bool = False
    cpu_offload: bool = False
    # per prompt, the settings the trainer's prompt file states for it (empty: none stated)
    per_prompt: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> GenerateSettings:
        """Back from the rule's params (Snakemake hands lists where tuples were)."""
        return cls(
            **{
                **params,
                "prompts": tuple(params["prompts"]),
                "per_prompt": tuple(dict(p) for p in params.get("per_prompt", ())),
            }
        )

    def as_params(self) -> dict[str, Any]:
        """As one generate job's params: a change of any of them reruns that job (which then
        renders only the images whose settings changed, see `sidecar_matches`).

        Left out: `lora_scales` (each candidate's job has its own `lora_scale`, so adding a
        scale adds jobs and reruns none), `trainer_settings` (its effect is `per_prompt`), and
        `per_prompt` when no prompt states a setting, so that a config without them keeps the
        params, and the jobs, it had before these keys existed.
        """
        params = {**asdict(self), "prompts": list(self.prompts)}
        del params["lora_scales"], params["trainer_settings"]
        if self.per_prompt:
            params["per_prompt"] = [dict(p) for p in self.per_prompt]
        else:
            del params["per_prompt"]
        return params


@dataclass(frozen=True)
class PlannedImage:
    """One image to render: the same for every checkpoint but for the LoRA (and its scale).

    The settings are the prompt's own where its trainer's prompt file states them (`stated`
    names those), else the generate: section's.
    """

    file: str  # relative to the checkpoint's folder
    prompt_index: int
    image_index: int
    prompt: str
    image_seed: int
    seed: int = 0
    negative_prompt: str | None = None
    width: int | None = None
    height: int | None = None
    steps: int = 30
    guidance_scale: float = 7.5
    stated: tuple[str, ...] = ()


@dataclass(frozen=True)
class GenerationPlan:
    """Everything the workflow needs at plan time when it generates its samples."""

    settings: GenerateSettings
    root: Path  # results/<run>/generated: one subfolder per checkpoint
    loras: dict[str, Path | None]  # candidate -> its LoRA file (None: the base model alone)
    images: tuple[PlannedImage, ...]
    prompt_source: str
    # candidate -> its LoRA scale (None: the base model alone); a candidate is a checkpoint,
    # or with generate.lora_scales a checkpoint at one scale, named `<checkpoint>@<scale>`
    scales: dict[str, float | None] = field(default_factory=dict)

    def job_params(self, name: str) -> dict[str, Any]:
        """The generate job's settings for one candidate: the section's, at its own scale."""
        scale = self.scales.get(name)
        settings = self.settings if scale is None else replace(self.settings, lora_scale=scale)
        return settings.as_params()

    def samples(self) -> Found:
        """The images the generate jobs will write, as a layout reader would report them."""
        return Found(
            "folders",
            self.root,
            [
                Sample(
                    path=self.root / name / image.file,
                    file=f"{name}/{image.file}",
                    checkpoint=name,
                    prompt=image.prompt,
                    prompt_index=image.prompt_index,
                    seed=image.image_seed,
                )
                for name in self.loras
                for image in self.images
            ],
        )

    def prompts(self) -> dict[str, dict[str, str]]:
        """Checkpoint -> {file relative to `root`: prompt}, as the jobs that pair them take them."""
        return {
            name: {f"{name}/{image.file}": image.prompt for image in self.images}
            for name in self.loras
        }

    def record(self, name: str) -> Path:
        """The generate job's output: the list of its images, written when all are on disk."""
        return self.root / name / RECORD


def image_seed(seed: int, prompt_index: int, image_index: int) -> int:
    """The seed of one image's generator: the first 8 bytes (big-endian) of
    sha256("ckpt-eval:<seed>:<prompt index>:<image index>"), top bit cleared (a 63-bit int).

    A hash rather than `seed + i`: the base seeds 0 and 1 then share no image, and adding
    prompts or images per prompt leaves every existing image's seed (and pixels) unchanged.
    To redo one image outside the workflow: `torch.Generator("cpu").manual_seed(image_seed)`.
    """
    text = f"ckpt-eval:{seed}:{prompt_index}:{image_index}".encode("ascii")
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") & (2**63 - 1)


def trainer_image_seed(seed: int, prompt_index: int, image_index: int) -> int:
    """The seed of one image of a prompt whose trainer states its seed (kohya `--d`, ai-toolkit,
    SimpleTuner): image 0 starts from that seed itself, as the trainer's sample did; further
    images from `image_seed(seed, prompt, image)`."""
    return seed if image_index == 0 else image_seed(seed, prompt_index, image_index)


def plan_images(settings: GenerateSettings) -> tuple[PlannedImage, ...]:
    """Prompts x images per prompt, named `p<prompt>-i<image>.png` with one width for all, so
    that a folder listing sorts them as the prompts and images are numbered; each with its
    prompt's settings (the trainer's where stated, else the section's)."""
    width = max(3, len(str(max(len(settings.prompts), settings.images_per_prompt) - 1)))
    planned = []
    for p, prompt in enumerate(settings.prompts):
        stated = settings.per_prompt[p] if settings.per_prompt else {}
        values = {key: stated.get(key, getattr(settings, key)) for key in STATED}
        seed_of = trainer_image_seed if "seed" in stated else image_seed
        planned.extend(
            PlannedImage(
                file=f"p{p:0{width}d}-i{i:0{width}d}.png",
                prompt_index=p,
                image_index=i,
                prompt=prompt,
                image_seed=seed_of(values["seed"], p, i),
                stated=tuple(key for key in STATED if key in stated),
                **values,
            )
            for i in range(settings.images_per_prompt)
        )
    return tuple(planned)


def lora_file(path: Path) -> Path:
    """The LoRA weights of a checkpoint: the file itself, or the one .safetensors file of a
    checkpoint folder (`pytorch_lora_weights.safetensors` where the diffusers scripts wrote it).

    Only .safetensors: a pickled .bin or .ckpt runs code when loaded.
    """
    if path.is_file():
        if path.suffix != ".safetensors":
            raise CkptEvalError(
                f"The LoRA checkpoint {path.name} is not a .safetensors file.",
                path=path,
                fix="convert it to .safetensors (a pickled .ckpt/.bin/.pt can run code when "
                "loaded, so it is not read).",
            )
        return path
    if (path / DIFFUSERS_LORA).is_file():
        return path / DIFFUSERS_LORA
    candidates = sorted(path.glob("*.safetensors")) if path.is_dir() else []
    if len(candidates) == 1:
        return candidates[0]
    raise CkptEvalError(
        f"Checkpoint folder {path.name} holds {len(candidates) or 'no'} .safetensors files: "
        "which one is the LoRA cannot be told.",
        path=path,
        fix=f"keep the LoRA as {DIFFUSERS_LORA} in each checkpoint folder.",
    )


def folder_loras(root: Path) -> dict[str, Path]:
    """For `samples.layout: folders` with `generate:`: every .safetensors file directly in
    samples.root and every subfolder holding one, named after the file or folder (the step is
    read from that name, as for sample folders)."""
    if not root.is_dir():
        raise CkptEvalError(
            "samples.root is not a folder.",
            path=root,
            fix="with generate:, set samples.root to the folder of LoRA checkpoints.",
        )
    found: dict[str, Path] = {}
    for path in sorted(root.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_file() and path.suffix == ".safetensors":
            found[path.stem] = path
        elif path.is_dir() and any(path.glob("*.safetensors")):
            found[path.name] = path
    return found


def checkpoint_loras(config: dict[str, Any]) -> tuple[dict[str, Path], Found | None]:
    """Checkpoint name -> LoRA file, in training order; and what the trainer reader found.

    The diffusers and kohya readers (and any other that lists checkpoint files) name the
    checkpoints as they name their samples; for `folders` the LoRA files under samples.root.
    """
    layout = config["samples"]["layout"]
    found: Found | None = None
    if layout == "folders":
        raw = folder_loras(Path(config["samples"]["root"]))
    else:
        found = read_layout(layout, options_from_config(config))
        raw = dict(found.checkpoint_files)
    if not raw:
        raise CkptEvalError(
            f"generate: is set, but no LoRA checkpoints were found (samples.layout: {layout}).",
            path=config["samples"]["root"],
            fix="point samples.root at the folder of LoRA checkpoints: diffusers checkpoint-<step>/"
            f" folders with {DIFFUSERS_LORA} (layout diffusers), kohya <name>-<epoch>.safetensors"
            " files (layout kohya), or one .safetensors file or folder per checkpoint (folders).",
        )
    if BASELINE in raw:
        raise CkptEvalError(
            f"A checkpoint is named {BASELINE}, the name of the base-model baseline.",
            path=raw[BASELINE],
            fix="rename that checkpoint.",
        )
    check_plain_names(raw, config["samples"]["root"])
    ordered = sorted(raw, key=checkpoint_order)
    return {name: lora_file(raw[name]) for name in ordered}, found


def read_prompts(value: Any, config: dict[str, Any]) -> tuple[tuple[SampleSettings, ...], str]:
    """The prompts to render, with the settings their file states, and where they came from:
    the list in the config (no settings), a prompt file (one prompt a line in sd-scripts'
    format, `#` lines skipped, its flags read; also sd-scripts .toml/.json), or, when null, the
    trainer's own (kohya's --sample_prompts, ai-toolkit's sample block, SimpleTuner's prompt
    library and validation settings)."""
    layout = config["samples"]["layout"]
    if isinstance(value, list):
        prompts, source = [SampleSettings(p) for p in value], "generate.prompts"
    elif value:
        path = Path(value)
        if not path.is_file():
            raise CkptEvalError(
                "The prompt file of generate.prompts was not found.",
                path=path,
                fix="set generate.prompts to a prompt file (one a line) or a list of prompts.",
            )
        prompts, source = read_prompt_list(path), str(path)
    else:
        found = sample_prompts(layout, options_from_config(config))
        if found is None:
            raise CkptEvalError(
                "generate.prompts is not set and there is no trainer prompt file to take them "
                f"from (samples.layout: {layout}).",
                fix="set generate.prompts to a list of prompts or to a prompt file (one a line); "
                "with layout kohya, ai-toolkit or simpletuner, null takes the trainer's own "
                "(samples.prompt_file says where it is).",
            )
        prompts, source = found[0], str(found[1])
    prompts = [replace(p, prompt=p.prompt.strip()) for p in prompts]
    if not prompts or not all(p.prompt for p in prompts):
        raise CkptEvalError(
            "generate.prompts gives no prompt, or an empty one.",
            path=None if source == "generate.prompts" else source,
            fix="list at least one non-empty prompt.",
        )
    for p in prompts:
        check_stated(p, source)
    return tuple(prompts), source


def check_stated(prompt: SampleSettings, source: str) -> None:
    """A seed torch can take and a size the pipelines can render, or a stop naming the prompt."""
    stated = prompt.stated()
    if not 0 <= stated.get("seed", 0) <= MAX_SEED:
        raise CkptEvalError(
            f"The prompt {prompt.prompt!r} has seed {stated['seed']}, outside 0..2**64-1.",
            path=source,
            fix="give it a seed in that range.",
        )
    for key in ("width", "height"):
        if key in stated and (stated[key] < 8 or stated[key] % 8):
            raise CkptEvalError(
                f"The prompt {prompt.prompt!r} asks for {key} {stated[key]}: the diffusers "
                "pipelines render multiples of 8.",
                path=source,
                fix=f"set its {key} to a multiple of 8 (at least 8).",
            )
    if stated.get("steps", 1) < 1:
        raise CkptEvalError(
            f"The prompt {prompt.prompt!r} asks for {stated['steps']} steps.",
            path=source,
            fix="give it at least 1 step.",
        )


def sweep_scales(settings: GenerateSettings) -> tuple[float, ...] | None:
    """generate.lora_scales, lowest first, each exact in its candidate name; None: no sweep."""
    if settings.lora_scales is None:
        return None
    if settings.lora_scale != 1.0:
        raise CkptEvalError(
            "generate.lora_scale and generate.lora_scales are both set: with a sweep every "
            "candidate's scale is one of lora_scales.",
            fix="remove generate.lora_scale (or list only it in lora_scales).",
        )
    scales = tuple(sorted(float(s) for s in settings.lora_scales))
    inexact = [s for s in scales if float(scale_text(s)) != s]
    if inexact or len({scale_text(s) for s in scales}) != len(scales):
        raise CkptEvalError(
            f"generate.lora_scales {list(settings.lora_scales)}: each scale is named with at "
            "most 4 decimals, and no two may be equal.",
            fix="list distinct scales with at most 4 decimals, e.g. [0.6, 0.8, 1.0].",
        )
    return scales


def generation_plan(config: dict[str, Any], out: str | Path) -> GenerationPlan:
    """The plan of a config with a `generate:` section (validated, defaults filled); the images
    go to `out`/generated, `out` being the run's output folder the workflow chose."""
    section = dict(config["generate"])
    if config.get("prompts"):
        raise CkptEvalError(
            "The config sets both `prompts` and `generate:`; with generate: the prompts to "
            "render are generate.prompts, and each generated image carries its own.",
            fix="move the prompts into generate.prompts (a list or a prompt file) and remove "
            "`prompts`.",
        )
    loras, _ = checkpoint_loras(config)
    prompts, source = read_prompts(section.pop("prompts"), config)
    if section.get("lora_scales") is not None:
        section["lora_scales"] = tuple(section["lora_scales"])
    settings = GenerateSettings(prompts=tuple(p.prompt for p in prompts), **section)
    stated = tuple(p.stated() for p in prompts) if settings.trainer_settings else ()
    settings = replace(settings, per_prompt=stated if any(stated) else ())
    ordered: dict[str, Path | None] = {BASELINE: None} if settings.baseline else {}
    scales: dict[str, float | None] = {BASELINE: None} if settings.baseline else {}
    sweep = sweep_scales(settings)
    for name, lora in loras.items():
        for scale in sweep or (settings.lora_scale,):
            candidate = candidate_name(name, scale) if sweep else name
            ordered[candidate] = lora
            scales[candidate] = scale
    return GenerationPlan(
        settings=settings,
        root=Path(out) / "generated",
        loras=ordered,
        images=plan_images(settings),
        prompt_source=source,
        scales=scales,
    )


# Sidecar fields that decide the pixels: an image on disk whose sidecar matches the plan on all of
# them is not rendered again.
RENDER_FIELDS = (
    "checkpoint",
    "lora_sha256",
    "lora_scale",
    "base_model",
    "pipeline",
    "prompt",
    "negative_prompt",
    "prompt_index",
    "image_index",
    "seed",
    "image_seed",
    "steps",
    "guidance_scale",
    "width",
    "height",
    "scheduler",
    "dtype",
    "device",
)


def sidecar_matches(sidecar: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(sidecar.get(key) == wanted.get(key) for key in RENDER_FIELDS)
