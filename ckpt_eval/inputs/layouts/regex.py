"""Any other naming: a regular expression with named groups, matched against each image's path
relative to `samples.root` (forward slashes, the whole path must match).

`step` (or `epoch`) is required; `prompt_index`, `seed` and `run` are optional. Prompts come from
the `prompts` file, or from `samples.prompt_file` (a prompt list, numbered by `prompt_index`).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.inputs.layouts.base import (
    Detection,
    Found,
    Ignored,
    Options,
    Sample,
    checkpoint_name,
    image_files,
    relative,
    select_run,
)
from ckpt_eval.inputs.layouts.kohya import read_prompt_list

GROUPS = {"step", "epoch", "prompt_index", "seed", "run"}


def detect(root: Path, extensions: tuple[str, ...]) -> Detection | None:
    return None  # needs a pattern: chosen with --trainer regex --pattern, never guessed


def compile_pattern(pattern: str | None) -> re.Pattern[str]:
    if not pattern:
        raise CkptEvalError(
            "samples.layout is regex, but samples.pattern is not set.",
            fix=r"set samples.pattern, e.g. 'samples/(?P<step>\d+)_(?P<prompt_index>\d+)\.png'.",
        )
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise CkptEvalError(
            f"samples.pattern is not a valid regular expression: {exc}.",
            fix="correct it (Python `re` syntax).",
        ) from exc
    names = set(compiled.groupindex)
    if not names & {"step", "epoch"} or names - GROUPS:
        raise CkptEvalError(
            f"samples.pattern has the named groups {sorted(names) or 'none'}; it needs `step` "
            f"(or `epoch`) and may have only {', '.join(sorted(GROUPS))}.",
            fix=r"name the groups with (?P<step>\d+) and so on.",
        )
    return compiled


def read(options: Options) -> Found:
    pattern = compile_pattern(options.pattern)
    entries = read_prompt_list(options.prompt_file) if options.prompt_file else []
    samples: list[Sample] = []
    ignored: list[Ignored] = []
    for path in image_files(options.root, options.extensions):
        file = relative(path, options.root)
        match = pattern.fullmatch(file)
        if not match:
            ignored.append(Ignored(file, "does not match samples.pattern"))
            continue
        values = {k: v for k, v in match.groupdict().items() if v is not None}
        step = int(values["step"]) if "step" in values else None
        epoch = int(values["epoch"]) if "epoch" in values else None
        index = int(values["prompt_index"]) if "prompt_index" in values else None
        entry = entries[index] if index is not None and index < len(entries) else None
        samples.append(
            Sample(
                path=path,
                file=file,
                checkpoint=checkpoint_name(step, epoch),
                step=step,
                epoch=epoch,
                prompt=entry.prompt if entry else None,
                prompt_index=index,
                seed=int(values["seed"]) if "seed" in values else (entry.seed if entry else None),
                run=values.get("run", ""),
            )
        )
    found = Found(
        "regex", options.root, samples, prompt_source=options.prompt_file, ignored=ignored
    )
    if options.prompt_file and "prompt_index" not in pattern.groupindex:
        found = replace(
            found, notes=["samples.prompt_file is used only with a prompt_index group."]
        )
    # no keep_newest: a pattern may leave several images of one prompt apart by unnamed parts
    return select_run(found, options.training_run, "values of the run group")
