"""Plan the generate stage: which checkpoints, which prompts, which seed for which image.

With a `generate:` section every checkpoint renders the same prompts with the same per-image
seeds, so that checkpoint A's image k and checkpoint B's image k differ only by the LoRA (which
is what makes the paired CLIP comparison meaningful). Everything here is known before any job
runs (the workflow plans the organize jobs from it), and nothing here imports torch or
diffusers, so planning stays fast; the rendering itself is in `ckpt_eval.generate.pipeline`.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.inputs.layouts import options_from_config, read_layout
from ckpt_eval.inputs.layouts.base import Found, Sample, checkpoint_order
from ckpt_eval.inputs.layouts.kohya import read_prompt_list

# The base model alone: sorts first (step 0) and is the baseline every LoRA is compared with.
BASELINE = "base-step-000000"
# The file a diffusers training script writes into each checkpoint-<step>/ folder.
DIFFUSERS_LORA = "pytorch_lora_weights.safetensors"
RECORD = "images.json"


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
    baseline: bool = True
    attention_slicing: bool = False
    vae_tiling: bool = False
    cpu_offload: bool = False

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> GenerateSettings:
        """Back from the rule's params (Snakemake hands lists where tuples were)."""
        return cls(**{**params, "prompts": tuple(params["prompts"])})

    def as_params(self) -> dict[str, Any]:
        """As the generate rule's params: a change of any of them reruns every generate job."""
        return {**asdict(self), "prompts": list(self.prompts)}


@dataclass(frozen=True)
class PlannedImage:
    """One image to render: the same for every checkpoint but for the LoRA."""

    file: str  # relative to the checkpoint's folder
    prompt_index: int
    image_index: int
    prompt: str
    image_seed: int


@dataclass(frozen=True)
class GenerationPlan:
    """Everything the workflow needs at plan time when it generates its samples."""

    settings: GenerateSettings
    root: Path  # results/<run>/generated: one subfolder per checkpoint
    loras: dict[str, Path | None]  # checkpoint -> its LoRA file (None: the base model alone)
    images: tuple[PlannedImage, ...]
    prompt_source: str

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
        """Checkpoint -> {file relative to `root`: prompt}, as the prompts stage takes them."""
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


def plan_images(settings: GenerateSettings) -> tuple[PlannedImage, ...]:
    """Prompts x images per prompt, named `p<prompt>-i<image>.png` with one width for all, so
    that a folder listing sorts them as the prompts and images are numbered."""
    width = max(3, len(str(max(len(settings.prompts), settings.images_per_prompt) - 1)))
    return tuple(
        PlannedImage(
            file=f"p{p:0{width}d}-i{i:0{width}d}.png",
            prompt_index=p,
            image_index=i,
            prompt=prompt,
            image_seed=image_seed(settings.seed, p, i),
        )
        for p, prompt in enumerate(settings.prompts)
        for i in range(settings.images_per_prompt)
    )


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
    ordered = sorted(raw, key=checkpoint_order)
    return {name: lora_file(raw[name]) for name in ordered}, found


def read_prompts(value: Any, found: Found | None) -> tuple[tuple[str, ...], str]:
    """The prompts to render and where they came from: the list in the config, a prompt file
    (one prompt a line, sd-scripts' .txt/.toml/.json: flags after ` --` and `#` lines are
    dropped), or, when null, the trainer's prompt file (kohya's --sample_prompts)."""
    if isinstance(value, list):
        prompts, source = value, "generate.prompts"
    else:
        trainers = found.prompt_source if found is not None and found.layout == "kohya" else None
        path = Path(value) if value else trainers
        if path is None:
            raise CkptEvalError(
                "generate.prompts is not set and there is no kohya prompt file to take them from.",
                fix="set generate.prompts to a list of prompts or to a prompt file (one a line).",
            )
        if not path.is_file():
            raise CkptEvalError(
                "The prompt file of generate.prompts was not found.",
                path=path,
                fix="set generate.prompts to a prompt file (one a line) or a list of prompts.",
            )
        prompts, source = [entry.prompt for entry in read_prompt_list(path)], str(path)
    prompts = [p.strip() for p in prompts]
    if not prompts or not all(prompts):
        raise CkptEvalError(
            "generate.prompts gives no prompt, or an empty one.",
            path=None if source == "generate.prompts" else source,
            fix="list at least one non-empty prompt.",
        )
    return tuple(prompts), source


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
    loras, found = checkpoint_loras(config)
    prompts, source = read_prompts(section.pop("prompts"), found)
    settings = GenerateSettings(prompts=prompts, **section)
    ordered: dict[str, Path | None] = {BASELINE: None} if settings.baseline else {}
    ordered.update(loras)
    return GenerationPlan(
        settings=settings,
        root=Path(out) / "generated",
        loras=ordered,
        images=plan_images(settings),
        prompt_source=source,
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
