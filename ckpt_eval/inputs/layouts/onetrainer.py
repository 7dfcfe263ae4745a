"""OneTrainer: samples in `<workspace>/samples/<i> - <prompt cut to 32 chars>/`.

Names follow `modules/trainer/GenericTrainer.py` (`__sample_loop`): the folder is
`f"{i} - {safe_prompt}{postfix}"` (`i` counts every sample definition, disabled ones too;
`safe_prompt` is `modules/util/path_util.py` `safe_filename`: letters, digits and ` ._-#`, cut to
32 characters; the postfix ` - no-ema` marks samples of the non-EMA weights); the file is
`<save_filename_prefix><YYYY-mm-dd_HH-MM-SS>-training-sample-<global step>-<epoch>-<epoch step>`
(`modules/util/TrainProgress.py` `filename_string`) plus the image format's extension. The full
prompts are in the sample definitions (default `training_samples/samples.json`), which the
config snapshot `<workspace>/config/<time>.json` and every backup also keep.
Checkpoints: `<workspace>/save/<prefix><time>-save-<step>-<epoch>-<epoch step><ext>`.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

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

TITLE = "OneTrainer"
FOLDER_NAME = re.compile(r"^(?P<index>\d+) - (?P<cut>.*?)(?P<no_ema> - no-ema)?$")
TIME = r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}"
SAMPLE_NAME = re.compile(
    rf"^(?P<prefix>.*?)(?P<time>{TIME})-training-sample-(?P<step>\d+)-(?P<epoch>\d+)-\d+$"
)
SAVE_NAME = re.compile(rf"^.*?{TIME}-save-(?P<step>\d+)-\d+-\d+")
NAMING = "samples/<i> - <prompt>/<time>-training-sample-<step>-<epoch>-<epoch step>"


def detect(root: Path, extensions: tuple[str, ...]) -> Detection | None:
    images = image_files(root / "samples", extensions)
    if not images:
        return None
    matched = sum(_parse(p) is not None for p in images)
    return Detection(
        "onetrainer",
        matched,
        len(images),
        f"{matched} of {len(images)} images in samples/ are named {NAMING}",
    )


def _parse(path: Path) -> tuple[re.Match[str], re.Match[str]] | None:
    folder, name = FOLDER_NAME.match(path.parent.name), SAMPLE_NAME.match(path.stem)
    return (folder, name) if folder and name and path.parent.parent.name == "samples" else None


def read(options: Options) -> Found:
    root = options.root
    samples: list[Sample] = []
    ignored: list[Ignored] = []
    for path in image_files(root / "samples", options.extensions):
        file = relative(path, root)
        parsed = _parse(path)
        if parsed is None:
            reason = (
                "a manual sample from OneTrainer's sampling window (its prompt is not recorded)"
                if path.parent.name == "custom"
                else f"not named {NAMING}"
            )
            ignored.append(Ignored(file, reason))
            continue
        folder, name = parsed
        step, no_ema = int(name["step"]), bool(folder["no_ema"])
        samples.append(
            Sample(
                path=path,
                file=file,
                checkpoint=checkpoint_name(step, prefix="no-ema-" if no_ema else ""),
                step=step,
                epoch=int(name["epoch"]),
                prompt_index=int(folder["index"]),
                label=folder["cut"],
                time=name["time"],
                run=name["prefix"],
            )
        )
    found = select_run(
        Found("onetrainer", root, samples, ignored=ignored),
        options.training_run,
        "save_filename_prefix values",
    )
    definitions, source = sample_definitions(options)
    named, mismatched = [], set()
    for sample in found.samples:
        entry = definitions[sample.prompt_index] if sample.prompt_index < len(definitions) else None
        prompt = entry.get("prompt") if entry else None
        if isinstance(prompt, str) and safe_filename(prompt) != sample.label:
            mismatched.add(sample.prompt_index)
            prompt = None
        random = entry is None or entry.get("random_seed", False)
        named.append(
            replace(
                sample,
                prompt=prompt if isinstance(prompt, str) else None,
                seed=None if random or entry.get("seed") is None else int(entry["seed"]),
            )
        )
    notes = []
    if source is None and named:
        notes.append(
            "no sample definitions found (config/*.json, backup/*/onetrainer_config/samples.json): "
            "set samples.prompt_file to the samples JSON the training used."
        )
    if mismatched:
        notes.append(
            f"sample definition(s) {', '.join(map(str, sorted(mismatched)))} in {source} do not "
            "match their samples/ folder names: those prompts changed since the samples were made."
        )
    found = replace(
        found,
        samples=named,
        prompt_source=source,
        checkpoint_files=saved_models(root),
        notes=notes,
    )
    found = keep_newest(found)
    return replace(found, notes=found.notes + time_order_note(found))


def safe_filename(text: str, max_length: int = 32) -> str:
    """OneTrainer's `path_util.safe_filename`: how a prompt becomes a folder name."""
    kept = "".join(c for c in text if c.isalnum() or c in " ._-#").strip()
    return kept[:max_length].strip()


def sample_definitions(options: Options) -> tuple[list[dict[str, Any]], Path | None]:
    """The sample definitions (a list of {prompt, seed, random_seed, ...}) and where they are.

    The configured file first (a samples JSON, or a OneTrainer config holding `samples` or
    naming a `sample_definition_file_name`); then the newest config snapshot of the workspace;
    then the newest backup's copy.
    """
    root = options.root
    candidates = (
        [options.prompt_file]
        if options.prompt_file
        else sorted((root / "config").glob("*.json"), reverse=True)
        + sorted(root.glob("backup/*/onetrainer_config/samples.json"), reverse=True)
    )
    for path in candidates:
        if not path.is_file():
            raise CkptEvalError(
                "samples.prompt_file not found.",
                path=path,
                fix="point it at OneTrainer's samples JSON (training_samples/samples.json).",
            )
        definitions = _definitions(path)
        if definitions is not None:
            return definitions, path
    if options.prompt_file:
        raise CkptEvalError(
            "samples.prompt_file holds no OneTrainer sample definitions.",
            path=options.prompt_file,
            fix="point it at a samples JSON (a list of {prompt, ...}) or a OneTrainer config.",
        )
    return [], None


def _definitions(path: Path) -> list[dict[str, Any]] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if isinstance(data, dict):
        if isinstance(data.get("samples"), list):
            data = data["samples"]
        elif isinstance(data.get("sample_definition_file_name"), str):
            named = Path(data["sample_definition_file_name"])
            return _definitions(named) if named.is_file() else None
    if isinstance(data, list) and all(isinstance(d, dict) for d in data):
        return data
    return None


def saved_models(root: Path) -> dict[str, Path]:
    folder = root / "save"
    if not folder.is_dir():
        return {}
    return {
        checkpoint_name(int(match["step"])): path
        for path in sorted(folder.iterdir())
        if (match := SAVE_NAME.match(path.name))
    }
