"""Render each checkpoint's samples with diffusers: base model plus that checkpoint's LoRA.

One pipeline serves all the checkpoints a process renders: each LoRA is loaded, used and
unloaded (`unload_lora_weights`), so the next checkpoint starts from the bare base model again.
Every image has its own CPU generator seeded with `generate.image_seed(seed, prompt, image)`:
the starting noise of image k is the same for every checkpoint (and every batch layout), so two
checkpoints' image k differ only by the LoRA.

Resuming: an image on disk whose sidecar matches what would be rendered now (same LoRA bytes,
prompt, seed, steps, ...; `generate.RENDER_FIELDS`) and whose bytes match the sidecar's sha256
is kept. Images and sidecars are written under a temporary name and renamed, so a killed job
leaves whole files only, and the next run renders just what is missing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from tqdm import tqdm

from ckpt_eval.atomic import atomic_write
from ckpt_eval.errors import CkptEvalError
from ckpt_eval.extract.device import resolve_device
from ckpt_eval.generate.plan import (
    RECORD,
    GenerateSettings,
    PlannedImage,
    plan_images,
    sidecar_matches,
)
from ckpt_eval.inputs.images import sha256_file
from ckpt_eval.jsonio import read_json, write_json

log = logging.getLogger(__name__)
ADAPTER = "checkpoint"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
MEMORY_FIX = (
    "set generate.attention_slicing: true and generate.vae_tiling: true, on CUDA also "
    "generate.cpu_offload: true; or lower generate.width/height, or use dtype float16 "
    "(bfloat16 for Flux and SD3). Then run the same command again: the images already rendered "
    "are kept."
)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto`: float16 on CUDA and MPS (how these models are usually run), float32 on the CPU
    (half precision there is slow, and not every CPU kernel has it)."""
    if name == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    return DTYPES[name]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def pipeline_class(name: str) -> Any:
    """`auto` = diffusers' AutoPipelineForText2Image (reads the model's model_index.json);
    otherwise the named diffusers pipeline class, e.g. StableDiffusionXLPipeline."""
    import diffusers

    if name == "auto":
        return diffusers.AutoPipelineForText2Image
    cls = getattr(diffusers, name, None)
    if not (isinstance(cls, type) and issubclass(cls, diffusers.DiffusionPipeline)):
        raise CkptEvalError(
            f"generate.pipeline '{name}' is not a diffusers pipeline class.",
            fix="set generate.pipeline: auto, or a class such as StableDiffusionPipeline, "
            "StableDiffusionXLPipeline, StableDiffusion3Pipeline or FluxPipeline.",
        )
    return cls


def load_pipeline(
    settings: GenerateSettings, device: torch.device, dtype: torch.dtype, checkpoint: str
) -> Any:
    """The base model on `device`, with the scheduler and memory options of the config.

    A hub id is tried from the local cache first (an offline machine never waits on network
    retries); weights only from .safetensors, never from a pickle.
    """
    cls = pipeline_class(settings.pipeline)
    base = settings.base_model
    attempts = [{}] if Path(base).is_dir() else [{"local_files_only": True}, {}]
    errors: list[str] = []
    for kwargs in attempts:
        try:
            pipe = cls.from_pretrained(base, dtype=dtype, use_safetensors=True, **kwargs)
            break
        except Exception as exc:  # diffusers raises OSError, ValueError, HTTP errors...
            errors.append(f"{type(exc).__name__}: {_first_line(exc)}")
    else:
        raise CkptEvalError(
            f"The base model '{base}' could not be loaded to render checkpoint {checkpoint} "
            f"({errors[-1]}).",
            path=base if Path(base).exists() else None,
            fix="set generate.base_model to a local folder holding a diffusers pipeline "
            "(model_index.json and its subfolders, weights as .safetensors), e.g. saved once on "
            "a machine with network by `DiffusionPipeline.from_pretrained(id)"
            ".save_pretrained(dir)`, or to a hub id that is in the local Hugging Face cache.",
        )
    pipe.set_progress_bar_config(disable=True)
    use_scheduler(pipe, settings.scheduler)
    if settings.attention_slicing and hasattr(pipe, "enable_attention_slicing"):
        pipe.enable_attention_slicing()
    if settings.vae_tiling and getattr(pipe, "vae", None) is not None:
        pipe.vae.enable_tiling()
    if settings.cpu_offload and device.type == "cuda":
        pipe.enable_model_cpu_offload(device=device)
    else:
        if settings.cpu_offload:
            log.info("generate.cpu_offload applies to CUDA only; ignored on %s", device.type)
        pipe.to(device)
    return pipe


def use_scheduler(pipe: Any, name: str | None) -> None:
    """Swap in the named scheduler (one the model lists as compatible), from the model's own
    scheduler config, so the noise schedule stays the one the model was trained with."""
    if name is None:
        return
    import diffusers

    compatible = {c.__name__ for c in pipe.scheduler.compatibles} | {type(pipe.scheduler).__name__}
    if name not in compatible:
        raise CkptEvalError(
            f"generate.scheduler '{name}' does not fit this base model.",
            fix=f"use one of: {', '.join(sorted(compatible))}; or null for the model's own.",
        )
    pipe.scheduler = getattr(diffusers, name).from_config(pipe.scheduler.config)


@contextmanager
def lora_loaded(
    pipe: Any, checkpoint: str, lora: Path | None, settings: GenerateSettings
) -> Iterator[None]:
    """The checkpoint's LoRA on the pipeline for the block, unloaded after it (also on error);
    nothing for the base-model baseline. A LoRA that loads nowhere is an error, not a silent
    base-model render."""
    if lora is None:
        yield
        return
    try:
        pipe.load_lora_weights(str(lora.parent), weight_name=lora.name, adapter_name=ADAPTER)
        loaded = any(ADAPTER in names for names in pipe.get_list_adapters().values())
        if not loaded:
            raise ValueError("no layer of the base model took a weight of the LoRA")
    except Exception as exc:  # diffusers/peft raise RuntimeError, ValueError, KeyError, ...
        _unload(pipe)
        raise CkptEvalError(
            f"The LoRA of checkpoint {checkpoint} does not fit the base model "
            f"'{settings.base_model}' ({type(exc).__name__}: {_first_line(exc)}).",
            path=lora,
            fix="check that the checkpoint was trained on this base model (an SD 1.5 LoRA does "
            "not fit SDXL, SD3 or Flux) and that the file is complete.",
        ) from exc
    if settings.lora_scale != 1.0:
        pipe.set_adapters([ADAPTER], adapter_weights=[settings.lora_scale])
    try:
        yield
    finally:
        _unload(pipe)


def _unload(pipe: Any) -> None:
    try:
        pipe.unload_lora_weights()
    except Exception:  # nothing was loaded: nothing to undo
        log.debug("unload_lora_weights had nothing to unload", exc_info=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def render_image(pipe: Any, image: PlannedImage) -> Image.Image:
    """One image from its own CPU generator (the same starting noise on every device), with its
    prompt's settings."""
    generator = torch.Generator("cpu").manual_seed(image.image_seed)
    options: dict[str, Any] = {
        "prompt": image.prompt,
        "num_inference_steps": image.steps,
        "guidance_scale": image.guidance_scale,
        "generator": generator,
        "num_images_per_prompt": 1,
    }
    if image.negative_prompt is not None:
        options["negative_prompt"] = image.negative_prompt
    if image.width is not None:
        options["width"] = image.width
    if image.height is not None:
        options["height"] = image.height
    return pipe(**options).images[0]


def image_fields(
    checkpoint: str,
    lora: Path | None,
    lora_sha256: str | None,
    settings: GenerateSettings,
    image: PlannedImage,
    device: torch.device,
    dtype: torch.dtype,
) -> dict[str, Any]:
    """What the sidecar and the PNG's text chunks say about one image (settings as asked for:
    `width`, `height`, `scheduler` null mean the model's own; `size` and `scheduler_class` are
    what was used). `trainer_settings` names the settings taken from the trainer's prompt
    file, when it states any; `seed` is the seed `image_seed` was derived from."""
    fields = {
        "checkpoint": checkpoint,
        "lora": str(lora) if lora else None,
        "lora_sha256": lora_sha256,
        "lora_scale": settings.lora_scale if lora else None,
        "base_model": settings.base_model,
        "pipeline": settings.pipeline,
        "prompt": image.prompt,
        "negative_prompt": image.negative_prompt,
        "prompt_index": image.prompt_index,
        "image_index": image.image_index,
        "seed": image.seed,
        "image_seed": image.image_seed,
        "steps": image.steps,
        "guidance_scale": image.guidance_scale,
        "width": image.width,
        "height": image.height,
        "scheduler": settings.scheduler,
        "dtype": dtype_name(dtype),
        "device": device.type,
    }
    if image.stated:
        fields["trainer_settings"] = list(image.stated)
    return fields


def save_image(image: Image.Image, path: Path, fields: dict[str, Any]) -> dict[str, Any]:
    """PNG with every field as a text chunk (JSON values), then the sidecar `<name>.json` with
    the same fields and the PNG's sha256; both written under a temporary name and renamed."""
    info = PngInfo()
    for key, value in fields.items():
        info.add_text(key, json.dumps(value, ensure_ascii=False))
    with atomic_write(path, "wb") as handle:
        image.save(handle, format="PNG", pnginfo=info)
    sidecar = {**fields, "image_sha256": sha256_file(path)}
    write_json(sidecar, sidecar_path(path))
    return sidecar


def sidecar_path(image: Path) -> Path:
    return image.with_suffix(".json")


def already_rendered(path: Path, wanted: dict[str, Any]) -> dict[str, Any] | None:
    """The sidecar of an image on disk that is what would be rendered now, else None."""
    side = sidecar_path(path)
    if not (path.is_file() and side.is_file()):
        return None
    try:
        sidecar = read_json(side)
    except (OSError, ValueError, CkptEvalError):  # unreadable: rendered again
        return None
    if not sidecar_matches(sidecar, wanted) or sidecar.get("image_sha256") != sha256_file(path):
        return None
    return sidecar


def generate(
    checkpoints: dict[str, Path | None],
    settings: GenerateSettings,
    root: Path,
    device_name: str = "auto",
) -> dict[str, dict[str, Any]]:
    """Render every checkpoint's planned images into `root/<checkpoint>/` (missing ones only)
    and write each checkpoint's record `images.json` when all its images are on disk.

    The pipeline is loaded once, and only if something is left to render.
    """
    device = resolve_device(device_name)
    dtype = resolve_dtype(settings.dtype, device)
    planned = plan_images(settings)
    pipe = None
    records: dict[str, dict[str, Any]] = {}
    for name, lora in checkpoints.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        lora_sha256 = sha256_file(lora) if lora else None
        wanted = {
            p.file: image_fields(name, lora, lora_sha256, settings, p, device, dtype)
            for p in planned
        }
        sidecars = {p.file: already_rendered(folder / p.file, wanted[p.file]) for p in planned}
        todo = [p for p in planned if sidecars[p.file] is None]
        if todo:
            if pipe is None:
                pipe = load_pipeline(settings, device, dtype, name)
            with lora_loaded(pipe, name, lora, settings):
                rendered = render_all(pipe, name, todo, folder, wanted)
            sidecars.update(rendered)
        records[name] = checkpoint_record(name, lora, lora_sha256, settings, planned, sidecars)
        records[name]["rendered"] = len(todo)
        records[name]["reused"] = len(planned) - len(todo)
        write_json(records[name], folder / RECORD)
    return records


def generate_job(
    checkpoint: str, lora: str | None, params: dict[str, Any], record: str, device_name: str
) -> dict[str, Any]:
    """One generate job of the workflow: its checkpoint into the folder of its record."""
    settings = GenerateSettings.from_params(params)
    root = Path(record).parent.parent  # <generated root>/<checkpoint>/images.json
    return generate({checkpoint: Path(lora) if lora else None}, settings, root, device_name)[
        checkpoint
    ]


def render_all(
    pipe: Any,
    name: str,
    todo: list[PlannedImage],
    folder: Path,
    wanted: dict[str, dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Render the missing images of one checkpoint, with a progress bar in images/s."""
    done: dict[str, dict[str, Any]] = {}
    start = time.perf_counter()
    for image in tqdm(todo, desc=f"generate {name}", unit="img"):
        try:
            picture = render_image(pipe, image)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            raise CkptEvalError(
                f"Out of memory rendering checkpoint {name} ({image.file}; dtype "
                f"{wanted[image.file]['dtype']} on {wanted[image.file]['device']}). "
                f"The {len(done)} image(s) rendered before it are kept.",
                path=folder / image.file,
                fix=MEMORY_FIX,
            ) from exc
        fields = {**wanted[image.file], **used_settings(pipe, picture)}
        done[image.file] = save_image(picture, folder / image.file, fields)
    seconds = time.perf_counter() - start
    log.info(
        "%s: rendered %d image(s) in %.1f s (%.2f images/s)",
        name,
        len(todo),
        seconds,
        len(todo) / seconds if seconds > 0 else 0.0,
    )
    return done


def used_settings(pipe: Any, picture: Image.Image) -> dict[str, Any]:
    """What the model's defaults came to: the scheduler class and the image size."""
    import diffusers

    return {
        "scheduler_class": type(pipe.scheduler).__name__,
        "pipeline_class": type(pipe).__name__,
        "size": list(picture.size),
        "diffusers": diffusers.__version__,
    }


def checkpoint_record(
    name: str,
    lora: Path | None,
    lora_sha256: str | None,
    settings: GenerateSettings,
    planned: tuple[PlannedImage, ...],
    sidecars: dict[str, dict[str, Any] | None],
) -> dict[str, Any]:
    """The generate job's output: its images with their seeds and hashes (and the settings
    their trainer's prompt file stated, with their values, where it stated any)."""
    return {
        "checkpoint": name,
        "lora": str(lora) if lora else None,
        "lora_sha256": lora_sha256,
        "base_model": settings.base_model,
        "images": [
            {
                "file": p.file,
                "prompt_index": p.prompt_index,
                "image_index": p.image_index,
                "prompt": p.prompt,
                "image_seed": p.image_seed,
                "sha256": (sidecars[p.file] or {}).get("image_sha256"),
                **({"trainer_settings": {k: getattr(p, k) for k in p.stated}} if p.stated else {}),
            }
            for p in planned
        ],
    }
