"""Pair every sample image with its own prompt: the original report scored one generic prompt."""

from __future__ import annotations

import codecs
import csv
import io
import json
from pathlib import Path, PurePosixPath
from typing import Any

from ckpt_eval.errors import CkptEvalError


def _normalise(file: str) -> str:
    text = str(file).strip().replace("\\", "/")
    return PurePosixPath(text).as_posix().removeprefix("./")


# Byte-order marks and their codecs, longest first (UTF-32 LE's mark starts with UTF-16 LE's).
# Excel's "Unicode text" export is UTF-16 with a mark (and tabs); "CSV UTF-8" has UTF-8's.
_BOMS = [
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
]
# CSV delimiters tried on the header line: the one that splits it into `file` and `prompt` wins
# (a header cannot be misread: it holds the two column names, not prompts full of commas).
DELIMITERS = (",", ";", "\t", "|")
TO_UTF8 = (
    "save it as UTF-8 (Excel: Save As > CSV UTF-8; a text editor: encoding UTF-8), or as UTF-16 "
    "with a byte-order mark."
)

Row = tuple[str, str, str]  # file, prompt, where in the prompt file (for messages)


def read_prompt_file(path: str | Path) -> dict[str, str]:
    """`file -> prompt` from CSV (file,prompt), JSON (object or list of objects) or JSONL.

    Text is UTF-8 (with or without a byte-order mark) or UTF-16/32 with one; CSV is separated
    by commas, semicolons, tabs or `|`, as its header line shows. One file given two different
    prompts stops the run naming both: which one the images were made from cannot be guessed.
    """
    path = Path(path)
    if not path.is_file():
        raise CkptEvalError(
            "Prompt file not found.",
            path=path,
            fix="set `prompts` to a CSV (file,prompt), JSON or JSONL file.",
        )
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise CkptEvalError(
            f"Unknown prompt file type '{suffix}'.",
            path=path,
            fix="use .csv (file,prompt), .json or .jsonl.",
        )
    try:
        rows = _READERS[suffix](_text(path), path)
    except (json.JSONDecodeError, csv.Error) as exc:
        raise CkptEvalError(
            f"Cannot parse the prompt file: {exc}", path=path, fix="fix its syntax."
        ) from exc
    prompts: dict[str, str] = {}
    first_seen: dict[str, str] = {}
    for file, prompt, where in rows:
        key = _normalise(file)
        if key.startswith("/") or key == ".." or key.startswith("../") or "/../" in key:
            raise CkptEvalError(
                f"The prompt file names '{file}', a path outside samples.root.",
                path=path,
                fix="name every image relative to samples.root, without '..' or a leading '/'.",
            )
        if key in prompts and prompts[key] != prompt:
            raise _two_prompts(
                path,
                key,
                f"{_quote(prompts[key])} ({first_seen[key]})",
                f"{_quote(prompt)} ({where})",
            )
        prompts[key] = prompt
        first_seen.setdefault(key, where)
    return prompts


def _text(path: Path) -> str:
    """The file's text, by its byte-order mark, else UTF-8; anything else stops with the fix."""
    data = path.read_bytes()
    for bom, codec in _BOMS:
        if data.startswith(bom):
            encoding = codec
            break
    else:
        if b"\x00" in data[:4096]:
            raise CkptEvalError(
                "The prompt file looks like UTF-16 without a byte-order mark (it has NUL bytes).",
                path=path,
                fix=TO_UTF8,
            )
        encoding = "utf-8"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise CkptEvalError(
            f"The prompt file is not {encoding} text: {exc}", path=path, fix=TO_UTF8
        ) from exc


def _csv_rows(text: str, path: Path) -> list[Row]:
    header = text.split("\n", 1)[0].rstrip("\r")
    delimiter = next(
        (
            d
            for d in DELIMITERS
            if {"file", "prompt"} <= set(next(csv.reader([header], delimiter=d), []))
        ),
        None,
    )
    if delimiter is None:
        raise CkptEvalError(
            f"Prompt CSV needs the columns file,prompt; its first line is {header!r}.",
            path=path,
            fix="add a header line `file,prompt` (commas, semicolons or tabs between columns).",
        )
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    return [(r["file"] or "", r["prompt"] or "", f"line {reader.line_num}") for r in reader]


def _jsonl_rows(text: str, path: Path) -> list[Row]:
    return [
        _item(json.loads(line), path, f"line {number}")
        for number, line in enumerate(text.split("\n"), 1)
        if line.strip()
    ]


def _json_rows(text: str, path: Path) -> list[Row]:
    def distinct_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        # json keeps the last of a key given twice; a file given two prompts must not pass
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen and seen[key] != value:
                raise _two_prompts(path, key, _quote(str(seen[key])), _quote(str(value)))
            seen[key] = value
        return seen

    data = json.loads(text, object_pairs_hook=distinct_keys)
    if isinstance(data, dict):
        return [(str(k), str(v), f"key {k!r}") for k, v in data.items()]
    if isinstance(data, list):
        return [_item(item, path, f"item {i}") for i, item in enumerate(data)]
    raise CkptEvalError(
        "Prompt JSON must be an object {file: prompt} or a list of {file, prompt}.",
        path=path,
        fix="rewrite it in one of those two shapes.",
    )


_READERS = {".csv": _csv_rows, ".jsonl": _jsonl_rows, ".json": _json_rows}


def _two_prompts(path: Path, key: str, first: str, second: str) -> CkptEvalError:
    """Which of two prompts an image was made from cannot be guessed: both are named."""
    return CkptEvalError(
        f"Two different prompts are given for '{key}': {first} and {second}.",
        path=path,
        fix="keep the one entry for that image that holds the prompt it was made from.",
    )


def _quote(prompt: str, limit: int = 80) -> str:
    shown = prompt if len(prompt) <= limit else prompt[: limit - 3] + "..."
    return repr(shown)


def _item(item: Any, path: Path, where: str) -> Row:
    if not isinstance(item, dict) or "file" not in item or "prompt" not in item:
        raise CkptEvalError(
            f"Prompt entry at {where} needs the keys 'file' and 'prompt'.",
            path=path,
            fix='write each entry as {"file": "ckpt/img.png", "prompt": "..."}.',
        )
    return str(item["file"]), str(item["prompt"]), where


def prompts_of_checkpoint(prompts: dict[str, str], name: str) -> dict[str, str]:
    """The entries under one checkpoint's folder (files are relative to samples.root)."""
    return group_by_checkpoint(prompts).get(name, {})


def group_by_checkpoint(prompts: dict[str, str]) -> dict[str, dict[str, str]]:
    """Checkpoint folder -> its entries, in one pass over the prompt file's entries."""
    grouped: dict[str, dict[str, str]] = {}
    for file, prompt in prompts.items():
        grouped.setdefault(file.split("/", 1)[0], {})[file] = prompt
    return grouped


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
