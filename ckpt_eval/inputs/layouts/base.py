"""What every layout reader returns: the sample images, each with what its trainer says about it.

A reader turns one trainer's way of naming files into `Sample` records. Everything after that
(grouping by checkpoint, picking one training run, keeping the newest of duplicates, listing
what was left out) is shared here, so that every trainer is treated the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.inputs.discover import list_images, relative_file
from ckpt_eval.inputs.steps import parse_position


@dataclass(frozen=True)
class Options:
    """What a reader needs besides the folder: the `samples.*` keys of the config."""

    root: Path
    extensions: tuple[str, ...]
    prompt_file: Path | None = None
    pattern: str | None = None
    trigger_word: str | None = None
    training_run: str | None = None


@dataclass(frozen=True)
class Sample:
    """One sample image and what its trainer's naming says about it.

    `checkpoint` is named so that `steps.parse_position` recovers the step (or epoch): the whole
    workflow sorts and labels checkpoints by name. `time` is the trainer's own timestamp (sorts
    as text) and `variant` tells apart images of one prompt at one checkpoint (e.g. SimpleTuner's
    per-resolution index); together they decide which of two duplicates is the newer one.
    """

    path: Path
    file: str
    checkpoint: str
    step: int | None = None
    epoch: int | None = None
    prompt: str | None = None
    prompt_index: int | None = None
    label: str | None = None
    seed: int | None = None
    time: str | None = None
    variant: str | None = None
    run: str | None = None


@dataclass(frozen=True)
class SampleSettings:
    """One of a trainer's sample prompts and the settings the trainer states for it (its
    prompt-file flags, its sample block, its validation settings); None = not stated.

    The generate stage renders the prompt with these where they are stated, so that its images
    are drawn as the trainer drew its own samples, and its seed also keys the pairing.
    """

    prompt: str
    seed: int | None = None
    negative_prompt: str | None = None
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    guidance_scale: float | None = None

    def stated(self) -> dict[str, Any]:
        """The settings the trainer states (prompt excluded), by their `generate:` key."""
        return {key: getattr(self, key) for key in STATED if getattr(self, key) is not None}


# the settings a trainer may state for a prompt, named as the generate: section names them (the
# fields of SampleSettings but the prompt: one list for the readers and the generate plan)
STATED: tuple[str, ...] = tuple(f.name for f in fields(SampleSettings) if f.name != "prompt")


def rendered_size(value: Any) -> int:
    """A width or height as sd-scripts and ai-toolkit render it: down to a multiple of 8, at
    least 64 (`max(64, x - x % 8)` in both)."""
    value = int(value)
    return max(64, value - value % 8)


@dataclass(frozen=True)
class Detection:
    """How well a folder fits a layout: `matched` of the `seen` images where this layout keeps its
    samples are named its way (init picks the layout, or names the closest one)."""

    layout: str
    matched: int
    seen: int
    evidence: str


@dataclass(frozen=True)
class Ignored:
    """A file under the samples folder that is left out, and why: listed, never dropped silently."""

    file: str
    reason: str


@dataclass
class Found:
    """Everything a reader found under `samples.root`."""

    layout: str
    root: Path
    samples: list[Sample]
    prompt_source: Path | None = None
    checkpoint_files: dict[str, Path] = field(default_factory=dict)
    ignored: list[Ignored] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    needs_generation: bool = False

    def by_checkpoint(self) -> dict[str, list[Sample]]:
        """Samples grouped by checkpoint, checkpoints in training order (steps, epochs, others)."""
        groups: dict[str, list[Sample]] = {}
        for sample in sorted(self.samples, key=lambda s: s.file):
            groups.setdefault(sample.checkpoint, []).append(sample)
        return dict(sorted(groups.items(), key=lambda kv: checkpoint_order(kv[0])))

    def checkpoints(self) -> dict[str, list[Path]]:
        """Checkpoint name -> its image files: the inputs of that checkpoint's organize job."""
        return {name: [s.path for s in group] for name, group in self.by_checkpoint().items()}

    def missing_prompts(self) -> list[Sample]:
        return [s for s in self.samples if s.prompt is None]


def checkpoint_order(name: str) -> tuple[tuple[int, int], str]:
    return (parse_position(name).sort_key, name)


def checkpoint_name(step: int | None, epoch: int | None = None, prefix: str = "") -> str:
    """`step-000150`, `e000003`, or `e000003-step-000450` when both are known (read as the step)."""
    if step is not None and epoch is not None:
        return f"{prefix}e{epoch:06d}-step-{step:06d}"
    if step is not None:
        return f"{prefix}step-{step:06d}"
    if epoch is not None:
        return f"{prefix}e{epoch:06d}"
    raise ValueError("a checkpoint needs a step or an epoch")


# what every reader names a sample by: its path under samples.root, links not resolved
relative = relative_file


def image_files(folder: Path, extensions: Iterable[str]) -> list[Path]:
    """Images below `folder` (recursive, hidden skipped, sorted); none if the folder is missing."""
    return list_images(folder, extensions) if folder.is_dir() else []


def select_run(found: Found, wanted: str | None, what: str) -> Found:
    """Keep one training run when the folder holds several (a second run in the same folder).

    Which run is meant cannot be guessed, so more than one without `samples.training_run` stops
    with the list; a name that matches none is answered with the closest one.
    """
    runs = sorted({s.run or "" for s in found.samples})
    if wanted is None:
        if len(runs) > 1:
            listed = ", ".join(f"{_show(r)} ({_count(found, r)} images)" for r in runs)
            raise CkptEvalError(
                f"{found.root} holds samples of {len(runs)} training runs ({what}): {listed}.",
                path=found.root,
                fix="set samples.training_run to one of them (init: --training-run NAME), or "
                "move the other run's samples out of the folder.",
            )
        return found
    if wanted not in runs:
        close = difflib.get_close_matches(wanted, runs, n=1)
        hint = f"; the closest is '{close[0]}'" if close else ""
        raise CkptEvalError(
            f"samples.training_run is '{wanted}', but the runs found are: "
            f"{', '.join(_show(r) for r in runs) or 'none'}{hint}.",
            path=found.root,
            fix=f"set samples.training_run to one of those ({what}).",
        )
    kept = [s for s in found.samples if (s.run or "") == wanted]
    left = [
        Ignored(s.file, f"another training run, {_show(s.run or '')}")
        for s in found.samples
        if (s.run or "") != wanted
    ]
    return replace(found, samples=kept, ignored=found.ignored + left)


def _show(run: str) -> str:
    return f"'{run}'" if run else "(no name)"


def _count(found: Found, run: str) -> int:
    return sum((s.run or "") == run for s in found.samples)


def keep_newest(found: Found) -> Found:
    """Of two images of the same checkpoint, prompt and variant, keep the newer one.

    A resumed or restarted run writes the same checkpoint's samples again; the checkpoint file on
    disk is the newer one, and counting both would double that prompt's weight. The older file is
    listed as left out. Images without a prompt index (or label) are never merged.
    """
    newest: dict[tuple, Sample] = {}
    older: list[Ignored] = []
    for sample in sorted(found.samples, key=lambda s: (s.time or "", s.file)):
        if sample.prompt_index is None and sample.label is None:
            newest[("file", sample.file)] = sample
            continue
        key = (sample.checkpoint, sample.prompt_index, sample.label, sample.variant)
        if key in newest:
            older.append(Ignored(newest[key].file, f"superseded by the newer {sample.file}"))
        newest[key] = sample
    if not older:
        return found
    return replace(found, samples=list(newest.values()), ignored=found.ignored + older)


def time_order_note(found: Found) -> list[str]:
    """A note when a later step was sampled before an earlier one: likely two runs in one folder.

    Within one run the step only grows with time; a restarted run (or a resume from an older
    backup) breaks that, and its leftovers may belong to checkpoints that no longer exist.
    """
    timed = sorted(
        (s for s in found.samples if s.time and s.step is not None), key=lambda s: s.time
    )
    highest: Sample | None = None
    for sample in timed:
        if highest is not None and sample.step < highest.step:
            return [
                f"step {highest.step} was sampled ({highest.time}) before step {sample.step} "
                f"({sample.time}): the folder may hold two training runs. If so, move the older "
                "run's samples out of it."
            ]
        if highest is None or sample.step > highest.step:
            highest = sample
    return []
