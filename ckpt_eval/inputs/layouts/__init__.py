"""Sample layouts: where each trainer writes its sample images and what their names say.

One module per layout (`samples.layout`), each with `detect(root, extensions)` (how well a
folder fits it, for `init`) and `read(options)` (the samples, each with its checkpoint, step or
epoch, prompt, prompt index and seed where known). Adding a trainer is adding a module here.
This module holds what the workflow and `init` share: reading the configured layout, the
per-checkpoint prompts, and telling which layout a folder has.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.inputs.layouts import (
    ai_toolkit,
    diffusers,
    folders,
    kohya,
    onetrainer,
    regex,
    simpletuner,
)
from ckpt_eval.inputs.layouts.base import (
    Detection,
    Found,
    Options,
    Sample,
    SampleSettings,
    checkpoint_order,
)
from ckpt_eval.inputs.prompts import group_by_checkpoint, read_prompt_file
from ckpt_eval.inputs.steps import check_plain_names

LAYOUTS: dict[str, ModuleType] = {
    "folders": folders,
    "regex": regex,
    "kohya": kohya,
    "ai-toolkit": ai_toolkit,
    "simpletuner": simpletuner,
    "onetrainer": onetrainer,
    "diffusers": diffusers,
}
TITLES = {
    "folders": "one folder per checkpoint",
    "regex": "a naming pattern (samples.pattern)",
    **{name: module.TITLE for name, module in LAYOUTS.items() if hasattr(module, "TITLE")},
}

# the layouts whose trainer keeps sample prompts with their settings (`sample_prompts`)
TRAINER_PROMPTS = {name for name, module in LAYOUTS.items() if hasattr(module, "sample_prompts")}

__all__ = ["LAYOUTS", "TITLES", "Found", "Options", "load_samples", "checkpoint_prompts"]


def options_from_config(config: dict[str, Any]) -> Options:
    samples = config["samples"]
    prompt_file = samples.get("prompt_file")
    return Options(
        root=Path(samples["root"]),
        extensions=tuple(samples["extensions"]),
        prompt_file=Path(prompt_file) if prompt_file else None,
        pattern=samples.get("pattern"),
        trigger_word=samples.get("trigger_word"),
        training_run=samples.get("training_run"),
    )


def read_layout(layout: str, options: Options) -> Found:
    if not options.root.is_dir():
        raise CkptEvalError(
            "samples.root is not a folder.",
            path=options.root,
            fix="set samples.root to the trainer's output folder (or the folder of samples).",
        )
    if options.pattern and layout != "regex":
        raise CkptEvalError(
            f"samples.pattern is set, but samples.layout is {layout}: the pattern is read only "
            "with layout regex.",
            fix="remove samples.pattern, or set samples.layout: regex.",
        )
    return LAYOUTS[layout].read(options)


def sample_prompts(layout: str, options: Options) -> tuple[list[SampleSettings], Path] | None:
    """The trainer's own sample prompts with the settings it sampled each with (a layout
    module's `sample_prompts`: kohya, ai-toolkit, SimpleTuner), and the file they are from;
    None when the layout has none or its file is not found."""
    reader = getattr(LAYOUTS[layout], "sample_prompts", None)
    return reader(options) if reader is not None else None


def load_samples(config: dict[str, Any]) -> Found:
    """The samples the workflow plans from, or a stop before any work with what to do."""
    layout = config["samples"]["layout"]
    found = read_layout(layout, options_from_config(config))
    if found.needs_generation:
        names = ", ".join(sorted(found.checkpoint_files, key=checkpoint_order)) or "none"
        raise CkptEvalError(
            f"{found.root} holds {TITLES[layout]} checkpoints ({names}) but no sample images: "
            "samples must be generated from each checkpoint before it can be evaluated.",
            path=found.root,
            fix='add a generate: section (base_model and prompts; see the README, "Generating '
            'samples") and the workflow renders them; or render them yourself, save them as one '
            "folder per checkpoint (step-500/, ...) with a prompts file, and set "
            "samples.layout: folders.",
        )
    check_plain_names(found.checkpoints(), found.root)
    if not found.samples:
        left = describe_ignored(found)
        raise CkptEvalError(
            f"No sample images found for samples.layout: {layout}."
            + (f" Left out: {left}" if left else ""),
            path=found.root,
            fix="check samples.root and samples.layout; `python -m ckpt_eval init --from "
            "<folder> --real <real images>` tells which layout a folder has.",
        )
    return found


def checkpoint_prompts(found: Found, config: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Checkpoint -> {file: prompt}, file relative to samples.root; a trainer layout's sample
    without a prompt stops the run here, before any work, unless `fallback_prompt` is set.

    (For `folders` a missing prompt is found when the prompts are paired, as it always was.)
    """
    prompts = merge_prompts(found, config.get("prompts"))
    if found.layout != "folders" and config.get("fallback_prompt") is None:
        missing = without_prompt(found, prompts)
        if missing:
            first = missing[0]
            which = f" (prompt {first.prompt_index})" if first.prompt_index is not None else ""
            raise CkptEvalError(
                f"{len(missing)} sample image(s) have no prompt, e.g. {first.file}{which}. "
                + " ".join(found.notes),
                path=found.prompt_source or found.root,
                fix="set samples.prompt_file to the trainer's prompt file, list them in a "
                "`prompts` file (file,prompt; file relative to samples.root), or set "
                "fallback_prompt (the report then flags those images).",
            )
    return prompts


def merge_prompts(found: Found, prompt_file: str | Path | None) -> dict[str, dict[str, str]]:
    """The trainer's own prompts, with the entries of a `prompts` file winning over them.

    For `folders` the `prompts` file is the only source, and its entries are taken per
    checkpoint folder as they always were (entries naming no image are reported later).
    """
    explicit = read_prompt_file(prompt_file) if prompt_file else None
    # grouped once by first folder: a scan of every entry per checkpoint would make planning
    # grow with checkpoints x files
    grouped = group_by_checkpoint(explicit) if explicit is not None else {}
    prompts: dict[str, dict[str, str]] = {}
    for name, samples in found.by_checkpoint().items():
        own = {s.file: s.prompt for s in samples if s.prompt and s.prompt.strip()}
        if explicit is not None:
            own.update(grouped.get(name, {}))
            own.update({s.file: explicit[s.file] for s in samples if s.file in explicit})
        prompts[name] = own
    return prompts


def checkpoint_seeds(found: Found) -> dict[str, dict[str, int]]:
    """Checkpoint -> {file: seed} for the samples whose seed the layout (or the generate plan)
    knows: two checkpoints' images of one prompt and seed pair up in the comparisons."""
    return {
        name: {s.file: s.seed for s in samples if s.seed is not None}
        for name, samples in found.by_checkpoint().items()
    }


def without_prompt(found: Found, prompts: dict[str, dict[str, str]]) -> list[Sample]:
    return [s for s in found.samples if s.file not in prompts[s.checkpoint]]


def describe_ignored(found: Found, limit: int = 5) -> str | None:
    """`N file(s): a (why), b (why) and N more`, or None when nothing was left out."""
    if not found.ignored:
        return None
    shown = "; ".join(f"{i.file} ({i.reason})" for i in found.ignored[:limit])
    more = len(found.ignored) - limit
    return f"{len(found.ignored)} file(s): {shown}" + (f"; and {more} more" if more > 0 else "")


def detect_layout(root: Path, extensions: tuple[str, ...]) -> str:
    """The one layout whose naming the folder's samples follow; never a guess.

    Two layouts that both fit, or none, stop with what was seen and what to pass instead.
    """
    if not root.is_dir():
        raise CkptEvalError("Folder not found.", path=root, fix="pass the trainer's output folder.")
    seen: list[Detection] = [
        d for module in LAYOUTS.values() if (d := module.detect(root, extensions)) is not None
    ]
    fits = [d for d in seen if d.matched > 0]
    if len(fits) == 1:
        return fits[0].layout
    if len(fits) > 1:
        listed = "; ".join(f"{TITLES[d.layout]} ({d.layout}): {d.evidence}" for d in fits)
        raise CkptEvalError(
            f"{root} fits more than one layout: {listed}.",
            path=root,
            fix=f"pass --trainer {' or --trainer '.join(d.layout for d in fits)}.",
        )
    if any(d.layout == "diffusers" for d in seen):
        return "diffusers"
    closest = max(seen, key=lambda d: d.seen, default=None)
    near = (
        f" The closest match is {TITLES[closest.layout]}: {closest.evidence}."
        if closest is not None
        else ""
    )
    raise CkptEvalError(
        f"{root} does not look like the output of a known trainer "
        f"({', '.join(TITLES[n] for n in LAYOUTS if n not in ('folders', 'regex'))}) "
        f"nor like one folder per checkpoint.{near}",
        path=root,
        fix=(
            f"if it is that trainer's output, pass --trainer {closest.layout} (init lists the "
            "files it cannot place); for another naming pass "
            if closest is not None
            else "pass "
        )
        + "--trainer regex --pattern '<regex with (?P<step>...)>', or arrange one folder per "
        "checkpoint and pass --trainer folders.",
    )
