"""`python -m ckpt_eval init`: read a trainer's output folder, say what is there, write the config.

People sort sample files by hand before they can evaluate anything; this reads the folder the
way the trainer wrote it, prints what it found (checkpoints with steps, images per checkpoint,
prompts found and missing, files it cannot place) and writes a commented config.yaml that the
workflow reads the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ckpt_eval.atomic import write_text
from ckpt_eval.config import load_schema, validate_config
from ckpt_eval.errors import CkptEvalError
from ckpt_eval.inputs.discover import check_distinct_names, check_separate_folders
from ckpt_eval.inputs.layouts import (
    TITLES,
    TRAINER_PROMPTS,
    detect_layout,
    merge_prompts,
    read_layout,
    without_prompt,
)
from ckpt_eval.inputs.layouts.base import Found, Options, checkpoint_order
from ckpt_eval.inputs.steps import check_plain_names


@dataclass(frozen=True)
class InitRequest:
    """What `init` was asked: the folders, and what to pass on to the config."""

    source: Path
    real: Path
    output: Path
    trainer: str | None = None
    name: str | None = None
    prompts: Path | None = None
    prompt_file: Path | None = None
    pattern: str | None = None
    trigger_word: str | None = None
    training_run: str | None = None
    base_model: str | None = None
    force: bool = False


def default_extensions() -> tuple[str, ...]:
    schema = load_schema()["properties"]["samples"]["properties"]["extensions"]
    return tuple(schema["default"])


def run_init(request: InitRequest) -> list[str]:
    """Read, summarise, write; returns the lines to print. Raises CkptEvalError on a bad input."""
    if not request.real.is_dir():
        raise CkptEvalError(
            "The real images folder was not found.",
            path=request.real,
            fix="pass --real the folder of your training images.",
        )
    if request.output.exists() and not request.force:
        raise CkptEvalError(
            "The config file exists already.",
            path=request.output,
            fix="pass --output another file name, or --force to overwrite it.",
        )
    extensions = default_extensions()
    layout = request.trainer or detect_layout(request.source, extensions)
    if layout == "folders" and request.prompts is None:
        raise CkptEvalError(
            "The folders layout takes its prompts from a prompt file.",
            path=request.source,
            fix="pass --prompts FILE (CSV file,prompt; file relative to the samples folder).",
        )
    options = Options(
        root=request.source,
        extensions=extensions,
        prompt_file=request.prompt_file,
        pattern=request.pattern,
        trigger_word=request.trigger_word,
        training_run=request.training_run,
    )
    found = read_layout(layout, options)
    generate = generate_section(request, found)
    text = config_text(request, found, generate)
    config = validate_config(yaml.safe_load(text))
    check_distinct_names(found.checkpoints(), found.root)
    check_plain_names(found.checkpoints(), found.root)
    check_separate_folders(request.real, found.root, Path("results") / config["run"])
    lines = summary(found, config)
    if generate is not None:
        lines += generation_lines(config)
    write_text(request.output, text)
    lines.append("")
    lines.append(f"Wrote {request.output}.")
    if found.needs_generation and generate is None:  # diffusers: samples must be rendered
        lines.append(
            "Generate samples from these checkpoints before running the workflow: run init "
            "again with --base-model <hub id or folder> --prompt-file <prompts, one a line> "
            "and the workflow renders them."
        )
    else:
        lines.append(f"Next: .venv/bin/snakemake --cores 4 --configfile {request.output}")
    return lines


def generate_section(request: InitRequest, found: Found) -> dict[str, Any] | None:
    """The `generate:` keys init can fill in, when the samples are to be rendered: always for
    the diffusers scripts (they keep none), for any trainer when --base-model is given.

    The base model is --base-model, or what the trainer recorded (kohya's `ss_sd_model_name`,
    the `base_model` of the diffusers scripts' README.md). The prompts: --prompt-file for the
    diffusers scripts (they keep none), the trainer's own (kohya's prompt file, ai-toolkit's job
    config, SimpleTuner's prompt library: read with the settings they state), or the prompts of
    the trainer's samples.
    """
    to_render = found.needs_generation or (found.checkpoint_files and not found.samples)
    if not (to_render or request.base_model):
        return None
    base = request.base_model or trainer_base_model(found)
    missing = [] if base else ["--base-model <hub id or local diffusers folder>"]
    prompts: Any = None  # generate.prompts null: the trainer's own prompts and their settings
    if found.layout == "diffusers":  # elsewhere --prompt-file is the trainer's own file
        if request.prompt_file is None:
            missing.append("--prompt-file <the prompts to render, one a line>")
        prompts = path_text(request.prompt_file) if request.prompt_file else None
    elif found.layout not in TRAINER_PROMPTS or found.prompt_source is None:
        by_index = {s.prompt_index or 0: s.prompt for s in found.samples if s.prompt}
        prompts = [by_index[i] for i in sorted(by_index)]
        if not prompts:
            missing.append("--prompt-file <the prompts to render, one a line>")
    if not missing:
        return {"base_model": base, "prompts": prompts}
    if request.base_model is None:
        return None  # nothing asked: the summary says the samples must be generated, and how
    raise CkptEvalError(
        f"To render the samples of {found.root}, init needs: {'; '.join(missing)}.",
        path=found.root,
        fix=f"pass {' and '.join(m.split()[0] for m in missing)}.",
    )


def trainer_base_model(found: Found) -> str | None:
    from ckpt_eval.inputs.layouts.kohya import safetensors_metadata

    for path in found.checkpoint_files.values():
        name = safetensors_metadata(path).get("ss_sd_model_name") if path.is_file() else None
        if name:
            return name
    readme = found.root / "README.md"
    if readme.is_file():
        parts = readme.read_text(encoding="utf-8", errors="replace").split("---")
        try:
            card = yaml.safe_load(parts[1]) if len(parts) > 2 else None
        except yaml.YAMLError:
            card = None
        base = card.get("base_model") if isinstance(card, dict) else None
        if isinstance(base, list):
            base = base[0] if base else None
        if isinstance(base, str) and base:
            return base
    return None


def generation_lines(config: dict[str, Any]) -> list[str]:
    from ckpt_eval.generate.plan import generation_plan

    plan = generation_plan(config, Path())  # its settings and checkpoints; no image is written
    settings = plan.settings
    what = "candidate(s) (checkpoint x LoRA scale)" if settings.lora_scales else "checkpoint(s)"
    return [
        "",
        f"Samples will be rendered from {settings.base_model} (generate: section):",
        f"  {len(settings.prompts)} prompt(s) x {settings.images_per_prompt} image(s) for each "
        f"of {len(plan.loras)} {what}, the base model alone included; prompts from "
        f"{plan.prompt_source}.",
    ]


def summary(found: Found, config: dict[str, Any]) -> list[str]:
    """What was found, as a person checks it before a long run."""
    lines = [f"Trainer: {TITLES[found.layout]} (samples.layout: {found.layout})"]
    lines.append(f"Folder: {found.root}")
    if found.prompt_source:
        lines.append(f"Prompts from: {found.prompt_source}")
    groups = found.by_checkpoint()
    names = list(groups) or sorted(found.checkpoint_files, key=checkpoint_order)
    lines.append("")
    lines.append(f"Checkpoints ({len(names)}):")
    header = f"  {'name':<24} {'step':>8} {'epoch':>6} {'images':>7} {'prompts':>8}  file"
    lines.append(header)
    for name in names:
        samples = groups.get(name, [])
        first = samples[0] if samples else None
        step = first.step if first and first.step is not None else _position(name, "step")
        epoch = first.epoch if first and first.epoch is not None else _position(name, "epoch")
        with_prompt = sum(s.prompt is not None for s in samples)
        file = found.checkpoint_files.get(name)
        lines.append(
            f"  {name:<24} {_show(step):>8} {_show(epoch):>6} {len(samples):>7} "
            f"{f'{with_prompt}/{len(samples)}':>8}  {file.name if file else '-'}"
        )
    if found.samples:
        lines.extend(_prompt_lines(found, config))
    if found.ignored:
        lines.append("")
        lines.append(f"Left out ({len(found.ignored)} file(s), not evaluated):")
        lines.extend(f"  {i.file}: {i.reason}" for i in found.ignored[:10])
        if len(found.ignored) > 10:
            lines.append(f"  ... and {len(found.ignored) - 10} more")
    if found.notes:
        lines.append("")
        lines.append("Notes:")
        lines.extend(f"  - {note}" for note in found.notes)
    return lines


def _prompt_lines(found: Found, config: dict[str, Any]) -> list[str]:
    prompts = {s.prompt_index: s.prompt for s in found.samples if s.prompt is not None}
    lines = ["", f"Prompts found: {len(set(prompts.values()))}"]
    for index, prompt in sorted(prompts.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))[:10]:
        lines.append(f"  {'-' if index is None else index}: {_short(prompt)}")
    lines.append(f"Prompts missing: {_missing(found, config) or 'none'}")
    return lines


def _missing(found: Found, config: dict[str, Any]) -> str:
    """`N images (prompt 3: 4 images, ...)` of samples no prompt source covers."""
    missing = without_prompt(found, merge_prompts(found, config.get("prompts")))
    if not missing:
        return ""
    counts: dict[str, int] = {}
    for sample in missing:
        key = f"prompt {sample.prompt_index}" if sample.prompt_index is not None else sample.file
        if sample.label:
            key += f" ('{sample.label}')"
        counts[key] = counts.get(key, 0) + 1
    listed = ", ".join(f"{k}: {n} image(s)" for k, n in list(counts.items())[:8])
    return f"{len(missing)} image(s) ({listed}); set samples.prompt_file or fallback_prompt"


def _position(name: str, kind: str) -> int | None:
    from ckpt_eval.inputs.steps import parse_position

    return getattr(parse_position(name), kind)


def _show(value: int | None) -> str:
    return "-" if value is None else str(value)


def _short(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def run_name(request: InitRequest, found: Found) -> str:
    """The config's `run`: the one asked for, else the trainer's run name, else the folder's."""
    runs = {s.run for s in found.samples if s.run}
    raw = request.name or (runs.pop() if len(runs) == 1 else "") or request.source.resolve().name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-.") or "run"


def path_text(path: Path) -> str:
    """Relative to the folder init runs in (the one snakemake runs in) when inside it."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix() or "."
    except ValueError:
        return resolved.as_posix()


def config_text(request: InitRequest, found: Found, generate: dict[str, Any] | None = None) -> str:
    """The config as YAML with a comment on every key (values quoted by the YAML dumper)."""

    def value(v: Any) -> str:
        return (
            yaml.safe_dump(v, default_flow_style=True, width=1000)
            .strip()
            .removesuffix("...")
            .strip()
        )

    def opt_path(p: Path | None) -> str | None:
        return path_text(p) if p else None

    source = opt_path(request.prompt_file) or opt_path(found.prompt_source)
    rows = [
        f"# Written by `python -m ckpt_eval init` from {TITLES[found.layout]} output.",
        "# Paths are relative to the folder init ran in: run snakemake from there.",
        '# Every key is described in the README ("Every config key").',
        f"run: {value(run_name(request, found))}  # outputs go to results/<run>/",
        f"real_images: {value(path_text(request.real))}  # training images, recursive",
        "samples:",
        f"  root: {value(path_text(request.source))}  # the trainer's output folder",
        f"  layout: {value(found.layout)}  # {TITLES[found.layout]}",
    ]
    if request.pattern:
        rows.append(
            f"  pattern: {value(request.pattern)}  # named groups: step, prompt_index, seed"
        )
    if found.layout not in ("folders", "diffusers"):
        rows.append(f"  prompt_file: {value(source)}  # the trainer's prompts (null: none found)")
    if request.trigger_word:
        rows.append(f"  trigger_word: {value(request.trigger_word)}  # replaces [trigger]")
    if request.training_run:
        rows.append(f"  training_run: {value(request.training_run)}  # the run to evaluate")
    if generate is not None:
        rows += [
            "generate:  # render every checkpoint's samples (README: Generating samples)",
            f"  base_model: {value(generate['base_model'])}  # hub id or local diffusers folder",
            f"  prompts: {value(generate['prompts'])}  # list, prompt file; null: trainer's",
            "  images_per_prompt: 8  # per prompt and checkpoint; FID wants hundreds in all",
            "  seed: 0  # image i of prompt p: seed from sha256(ckpt-eval:<seed>:<p>:<i>)",
            "  steps: 30  # inference steps",
            "  guidance_scale: 7.5  # classifier-free guidance",
            "  width: null  # null: the model's default size",
            "  height: null  # null: the model's default size",
            "  scheduler: null  # e.g. EulerDiscreteScheduler; null: the model's own",
            "  dtype: auto  # auto: float16 on CUDA/MPS, float32 on CPU; bfloat16 for Flux/SD3",
            "  negative_prompt: null  # null: none",
        ]
    elif request.prompts:
        rows.append(
            f"prompts: {value(path_text(request.prompts))}  # file,prompt; wins over the trainer's"
        )
    else:
        rows.append("# prompts: a CSV file,prompt; its entries would win over the trainer's")
    rows += [
        "fallback_prompt: null  # null: an image without a prompt stops the run",
        "device: auto  # auto | cpu | cuda | cuda:N | mps",
        "clip:",
        "  model: openai/clip-vit-large-patch14  # hub id or a local folder (offline: see README)",
        "  required: true  # false: go on without CLIP score if the model cannot be loaded",
    ]
    return "\n".join(rows) + "\n"
