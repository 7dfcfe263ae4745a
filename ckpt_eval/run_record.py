"""Which data a results folder belongs to: two configs with the same `run:` name never mix.

Snakemake keys everything on file names. Two configs that share `run: shoes` but name other
images would write into the same `results/shoes/`: the second run recomputes what changed, but
files of checkpoints only the first one had stay beside the second one's results, and running
them in turn recomputes everything every time. So the first run that does work in a results
folder records what it evaluates in `results/<run>/run.json` (the real images, the samples
folder and its layout, the base model of generated samples), and a config whose data differ is
refused before any work, naming both. Editing a config (other metrics, weights, checkpoints
added in the same samples folder) keeps the same data, so it is not refused.

Paths are recorded relative to the working directory when they are inside it, so a project
folder copied or moved as a whole still matches its own results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ckpt_eval.errors import CkptEvalError

RECORD = "run.json"
LABELS = {
    "real_images": "real images",
    "samples": "samples",
    "layout": "samples.layout",
    "base_model": "generate.base_model",
}


def _where(path: str | Path) -> str:
    resolved = Path(path).resolve()
    here = Path.cwd().resolve()
    return resolved.relative_to(here).as_posix() if resolved.is_relative_to(here) else str(resolved)


def run_data(config: dict[str, Any], samples_root: str | Path) -> dict[str, Any]:
    """What a config evaluates: the part of it that must match the results folder's record."""
    generate = config.get("generate") or {}
    return {
        "real_images": _where(config["real_images"]),
        "samples": _where(samples_root),
        "layout": config["samples"]["layout"],
        "base_model": generate.get("base_model"),
    }


def check_run_data(out: str | Path, data: dict[str, Any]) -> None:
    """Refuse a config whose data differ from what `out` holds results of (cheap: one small
    file). No record yet (a new run, or results from before records): nothing to compare."""
    from ckpt_eval.jsonio import read_json

    record = Path(out) / RECORD
    if not record.is_file():
        return
    recorded = read_json(record)
    differ = [key for key in LABELS if recorded.get(key) != data.get(key)]
    if not differ:
        return

    def describe(values: dict[str, Any]) -> str:
        return ", ".join(f"{LABELS[k]} {values.get(k)!r}" for k in differ)

    raise CkptEvalError(
        f"{out}/ holds the results of other data ({describe(recorded)}); this config names "
        f"{describe(data)} under the same `run:` name. Two configs with one `run:` name would "
        "mix their results in one folder.",
        path=record,
        fix="give this config its own `run:` name (its results then go to results/<name>/); "
        f"or, if this config replaces the other one, delete {record} (files that still match "
        "are kept, the rest is recomputed).",
    )


def record_run_data(out: str | Path, data: dict[str, Any]) -> None:
    """Write the record when a run starts doing work in `out` (the onstart hook); an existing
    one has been checked already."""
    from ckpt_eval.jsonio import write_json

    record = Path(out) / RECORD
    if not record.is_file():
        write_json(data, record)
