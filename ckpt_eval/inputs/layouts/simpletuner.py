"""SimpleTuner: samples in `<output_dir>/validation_images/`.

Names follow `simpletuner/helpers/training/validation.py` (its `save_images`):
`step_<global step>_<shortname>_<image index>_<W>x<H>.png`; releases before the index was added
wrote `step_<step>_<shortname>_<resolution>.png`. The shortname is the key of the user prompt
library JSON (`{shortname: prompt}`, or `{shortname: {"prompt": ...}}` in newer releases), or
`validation` for `--validation_prompt`. Checkpoints: `<output_dir>/checkpoint-<step>/`.
"""

from __future__ import annotations

import json
import re
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
)

TITLE = "SimpleTuner"
SAMPLE_NAME = re.compile(r"^step_(?P<step>\d+)_(?P<label>.+)_(?P<index>\d+)_(?P<size>\d+x\d+)$")
LEGACY_NAME = re.compile(r"^step_(?P<step>\d+)_(?P<label>.+)_(?P<size>\d+x\d+|\d+|\(\d+, ?\d+\))$")
NAMING = "step_<step>_<shortname>_<index>_<W>x<H>"
PROMPT_SETTINGS = {"user_prompt_library", "validation_prompt_library", "validation_prompt"}


def sample_folder(root: Path) -> Path:
    return root if root.name == "validation_images" else root / "validation_images"


def detect(root: Path, extensions: tuple[str, ...]) -> Detection | None:
    images = image_files(sample_folder(root), extensions)
    if not images:
        return None
    matched = sum(bool(_match(p.stem)) for p in images)
    return Detection(
        "simpletuner",
        matched,
        len(images),
        f"{matched} of {len(images)} images in validation_images/ are named {NAMING}",
    )


def _match(stem: str) -> re.Match[str] | None:
    return SAMPLE_NAME.match(stem) or LEGACY_NAME.match(stem)


def read(options: Options) -> Found:
    root = options.root
    source = options.prompt_file or find_prompt_file(root)
    library = read_prompt_library(source) if source else {}
    order = {label: index for index, label in enumerate(library)}
    samples: list[Sample] = []
    ignored: list[Ignored] = []
    for path in image_files(sample_folder(root), options.extensions):
        file = relative(path, root)
        match = _match(path.stem)
        if not match:
            ignored.append(Ignored(file, f"name does not follow {NAMING}"))
            continue
        step, label = int(match["step"]), match["label"]
        index = match.groupdict().get("index")
        samples.append(
            Sample(
                path=path,
                file=file,
                checkpoint=checkpoint_name(step),
                step=step,
                prompt=library.get(label),
                prompt_index=order.get(label),
                label=label,
                variant=f"{index}_{match['size']}" if index is not None else match["size"],
            )
        )
    notes = []
    if source is None and samples:
        notes.append(
            "no prompt library found: set samples.prompt_file to the user prompt library JSON "
            "(or to SimpleTuner's config.json, which names it and the validation prompt)."
        )
    unknown = sorted({s.label for s in samples if s.prompt is None})
    if source is not None and unknown:
        notes.append(f"shortnames not in {source.name}: {', '.join(unknown)}.")
    found = Found(
        "simpletuner",
        root,
        samples,
        prompt_source=source,
        checkpoint_files=checkpoint_folders(root),
        ignored=ignored,
        notes=notes,
    )
    return keep_newest(found)


def sample_prompts(options: Options) -> tuple[list[SampleSettings], Path] | None:
    """The validation prompts (the prompt library, then `validation_prompt`) with SimpleTuner's
    validation settings, for the generate stage; None without a prompt library or config."""
    source = options.prompt_file or find_prompt_file(options.root)
    if source is None:
        return None
    stated = validation_settings(_config_of(source, options.root), source)
    return [SampleSettings(p, **stated) for p in read_prompt_library(source).values()], source


def _config_of(source: Path, root: Path) -> Path | None:
    """The SimpleTuner config.json that holds the validation settings: the source itself, or
    the one beside it or where `find_prompt_file` looks."""
    for config in (source, source.parent / "config.json", find_prompt_file(root)):
        if config is not None and config.name == "config.json" and config.is_file():
            if any(key.startswith("validation_") for key in _settings(config)):
                return config
    return None


def validation_settings(config: Path | None, source: Path) -> dict[str, Any]:
    """The settings SimpleTuner validates every prompt with (`helpers/training/validation.py`):
    a CPU or GPU generator seeded with `validation_seed or seed or 0` for each image (none with
    `validation_randomize`), `validation_guidance`, `validation_num_inference_steps`,
    `validation_negative_prompt`, and `validation_resolution` (`1024` or `1024x768`; of a
    comma list the first; a megapixel figure is not read). Nothing without a config."""
    if config is None:
        return {}
    settings = _settings(config)
    out: dict[str, Any] = {}
    if not settings.get("validation_randomize"):
        out["seed"] = _number(settings.get("validation_seed") or settings.get("seed") or 0, config)
    for name, key in (
        ("validation_guidance", "guidance_scale"),
        ("validation_num_inference_steps", "steps"),
    ):
        if settings.get(name) is not None:
            out[key] = _number(settings[name], config, float if key == "guidance_scale" else int)
    negative = settings.get("validation_negative_prompt")
    if isinstance(negative, str) and negative:
        out["negative_prompt"] = negative
    resolution = str(settings.get("validation_resolution") or "").split(",")[0].strip().lower()
    if resolution.isdigit():
        out["width"] = out["height"] = int(resolution)
    elif re.fullmatch(r"\d+x\d+", resolution):
        width, height = resolution.split("x")
        out["width"], out["height"] = int(width), int(height)
    return out


def _number(value: Any, config: Path, kind: type = int) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise CkptEvalError(
            f"A SimpleTuner validation setting is {value!r}, not a number.",
            path=config,
            fix="correct it in the config (SimpleTuner would not start with it either).",
        ) from exc


def find_prompt_file(root: Path) -> Path | None:
    """SimpleTuner's config (it names the prompt library and the validation prompt), else the
    prompt library, next to the output folder or in a `config/` beside it (SimpleTuner's own
    layout: `config/config.json`, `config/user_prompt_library.json`). A `config.json` counts
    only if it has those settings."""
    folders = (root, root / "config", root.parent / "config", root.parent.parent / "config")
    for folder in folders:
        config = folder / "config.json"
        if config.is_file() and _settings(config).keys() & PROMPT_SETTINGS:
            return config
    for folder in folders:
        if (folder / "user_prompt_library.json").is_file():
            return folder / "user_prompt_library.json"
    return None


def _settings(path: Path) -> dict[str, Any]:
    try:
        data = _load_json(path)
    except CkptEvalError:
        return {}
    return {str(k).removeprefix("--"): v for k, v in data.items()}


def read_prompt_library(path: Path) -> dict[str, str]:
    """`shortname -> prompt` from a prompt library JSON, or from SimpleTuner's config.json (its
    `user_prompt_library` / `validation_prompt_library` path and its `validation_prompt`)."""
    data = _load_json(path)
    settings = {str(k).removeprefix("--"): v for k, v in data.items()}
    if not PROMPT_SETTINGS & settings.keys():
        return {str(k): _prompt_text(v, path, k) for k, v in data.items()}
    library: dict[str, str] = {}
    for key in ("validation_prompt_library", "user_prompt_library"):
        named = settings.get(key)
        if isinstance(named, str):
            found = next(
                (
                    c
                    for c in (Path(named), path.parent / named, path.parent.parent / named)
                    if c.is_file()
                ),
                None,
            )
            if found is None:
                raise CkptEvalError(
                    f"{key} in the SimpleTuner config names a file that is not there: {named}.",
                    path=path,
                    fix="set samples.prompt_file to the prompt library JSON itself.",
                )
            library.update(read_prompt_library(found))
    if isinstance(settings.get("validation_prompt"), str):
        library["validation"] = settings["validation_prompt"]
    return library


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CkptEvalError(
            f"Cannot parse the prompt library: {exc}", path=path, fix="fix its JSON syntax."
        ) from exc
    if not isinstance(data, dict):
        raise CkptEvalError(
            "A SimpleTuner prompt library is a JSON object {shortname: prompt}.",
            path=path,
            fix="write it in that shape.",
        )
    return data


def _prompt_text(value: Any, path: Path, key: Any) -> str:
    if isinstance(value, dict) and isinstance(value.get("prompt"), str):
        return value["prompt"]
    if isinstance(value, str):
        return value
    raise CkptEvalError(
        f"Prompt library entry '{key}' is neither a prompt nor an object with 'prompt'.",
        path=path,
        fix='write it as "shortname": "prompt".',
    )


def checkpoint_folders(root: Path) -> dict[str, Path]:
    """`checkpoint-<step>/`, as SimpleTuner (and the diffusers example scripts) save them."""
    if not root.is_dir():
        return {}
    return {
        checkpoint_name(int(match.group(1))): path
        for path in sorted(root.iterdir())
        if path.is_dir() and (match := re.fullmatch(r"checkpoint-(\d+)", path.name))
    }
