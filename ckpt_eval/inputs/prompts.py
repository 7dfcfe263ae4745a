"""Pair every sample image with its own prompt: the original report scored one generic prompt."""

from __future__ import annotations

import csv
import json
from pathlib import Path, PurePosixPath
from typing import Any

from ckpt_eval.errors import CkptEvalError


def _normalise(file: str) -> str:
    text = str(file).strip().replace("\\", "/")
    return PurePosixPath(text).as_posix().removeprefix("./")


def read_prompt_file(path: str | Path) -> dict[str, str]:
    """`file -> prompt` from CSV (file,prompt), JSON (object or list of objects) or JSONL."""
    path = Path(path)
    if not path.is_file():
        raise CkptEvalError(
            "Prompt file not found.",
            path=path,
            fix="set `prompts` to a CSV (file,prompt), JSON or JSONL file.",
        )
    suffix = path.suffix.lower()
    rows: list[tuple[str, str]] = []
    try:
        if suffix == ".csv":
            with open(path, encoding="utf-8-sig", newline="") as handle:
                reader = csv.DictReader(handle)
                if not reader.fieldnames or not {"file", "prompt"} <= set(reader.fieldnames):
                    raise CkptEvalError(
                        f"Prompt CSV needs the columns file,prompt; it has {reader.fieldnames}.",
                        path=path,
                        fix="add a header line `file,prompt`.",
                    )
                rows = [(r["file"] or "", r["prompt"] or "") for r in reader]
        elif suffix == ".jsonl":
            with open(path, encoding="utf-8-sig") as handle:
                for number, line in enumerate(handle, 1):
                    if line.strip():
                        item = json.loads(line)
                        rows.append(_item(item, path, f"line {number}"))
        elif suffix == ".json":
            with open(path, encoding="utf-8-sig") as handle:
                data = json.load(handle)
            if isinstance(data, dict):
                rows = [(str(k), str(v)) for k, v in data.items()]
            elif isinstance(data, list):
                rows = [_item(item, path, f"item {i}") for i, item in enumerate(data)]
            else:
                raise CkptEvalError(
                    "Prompt JSON must be an object {file: prompt} or a list of {file, prompt}.",
                    path=path,
                    fix="rewrite it in one of those two shapes.",
                )
        else:
            raise CkptEvalError(
                f"Unknown prompt file type '{suffix}'.",
                path=path,
                fix="use .csv (file,prompt), .json or .jsonl.",
            )
    except (json.JSONDecodeError, UnicodeDecodeError, csv.Error) as exc:
        raise CkptEvalError(
            f"Cannot parse the prompt file: {exc}", path=path, fix="fix its syntax (UTF-8)."
        ) from exc
    prompts: dict[str, str] = {}
    for file, prompt in rows:
        key = _normalise(file)
        if key.startswith("/") or key == ".." or key.startswith("../") or "/../" in key:
            raise CkptEvalError(
                f"The prompt file names '{file}', a path outside samples.root.",
                path=path,
                fix="name every image relative to samples.root, without '..' or a leading '/'.",
            )
        if key in prompts and prompts[key] != prompt:
            raise CkptEvalError(
                f"Two different prompts are given for '{key}'.",
                path=path,
                fix="keep one line per image.",
            )
        prompts[key] = prompt
    return prompts


def _item(item: Any, path: Path, where: str) -> tuple[str, str]:
    if not isinstance(item, dict) or "file" not in item or "prompt" not in item:
        raise CkptEvalError(
            f"Prompt entry at {where} needs the keys 'file' and 'prompt'.",
            path=path,
            fix='write each entry as {"file": "ckpt/img.png", "prompt": "..."}.',
        )
    return str(item["file"]), str(item["prompt"])


def prompts_of_checkpoint(prompts: dict[str, str], name: str) -> dict[str, str]:
    """The entries under one checkpoint's folder (files are relative to samples.root)."""
    return {f: p for f, p in prompts.items() if f.split("/", 1)[0] == name}


def pair_prompts(
    manifest: dict[str, Any],
    prompts: dict[str, str],
    prompt_file: str | Path,
    fallback: str | None,
    seeds: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Each manifest image with its prompt (and its seed where the trainer's naming or the
    generate plan gives one, else None); a missing prompt is an error unless a fallback is set.

    An empty (or all-blank) prompt counts as missing: CLIP would score the image against
    nothing, a number with no meaning.

    Prompt entries under this checkpoint's folder that name no image are listed (a typo there
    would otherwise only show up as a missing prompt elsewhere).
    """
    name = manifest["name"]
    pairs: list[dict[str, Any]] = []
    missing: list[str] = []
    for image in manifest["images"]:
        file = image["file"]
        if file in prompts and prompts[file].strip():
            pairs.append({"file": file, "prompt": prompts[file], "fallback": False})
        elif fallback is not None:
            pairs.append({"file": file, "prompt": fallback, "fallback": True})
        else:
            missing.append(file)
            continue
        pairs[-1]["seed"] = (seeds or {}).get(file)
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise CkptEvalError(
            f"{len(missing)} image(s) of checkpoint '{name}' have no prompt (or an empty one): "
            f"{shown}.",
            path=prompt_file,
            fix="add a line `file,prompt` for each (file relative to samples.root), or set "
            "fallback_prompt in the config (the report then flags those images).",
        )
    known = {image["file"] for image in manifest["images"]}
    skipped = {s.get("file") for s in manifest.get("skipped", [])}
    orphans = sorted(
        f for f in prompts_of_checkpoint(prompts, name) if f not in known and f not in skipped
    )
    return {
        "name": name,
        "pairs": pairs,
        "fallback_count": sum(p["fallback"] for p in pairs),
        "prompts_without_image": orphans,
    }
