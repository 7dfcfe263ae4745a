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
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.inputs.layouts.base import (
    Detection,
    Found,
    Ignored,
    Options,
    Sample,
    checkpoint_name,
    image_files,
    keep_newest,
    relative,
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
class SamplePrompt:
    index: int
    prompt: str
    seed: int


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
    """The sampled prompts of an ai-toolkit job config, with the seed each is sampled with.

    Seeds follow `BaseSDTrainProcess.sample`: `sample.seed`, plus the index when `walk_seed`,
    and a sample's own `seed` replaces the running seed (for the samples after it too).
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
    start = int(sample.get("seed", 0))
    seed = start
    prompts = []
    for index, item in enumerate(items or []):
        if not isinstance(item, dict) or item.get("prompt") is None:
            continue  # ai-toolkit skips it, and `count` numbers only the prompts it samples
        if sample.get("walk_seed", False):
            seed = start + index
        if item.get("seed") is not None:
            seed = int(item["seed"])
        prompts.append(SamplePrompt(index, str(item["prompt"]), seed))
    trigger = process.get("trigger_word")
    return prompts, str(trigger) if trigger is not None else None


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
