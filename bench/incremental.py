"""Figures 3 and 4: adding one checkpoint to a finished run, and a rerun with nothing changed.

3. After a full run of four checkpoints, a fifth is added (its folder and its prompts) and
   `snakemake --cores 2` runs: its Inception job (which writes its manifest first), its CLIP
   job (not computed here) and its metrics job, then consolidate, the report and the contact
   sheets. Target (issue 18): at most 1.3x that
   checkpoint's own extraction time plus 3 s. Where the time goes, job by job, from the jobs'
   timing lines (`bench/breakdown.py`). Its own extraction time is measured in the same run,
   interleaved: `ckpt_eval.extract.inception.extract` on its images (the full path of figure 1:
   read, decode, resize, forward) in this process, the network already loaded. Between repeats
   the checkpoint and its results are removed and the run brought back to four checkpoints
   (not timed).
4. A rerun of the finished five-checkpoint run with nothing changed: `snakemake --cores 2`
   (which plans, finds nothing to do and exits) and `snakemake -n`. Target: under 2 s.
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch
from breakdown import breakdown, job_records, median_breakdown, since, table
from common import Context, Target, children_cpu, median, snakemake, timed, yes_no
from data import ADDED_CHECKPOINT, add_checkpoint, bench_data, make_project, remove_checkpoint

from ckpt_eval.extract import inception

NAME = "incremental"
FACTOR, EXTRA = 1.3, 3.0  # adding a checkpoint: at most FACTOR x its extraction + EXTRA s
NOOP = 2.0  # a rerun with nothing to do: under NOOP s


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

    add, own, noop, dry, runs, noop_cpu = [], [], [], [], [], []
    loads = [os.getloadavg()[0]]
    for _ in range(ctx.repeats):
        own.append(timed(lambda: inception.extract(paths, net, cpu, 32, workers, desc="bench"))[0])
        add_checkpoint(project, data)
        launched = time.time()
        seconds, _ = snakemake(project)
        ended = time.time()
        add.append(seconds)
        records = since(job_records(project / "results" / "bench"), launched)
        runs.append(breakdown(records, launched, ended))
        before = children_cpu()
        noop.append(snakemake(project)[0])
        noop_cpu.append(children_cpu() - before)
        dry.append(snakemake(project, "-n")[0])
        remove_checkpoint(project, data)
        snakemake(project)  # back to four checkpoints, not timed
    loads.append(os.getloadavg()[0])
    return {
        "add": add,
        "own": own,
        "noop": noop,
        "noop_cpu": noop_cpu,
        "dry": dry,
        "budget": FACTOR * median(own) + EXTRA,
        "breakdown": median_breakdown(runs),
        "n_images": len(paths),
        "loadavg": loads,
    }


def targets(r: dict[str, Any]) -> list[Target]:
    add, own, noop, dry = (median(r[k]) for k in ("add", "own", "noop", "dry"))
    return [
        Target(
            f"adding one checkpoint of {r['n_images']} images",
            f"{add:.1f} s",
            f"<= {FACTOR} x {own:.1f} s + {EXTRA:.0f} s = {r['budget']:.1f} s",
            add <= r["budget"],
        ),
        Target(
            "a rerun with nothing to do (`snakemake`, `snakemake -n`)",
            f"{noop:.2f} s, {dry:.2f} s",
            f"< {NOOP:.0f} s",
            noop < NOOP and dry < NOOP,
        ),
    ]


def markdown(r: dict[str, Any], ctx: Context) -> str:
    add, own, noop, dry = r["add"], r["own"], r["noop"], r["dry"]
    met_add, met_noop = (yes_no(t) for t in targets(r))
    overhead = median(add) - median(own)
    lines = [
        f"## 3. Adding one checkpoint (target: <= {FACTOR} x its own extraction + {EXTRA:.0f} s)",
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
        f"| target: {FACTOR} x {median(own):.1f} + {EXTRA:.0f} | {r['budget']:.1f} |",
        "",
        f"Target met: {met_add} ({overhead:.1f} s beyond the extraction itself). Load average "
        f"(1 min) {r['loadavg'][0]:.1f} before, {r['loadavg'][1]:.1f} after.",
        "",
        "Where the time goes (median of the runs; seconds summed over each rule's jobs):",
        "",
        *table(r["breakdown"]),
        "",
        f"## 4. Rerun with nothing changed (target: under {NOOP:.0f} s)",
        "",
        "| command | seconds, median (min-max) |",
        "|---|---:|",
        f"| `snakemake --cores 2` (nothing to do) | {median(noop):.2f} "
        f"({min(noop):.2f}-{max(noop):.2f}) |",
        f"| `snakemake -n` | {median(dry):.2f} ({min(dry):.2f}-{max(dry):.2f}) |",
        "",
        f"Target met: {met_noop}. CPU time of the rerun with nothing to do (user + system, what "
        f"it takes on an idle core): {median(r['noop_cpu']):.2f} s.",
    ]
    return "\n".join(lines) + "\n"
