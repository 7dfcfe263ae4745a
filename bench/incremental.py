"""Figures 3 and 4: adding one checkpoint to a finished run, and a rerun with nothing changed.

3. After a full run of four checkpoints, a fifth is added (its folder and its prompts) and
   `snakemake --cores 2` runs: its organize, prompts, Inception, CLIP (not computed here),
   metrics jobs, then consolidate and report. Target: at most 1.25x that checkpoint's own
   extraction time plus 5 s. Its own extraction time is measured in the same run, interleaved:
   `ckpt_eval.extract.inception.extract` on its images (the full path of figure 1: read, decode,
   resize, forward) in this process, the network already loaded. Between repeats the checkpoint
   and its results are removed and the run brought back to four checkpoints (not timed).
4. A rerun of the finished five-checkpoint run with nothing changed: `snakemake --cores 2`
   (which plans, finds nothing to do and exits) and `snakemake -n`. Target: under 5 s.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from common import Context, median, snakemake, timed
from data import ADDED_CHECKPOINT, add_checkpoint, bench_data, make_project, remove_checkpoint

from ckpt_eval.extract import inception

NAME = "incremental"


def _job_seconds(log: str) -> dict[str, float]:
    """Seconds per rule from Snakemake's own output (its timestamps have 1 s resolution)."""
    from datetime import datetime

    starts: dict[str, tuple[str, datetime]] = {}
    spent: dict[str, float] = {}
    stamp, rule = None, None
    for line in log.splitlines():
        if m := re.match(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$", line):
            stamp = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
        elif m := re.match(r"^(?:local)?rule (\w+):", line):
            rule = m.group(1)
        elif (m := re.match(r"\s+jobid: (\d+)", line)) and rule and stamp:
            starts[m.group(1)] = (rule, stamp)
            rule = None
        elif (m := re.match(r"Finished jobid: (\d+)", line)) and stamp and m.group(1) in starts:
            name, begun = starts.pop(m.group(1))
            spent[name] = spent.get(name, 0.0) + (stamp - begun).total_seconds()
    return spent


def run(ctx: Context) -> dict[str, Any]:
    torch.set_num_threads(ctx.threads)
    data = bench_data(ctx.workdir, ctx.quick)
    project = ctx.cache.get("finished_project")
    if project is None:  # run on its own: make and finish a run of four checkpoints
        project = make_project(ctx.workdir / "project-incremental", data)
        snakemake(project)
    paths = data.images(data.checkpoint(ADDED_CHECKPOINT))
    cpu = torch.device("cpu")
    layers, _ = inception.load_inception(inception.bundled_weights_path(), cpu)
    net = inception.fast_copy(layers, cpu)
    workers = inception.decode_workers(2, cpu)  # as the job decodes
    inception.extract(paths[:32], net, cpu, 32, workers, desc="warm-up")

    add, own, noop, dry, logs = [], [], [], [], []
    for _ in range(ctx.repeats):
        own.append(timed(lambda: inception.extract(paths, net, cpu, 32, workers, desc="bench"))[0])
        add_checkpoint(project, data)
        seconds, log = snakemake(project)
        add.append(seconds)
        logs.append(_job_seconds(log))
        noop.append(snakemake(project)[0])
        dry.append(snakemake(project, "-n")[0])
        remove_checkpoint(project, data)
        snakemake(project)  # back to four checkpoints, not timed
    budget = 1.25 * median(own) + 5.0
    jobs = {rule: median([log.get(rule, 0.0) for log in logs]) for rule in logs[0]}
    return {
        "add": add,
        "own": own,
        "noop": noop,
        "dry": dry,
        "budget": budget,
        "jobs": jobs,
        "n_images": len(paths),
    }


def markdown(r: dict[str, Any], ctx: Context) -> str:
    add, own, noop, dry = r["add"], r["own"], r["noop"], r["dry"]
    met_add = "yes" if median(add) <= r["budget"] else "NO"
    met_noop = "yes" if median(noop) < 5.0 and median(dry) < 5.0 else "NO"
    overhead = median(add) - median(own)
    lines = [
        "## 3. Adding one checkpoint (target: <= 1.25 x its own extraction + 5 s)",
        "",
        f"`python bench/run.py incremental` - a finished run of 4 checkpoints, then "
        f"`{ADDED_CHECKPOINT}` ({r['n_images']} images) added; median of {ctx.repeats} "
        "interleaved runs (min-max).",
        "",
        "| | seconds |",
        "|---|---:|",
        f"| its own extraction (full path, in process) | {median(own):.1f} "
        f"({min(own):.1f}-{max(own):.1f}) |",
        f"| `snakemake --cores 2` after adding it | {median(add):.1f} "
        f"({min(add):.1f}-{max(add):.1f}) |",
        f"| target: 1.25 x {median(own):.1f} + 5 | {r['budget']:.1f} |",
        "",
        f"Target met: {met_add} ({overhead:.1f} s beyond the extraction itself).",
        "",
        "Where the time goes, by Snakemake's log (whole seconds, jobs may overlap): "
        + ", ".join(f"{rule} {sec:.0f} s" for rule, sec in r["jobs"].items() if rule != "all")
        + ".",
        "",
        "## 4. Rerun with nothing changed (target: under 5 s)",
        "",
        "| command | seconds, median (min-max) |",
        "|---|---:|",
        f"| `snakemake --cores 2` (nothing to do) | {median(noop):.2f} "
        f"({min(noop):.2f}-{max(noop):.2f}) |",
        f"| `snakemake -n` | {median(dry):.2f} ({min(dry):.2f}-{max(dry):.2f}) |",
        "",
        f"Target met: {met_noop}.",
    ]
    return "\n".join(lines) + "\n"
