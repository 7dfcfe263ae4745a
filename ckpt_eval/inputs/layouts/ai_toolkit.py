"""ostris ai-toolkit: samples in `<training_folder>/<name>/samples/`.

Names follow `jobs/process/BaseSDTrainProcess.py` (`sample`): `[time]_{_step:09d}_[count].<ext>`,
which `toolkit/config_modules.py` (`GenerateImageConfig._get_path_no_ext`) fills in as
`<ms since epoch>__<step:09d>_<count>.<jpg|png|webp>`; `count` numbers the sampled prompts (no
padding). Distributed sampling prefixes `rank<NN>_sample<index:03d>_`. Prompts come from the
job's `config.yaml` (`sample.samples[i].prompt`, or the legacy `sample.prompts[i]`), with
`[trigger]` and `[name]` replaced by the trigger word and inline `--flags` cut off.
Checkpoints: `<name>_<step:09d>.safetensors`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.inputs.layouts.base import (
    Detection,
    Found,
    Ignored,
    Options,
    Sample,
    SampleSettings,
    checkpoint_name,
    image_files,
    keep_newest,
    relative,
    rendered_size,
    select_run,
    time_order_note,
)

TITLE = "ostris ai-toolkit"
SAMPLE_NAME = re.compile(
    r"^(?:rank\d+_sample(?P<sample>\d+)_)?(?P<time>\d+)__(?P<step>\d+)_(?P<count>\d+)$"
)
NAMING = "<ms time>__<step:09d>_<prompt index>"
CHECKPOINT_NAME = re.compile(r"^.+_(?P<step>\d{9})(?:\.safetensors)?$")


@dataclass(frozen=True)
class SamplePrompt(SampleSettings):
    """A sampled prompt as the job config writes it (`[trigger]` and `--flags` still in), its
    position among the config's samples, and the settings it was sampled with."""

    index: int = 0


# the settings of the `sample` block and of each of its `samples` (an item's own win), by
# their generate: key (toolkit/config_modules.py SampleConfig, SampleItem); sizes as
# GenerateImageConfig renders them
SAMPLE_KEYS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "width": ("width", rendered_size),
    "height": ("height", rendered_size),
    "neg": ("negative_prompt", str),
    "guidance_scale": ("guidance_scale", float),
    "sample_steps": ("steps", int),
}
# the flags of a prompt (GenerateImageConfig._process_prompt_string: the text split at `--`,
# the flag the first word of each part): sd-scripts' and ai-toolkit's long names
INLINE_FLAGS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "n": ("negative_prompt", str),
    "w": ("width", rendered_size),
    "h": ("height", rendered_size),
    "d": ("seed", int),
    "seed": ("seed", int),
    "l": ("guidance_scale", float),
    "cfg": ("guidance_scale", float),
    "s": ("steps", int),
    "steps": ("steps", int),
}


def run_folders(root: Path) -> list[Path]:
    """`<training_folder>/<name>` itself, or every `<name>` below a training folder."""
    if (root / "samples").is_dir():
        return [root]
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "samples").is_dir())


def detect(root: Path, extensions: tuple[str, ...]) -> Detection | None:
    images = [p for run in run_folders(root) for p in image_files(run / "samples", extensions)]
    if not images:
        return None
    matched = sum(bool(SAMPLE_NAME.match(p.stem)) for p in images)
    return Detection(
        "ai-toolkit",
        matched,
        len(images),
        f"{matched} of {len(images)} images in samples/ are named {NAMING}",
    )


def read(options: Options) -> Found:
    root = options.root
    runs = run_folders(root)
    samples: list[Sample] = []
    ignored: list[Ignored] = []
    for run in runs:
        for path in image_files(run / "samples", options.extensions):
            file = relative(path, root)
            match = SAMPLE_NAME.match(path.stem)
            if not match:
                ignored.append(Ignored(file, f"name does not follow {NAMING}"))
                continue
            step = int(match["step"])
            samples.append(
                Sample(
                    path=path,
                    file=file,
                    checkpoint=checkpoint_name(step),
                    step=step,
                    prompt_index=int(match["count"]),
                    label=match["sample"],
                    time=match["time"].zfill(20),
                    run=run.name if run != root else "",
                )
            )
    found = select_run(
        Found("ai-toolkit", root, samples, ignored=ignored), options.training_run, "job names"
    )
    run = next((r for r in runs if r.name == (found.samples[0].run if found.samples else "")), root)
    source = options.prompt_file or (run / "config.yaml")
    prompts, trigger = read_job_prompts(source) if source.is_file() else ([], None)
    trigger = options.trigger_word or trigger
    by_count = dict(enumerate(prompts))
    by_index = {p.index: p for p in prompts}
    named = []
    for sample in found.samples:
        # `count` numbers the sampled prompts; the distributed name carries the index itself
        entry = (
            by_index.get(int(sample.label)) if sample.label else by_count.get(sample.prompt_index)
        )
        named.append(
            replace(
                sample,
                prompt=sample_prompt(entry.prompt, trigger) if entry else None,
                prompt_index=entry.index if entry else sample.prompt_index,
                label=None,
                seed=entry.seed if entry else None,
            )
        )
    notes = []
    if not source.is_file():
        notes.append(
            f"no {source.name} in {run}: set samples.prompt_file to the job's config file."
        )
    if trigger is None and any("[trigger]" in p.prompt for p in prompts):
        notes.append("the prompts use [trigger] but no trigger word is set: kept as written.")
    found = replace(
        found,
        samples=named,
        prompt_source=source if source.is_file() else None,
        checkpoint_files=checkpoint_files(run),
        notes=notes,
    )
    found = keep_newest(found)
    return replace(found, notes=found.notes + time_order_note(found))


def read_job_prompts(path: Path) -> tuple[list[SamplePrompt], str | None]:
    """The sampled prompts of an ai-toolkit job config, with the seed and settings each is
    sampled with.

    Seeds follow `BaseSDTrainProcess.sample`: `sample.seed` (0 if unset), plus the index when
    `walk_seed`, and a sample's own `seed` replaces the running seed (for the samples after it
    too); a prompt's `--d`/`--seed` flag is that image's seed only. Size, negative prompt
    (`neg`), guidance and steps: the block's, a sample's own, then the prompt's flags.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CkptEvalError(
            f"Cannot parse the ai-toolkit config: {exc}", path=path, fix="fix its YAML syntax."
        ) from exc
    processes = (data or {}).get("config", {}).get("process", []) if isinstance(data, dict) else []
    process = next((p for p in processes if isinstance(p, dict) and "sample" in p), None)
    if process is None:
        raise CkptEvalError(
            "The ai-toolkit config has no process with a `sample` section.",
            path=path,
            fix="point samples.prompt_file at the job config the samples were made with.",
        )
    sample = process["sample"] or {}
    items = (
        sample["samples"]
        if "samples" in sample
        else [{"prompt": p} for p in sample.get("prompts", [])]
    )
    start = _number(sample, "seed", int, path, "sample") if "seed" in sample else 0
    seed = start
    block = _stated(sample, path, "sample")
    prompts = []
    for index, item in enumerate(items or []):
        if not isinstance(item, dict) or item.get("prompt") is None:
            continue  # ai-toolkit skips it, and `count` numbers only the prompts it samples
        if sample.get("walk_seed", False):
            seed = start + index
        where = f"sample.samples[{index}]"
        if item.get("seed") is not None:
            seed = _number(item, "seed", int, path, where)
        text = str(item["prompt"])
        stated = {"seed": seed, **block, **_stated(item, path, where), **inline_flags(text, path)}
        prompts.append(SamplePrompt(prompt=text, index=index, **stated))
    trigger = process.get("trigger_word")
    return prompts, str(trigger) if trigger is not None else None


def _stated(section: dict[str, Any], path: Path, where: str) -> dict[str, Any]:
    """The settings `section` (the `sample` block, or one of its `samples`, at `where`) states."""
    out = {}
    for name, (key, convert) in SAMPLE_KEYS.items():
        value = section.get(name)
        if value is None or value is False or value == "":  # `neg: false` = no negative
            continue
        out[key] = _number(section, name, convert, path, where)
    return out


def _number(
    section: dict[str, Any], name: str, convert: Callable[[Any], Any], path: Path, where: str
) -> Any:
    """`section[name]` converted, or a stop naming where it is in the job config (a traceback
    otherwise: ai-toolkit would stop on it too)."""
    try:
        return convert(section[name])
    except (TypeError, ValueError) as exc:
        raise CkptEvalError(
            f"The ai-toolkit sample setting {where}.{name} = {section[name]!r} is not a number.",
            path=path,
            fix=f"write {where}.{name} as a number (or remove it).",
        ) from exc


def inline_flags(prompt: str, path: Path) -> dict[str, Any]:
    """The settings a prompt's own `--flags` state (`--n`, `--w`, `--h`, `--d`, `--l`, `--s`
    and their long names); other flags are ai-toolkit's own and change nothing here."""
    out = {}
    for part in prompt.strip().split("--")[1:]:
        flag = part.split(" ")[0].strip()
        content = part[len(flag) :].strip()
        if flag not in INLINE_FLAGS:
            continue
        key, convert = INLINE_FLAGS[flag]
        try:
            out[key] = convert(content)
        except ValueError as exc:
            raise CkptEvalError(
                f"The sample prompt {prompt!r} has --{flag} {content!r}, which is not a number "
                "(ai-toolkit stops on it too).",
                path=path,
                fix=f"write --{flag} with a number.",
            ) from exc
    return out


def sample_prompts(options: Options) -> tuple[list[SampleSettings], Path] | None:
    """The job config's sampled prompts (trigger word in, flags out) with the seed and
    settings each was sampled with, for the generate stage; None without a job config."""
    runs = run_folders(options.root)
    if options.training_run is not None:
        runs = [r for r in runs if r.name == options.training_run] or runs
    run = runs[0] if len(runs) == 1 else options.root
    source = options.prompt_file or (run / "config.yaml")
    if not source.is_file():
        return None
    prompts, trigger = read_job_prompts(source)
    trigger = options.trigger_word or trigger
    return [SampleSettings(sample_prompt(p.prompt, trigger), **p.stated()) for p in prompts], source


def sample_prompt(prompt: str, trigger: str | None) -> str:
    """The prompt the image was made from: trigger word in, `--flags` out (GenerateImageConfig)."""
    if trigger is not None:
        prompt = prompt.replace("[trigger]", trigger).replace("[name]", trigger)
    return prompt.strip().split("--")[0].strip()


def checkpoint_files(run: Path) -> dict[str, Path]:
    return {
        checkpoint_name(int(match["step"])): path
        for path in sorted(run.iterdir())
        if (match := CHECKPOINT_NAME.match(path.name))
        and (path.is_dir() or path.suffix == ".safetensors")
    }
