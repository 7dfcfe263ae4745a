"""kohya-ss sd-scripts (and the kohya_ss GUI): samples in `<output_dir>/sample/`.

Names follow `library/train_util.py` (`sample_image_inference`):
`<output_name>_<num>_<prompt index:02d>_<YYYYmmddHHMMSS>[_<seed>].png`, where `<num>` is the
global step (`%06d`) or `e` + the epoch (`%06d`) for end-of-epoch samples, and the prompt index
counts the prompts of the `--sample_prompts` file after comments and blank lines are dropped.
Checkpoints: `<name>-<epoch:06d>`, `<name>-step<step:08d>` and the final `<name>`; the
safetensors header's `ss_epoch`/`ss_steps` tell which step an epoch ended at.
"""

from __future__ import annotations

import json
import re
import struct
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

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

TITLE = "kohya-ss sd-scripts"
SAMPLE_NAME = re.compile(
    r"^(?:(?P<run>.+)_)?(?P<num>e?\d{6,})_(?P<index>\d{2,})_(?P<time>\d{14})(?:_(?P<seed>\d+))?$"
)
NAMING = "<output_name>_<step or e+epoch>_<prompt index>_<YYYYmmddHHMMSS>[_<seed>]"
MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt")
# sd-scripts' names when --output_name is not given (train_util.py DEFAULT_*_NAME)
DEFAULT_EPOCH_NAME, DEFAULT_STEP_NAME = "epoch", "at"


def _steps(value: Any) -> int:
    return max(1, min(1000, int(value)))  # sd-scripts clamps --s to 1..1000


# sd-scripts' `line_to_prompt_dict` (library/train_util.py): every part of a line split at
# " --" (the prompt itself too) is matched from its start, case-insensitive, against these;
# a value that does not convert is ignored there (logged), and so here
FLAGS: tuple[tuple[str, re.Pattern[str], Callable[[str], Any]], ...] = (
    ("width", re.compile(r"w (\d+)", re.IGNORECASE), rendered_size),
    ("height", re.compile(r"h (\d+)", re.IGNORECASE), rendered_size),
    ("seed", re.compile(r"d (\d+)", re.IGNORECASE), int),
    ("steps", re.compile(r"s (\d+)", re.IGNORECASE), _steps),
    ("guidance_scale", re.compile(r"l ([\d\.]+)", re.IGNORECASE), float),
    ("negative_prompt", re.compile(r"n (.+)", re.IGNORECASE), str),
)
# the keys of a .toml/.json prompt entry, by their generate: key: `sample_image_inference`
# takes them as they are (the 1..1000 clamp of steps is `line_to_prompt_dict`'s, text lines
# only) and rounds the size as for a line
ENTRY_KEYS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "seed": ("seed", int),
    "negative_prompt": ("negative_prompt", str),
    "width": ("width", rendered_size),
    "height": ("height", rendered_size),
    "sample_steps": ("steps", int),
    "scale": ("guidance_scale", float),
}


def sample_folder(root: Path) -> Path:
    """`<output_dir>/sample`, or the folder itself when the user points at `sample/`."""
    return root / "sample" if (root / "sample").is_dir() else root


def detect(root: Path, extensions: tuple[str, ...]) -> Detection | None:
    folder = sample_folder(root)
    images = image_files(folder, extensions) if folder != root else _flat(root, extensions)
    matched = sum(bool(SAMPLE_NAME.match(p.stem)) for p in images)
    if not images:
        return None
    return Detection(
        "kohya",
        matched,
        len(images),
        f"{matched} of {len(images)} images in {folder.name}/ are named {NAMING}",
    )


def _flat(folder: Path, extensions: tuple[str, ...]) -> list[Path]:
    return [p for p in image_files(folder, extensions) if p.parent == folder]


def read(options: Options) -> Found:
    root = options.root
    samples: list[Sample] = []
    ignored: list[Ignored] = []
    for path in image_files(sample_folder(root), options.extensions):
        file = relative(path, root)
        match = SAMPLE_NAME.match(path.stem)
        if not match:
            ignored.append(Ignored(file, f"name does not follow {NAMING}"))
            continue
        num = match["num"]
        samples.append(
            Sample(
                path=path,
                file=file,
                checkpoint="",
                step=None if num.startswith("e") else int(num),
                epoch=int(num[1:]) if num.startswith("e") else None,
                prompt_index=int(match["index"]),
                seed=int(match["seed"]) if match["seed"] else None,
                time=match["time"],
                run=match["run"] or "",
            )
        )
    found = Found("kohya", root, samples, ignored=ignored)
    if samples:
        found = select_run(found, options.training_run, "kohya --output_name values")
        run = found.samples[0].run or ""
    else:  # no samples (they are to be generated): the run is named by its checkpoint files
        run = options.training_run or model_name(root)
    models = model_files(root, run)
    # without samples (to be generated), every epoch checkpoint is named
    epochs = {s.epoch for s in found.samples if s.epoch is not None} or set(models.by_epoch)
    steps_of = epoch_steps(epochs, models)
    source = prompt_source(options)
    entries = read_prompt_list(source) if source else []
    named: list[Sample] = []
    reseeded: list[str] = []
    for sample in found.samples:
        step = sample.step if sample.epoch is None else steps_of.get(sample.epoch)
        entry = entries[sample.prompt_index] if sample.prompt_index < len(entries) else None
        if entry and entry.seed is not None and sample.seed not in (None, entry.seed):
            reseeded.append(sample.file)
        named.append(
            replace(
                sample,
                checkpoint=checkpoint_name(step, sample.epoch),
                step=step,
                prompt=entry.prompt if entry else None,
                seed=sample.seed if sample.seed is not None else (entry.seed if entry else None),
            )
        )
    notes = _notes(named, source, entries, reseeded)
    found = replace(
        found,
        samples=named,
        prompt_source=source,
        checkpoint_files=_checkpoint_files(models, steps_of),
        notes=notes,
    )
    found = keep_newest(found)
    return replace(found, notes=found.notes + time_order_note(found))


def _notes(
    samples: list[Sample], source: Path | None, entries: list[SampleSettings], reseeded: list[str]
) -> list[str]:
    notes = []
    if source is None and samples:
        notes.append(
            "no prompt file found (looked for sample/prompt.txt and a training .toml naming "
            "sample_prompts): set samples.prompt_file to the --sample_prompts file."
        )
    beyond = sorted({s.prompt_index for s in samples if s.prompt_index >= len(entries)})
    if source is not None and beyond:
        notes.append(
            f"{source.name} lists {len(entries)} prompts, but samples use prompt index "
            f"{', '.join(map(str, beyond))}: those have no prompt."
        )
    if reseeded:
        notes.append(
            f"{len(reseeded)} sample(s) (e.g. {reseeded[0]}) carry a seed that differs from their "
            f"prompt's --d in {source.name if source else 'the prompt file'}: the prompt file may "
            "have changed since training."
        )
    if any(s.epoch is not None and s.step is None for s in samples):
        notes.append(
            "end-of-epoch samples are named by epoch: no checkpoint's safetensors metadata "
            "(ss_epoch, ss_steps) maps every epoch to its step."
        )
    return notes


def prompt_source(options: Options) -> Path | None:
    """The `--sample_prompts` file: the one configured, the GUI's `sample/prompt.txt`, or the one
    a training `.toml` in the output folder names."""
    if options.prompt_file is not None:
        if not options.prompt_file.is_file():
            raise CkptEvalError(
                "samples.prompt_file not found.",
                path=options.prompt_file,
                fix="point it at the file passed to sd-scripts as --sample_prompts.",
            )
        return options.prompt_file
    default = sample_folder(options.root) / "prompt.txt"
    if default.is_file():
        return default
    for config in sorted(options.root.glob("*.toml")):
        try:
            named = tomllib.loads(config.read_text(encoding="utf-8")).get("sample_prompts")
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            continue
        if isinstance(named, str):
            for candidate in (Path(named), config.parent / named):
                if candidate.is_file():
                    return candidate
    return None


def read_prompt_list(path: Path) -> list[SampleSettings]:
    """The prompts of an sd-scripts `--sample_prompts` file, in the order that numbers them,
    each with the settings sd-scripts sampled it with.

    .txt: one prompt per line; a line starting with `#` and a blank line are skipped before
    counting (as sd-scripts does: a `#` after leading spaces is a prompt); the prompt is the text
    before the first ` --`, and the flags `--n` (negative prompt), `--w`, `--h` (size, taken down
    to a multiple of 8 as sd-scripts renders it), `--d` (seed), `--s` (steps), `--l` (guidance
    scale) its settings. .toml: `[prompt]` defaults merged into each `[[prompt.subset]]`.
    .json: a list of prompt lines or of objects with `prompt`; objects name the settings
    `negative_prompt`, `width`, `height`, `seed`, `sample_steps` and `scale`.
    """
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8-sig")
        if suffix == ".txt":
            items: list = [ln.strip() for ln in text.splitlines() if ln.strip() and ln[0] != "#"]
        elif suffix == ".toml":
            table = tomllib.loads(text).get("prompt")
            if not isinstance(table, dict) or not isinstance(table.get("subset"), list):
                raise CkptEvalError(
                    "A prompt .toml needs a [prompt] table with [[prompt.subset]] entries.",
                    path=path,
                    fix="use the sd-scripts prompt format, or a .txt with one prompt a line.",
                )
            defaults = {k: v for k, v in table.items() if k != "subset"}
            items = [{**defaults, **subset} for subset in table["subset"]]
        elif suffix == ".json":
            items = json.loads(text)
            if not isinstance(items, list):
                raise CkptEvalError(
                    "A prompt .json must be a list (of prompt lines or {prompt, seed} objects).",
                    path=path,
                    fix="write it as a JSON list.",
                )
        else:
            raise CkptEvalError(
                f"Unknown prompt list type '{suffix}'.",
                path=path,
                fix="use .txt (one prompt a line), .toml or .json, as sd-scripts reads them.",
            )
    except (UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CkptEvalError(
            f"Cannot parse the prompt list: {exc}", path=path, fix="fix its syntax (UTF-8)."
        ) from exc
    return [_entry(item, path) for item in items]


def _entry(item: object, path: Path) -> SampleSettings:
    settings: dict[str, Any] = {}
    if isinstance(item, str):
        parts = item.split(" --")
        for part in parts:  # sd-scripts tests every part, the prompt included
            for key, pattern, convert in FLAGS:
                if match := pattern.match(part):
                    try:
                        settings[key] = convert(match.group(1))
                    except ValueError:
                        pass  # sd-scripts logs the part and samples without it
                    break
        return SampleSettings(parts[0].strip(), **settings)
    if isinstance(item, dict) and isinstance(item.get("prompt"), str):
        for name, (key, convert) in ENTRY_KEYS.items():
            if item.get(name) is not None:
                try:
                    settings[key] = convert(item[name])
                except (TypeError, ValueError) as exc:
                    raise CkptEvalError(
                        f"Prompt list entry {item['prompt']!r}: {name} = {item[name]!r} is not "
                        "a number.",
                        path=path,
                        fix=f"write {name} as a number, or remove it.",
                    ) from exc
        return SampleSettings(item["prompt"].strip(), **settings)
    raise CkptEvalError(
        f"Prompt list entry {item!r} is neither a prompt line nor an object with 'prompt'.",
        path=path,
        fix='write each entry as a string or as {"prompt": ..., "seed": ...}.',
    )


def sample_prompts(options: Options) -> tuple[list[SampleSettings], Path] | None:
    """The `--sample_prompts` file's prompts with their flags, for the generate stage; None
    when there is no prompt file to find."""
    source = prompt_source(options)
    return (read_prompt_list(source), source) if source else None


@dataclass(frozen=True)
class ModelFiles:
    by_epoch: dict[int, Path]
    by_step: dict[int, Path]


def model_files(root: Path, run: str) -> ModelFiles:
    """The run's checkpoint files `<name>-<epoch:06d>` and `<name>-step<step:08d>` (files, or
    folders in diffusers format). The final `<name>` carries no position in its name."""
    epoch_name = run or DEFAULT_EPOCH_NAME
    step_name = run or DEFAULT_STEP_NAME
    by_epoch: dict[int, Path] = {}
    by_step: dict[int, Path] = {}
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        stem = path.name
        for suffix in MODEL_SUFFIXES:
            stem = stem.removesuffix(suffix)
        if stem == path.name and not path.is_dir():
            continue
        if match := re.fullmatch(re.escape(epoch_name) + r"-(\d{6})", stem):
            by_epoch[int(match.group(1))] = path
        elif match := re.fullmatch(re.escape(step_name) + r"-step(\d{8})", stem):
            by_step[int(match.group(1))] = path
    return ModelFiles(by_epoch, by_step)


def model_name(root: Path) -> str:
    """The output name of the `<name>-<epoch:06d>` / `<name>-step<step:08d>` checkpoint files,
    for a folder without samples to read it from; "" when there are none."""
    pattern = re.compile(r"(.+)-(?:\d{6}|step\d{8})")
    names = sorted(
        {
            match.group(1)
            for path in (root.glob("*.safetensors") if root.is_dir() else [])
            if (match := pattern.fullmatch(path.stem))
        }
    )
    if set(names) <= {DEFAULT_EPOCH_NAME, DEFAULT_STEP_NAME}:
        return ""  # sd-scripts' names when no --output_name was given
    if len(names) > 1:
        raise CkptEvalError(
            f"{root} holds the checkpoints of {len(names)} training runs: {', '.join(names)}.",
            path=root,
            fix="set samples.training_run to the --output_name of the run to evaluate.",
        )
    return names[0] if names else ""


def safetensors_metadata(path: Path) -> dict[str, str]:
    """The `__metadata__` of a .safetensors header (8-byte length, then JSON): no weights read."""
    if path.suffix != ".safetensors" or not path.is_file():
        return {}
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > 100_000_000:
                return {}
            header = json.loads(handle.read(length))
    except (OSError, struct.error, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return metadata if isinstance(metadata, dict) else {}


def epoch_steps(epochs: set[int], models: ModelFiles) -> dict[int, int]:
    """Epoch -> the global step it ended at, from the epoch checkpoints' metadata.

    Every wanted epoch with its own checkpoint is read directly; otherwise, when all the
    checkpoints agree on one number of steps per epoch, that number maps the rest. Anything
    short of that maps nothing, so a run's checkpoints are all named one way.
    """
    known: dict[int, int] = {}
    for epoch, path in models.by_epoch.items():
        meta = safetensors_metadata(path)
        if meta.get("ss_epoch") == str(epoch) and str(meta.get("ss_steps", "")).isdigit():
            known[epoch] = int(meta["ss_steps"])
    if epochs <= known.keys():
        return {e: known[e] for e in epochs}
    per_epoch = {steps // epoch for epoch, steps in known.items() if epoch and steps % epoch == 0}
    if (
        known
        and len(per_epoch) == 1
        and all(epoch and s % epoch == 0 for epoch, s in known.items())
    ):
        rate = per_epoch.pop()
        return {e: e * rate for e in epochs}
    return {}


def _checkpoint_files(models: ModelFiles, steps_of: dict[int, int]) -> dict[str, Path]:
    files = {checkpoint_name(step): path for step, path in models.by_step.items()}
    for epoch, path in models.by_epoch.items():
        files[checkpoint_name(steps_of.get(epoch), epoch)] = path
    return files
