"""Figure `fresh`: a fresh run against the extraction of the same images in one process.

On a small set (a real set of 200 images and five checkpoints of 32) and a large one (300 and
five of 200), 256x256 PNG: `snakemake --cores 2` from an empty results folder (FID, KID,
intervals, significance, PRDC, memorization, report; CLIP left out: its model is not on this
machine), against `ckpt_eval.extract.inception.extract` on the same six image sets in this
process with the network already loaded (the full path of figure 1: read, decode, resize,
forward; each set in the batches its job makes): the work no arrangement of jobs can avoid.
The two are interleaved (extraction, workflow, extraction, ...) so that load from other
processes falls on both alike. Targets (issue 18): the run at most 1.5x the extraction on the
large set, 2.5x on the small one.

Each run's jobs write their timing line (`ckpt_eval.timing`); the breakdown of where the rest
of the time goes (`bench/breakdown.py`) is the median over the runs.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

import torch
from breakdown import breakdown, job_records, median_breakdown, since, table
from common import REPO, Context, Target, interleaved, median, snakemake, yes_no
from data import bench_data, make_project

from ckpt_eval.demo import CHECKPOINTS
from ckpt_eval.extract import inception

NAME = "fresh"
# (real images, images per checkpoint), five checkpoints each; targets: run / extraction
SETS = {"small": ((200, 32), 2.5), "large": ((300, 200), 1.5)}
QUICK_SETS = {"small": ((50, 16), 2.5), "large": ((100, 50), 1.5)}
BATCH = 32


def loaded_network() -> tuple[torch.nn.Module, torch.device, int]:
    """The eager network, as the jobs build it, on the CPU; the jobs' decode workers."""
    cpu = torch.device("cpu")
    layers, _ = inception.load_inception(inception.bundled_weights_path(), cpu)
    net = inception.fast_copy(layers, cpu)
    return net, cpu, inception.decode_workers(2, cpu)


def extract_sets(paths: list[list[Any]], net: torch.nn.Module, cpu: torch.device, workers: int):
    """Each image set through the full path, in this process, as its job would."""

    def run() -> None:
        for images in paths:
            inception.extract(images, net, cpu, BATCH, workers, desc="bench")

    return run


def fresh_run(project: Any, runs: list[dict[str, Any]], repo: Any = REPO) -> Any:
    """A workflow run from scratch (of `repo`'s workflow); its breakdown appended to `runs`."""

    def run() -> None:
        shutil.rmtree(project / "results", ignore_errors=True)
        shutil.rmtree(project / ".snakemake", ignore_errors=True)
        launched = time.time()
        snakemake(project, repo=repo)
        ended = time.time()
        records = since(job_records(project / "results" / "bench"), launched)
        runs.append(breakdown(records, launched, ended))

    return run


def run(ctx: Context) -> dict[str, Any]:
    torch.set_num_threads(ctx.threads)
    net, cpu, workers = loaded_network()
    out: dict[str, Any] = {}
    for label, (shape, target) in (QUICK_SETS if ctx.quick else SETS).items():
        data = bench_data(ctx.workdir, ctx.quick, shape)
        project = make_project(ctx.workdir / f"project-fresh-{label}", data, CHECKPOINTS)
        paths = [data.images(data.real), *(data.images(data.checkpoint(n)) for n in CHECKPOINTS)]
        inception.extract(paths[0][:BATCH], net, cpu, BATCH, workers, desc="warm-up")
        runs: list[dict[str, Any]] = []
        measured = {
            "extraction": extract_sets(paths, net, cpu, workers),
            "run": fresh_run(project, runs),
        }
        baseline_runs: list[dict[str, Any]] = []
        if ctx.baseline is not None:
            other = make_project(ctx.workdir / f"project-fresh-{label}-baseline", data, CHECKPOINTS)
            measured["baseline run"] = fresh_run(other, baseline_runs, ctx.baseline)
        loads = [os.getloadavg()[0]]
        times = interleaved(measured, ctx.repeats)
        loads.append(os.getloadavg()[0])
        out[label] = {
            "n_real": shape[0],
            "n_per_checkpoint": shape[1],
            "n_images": sum(len(p) for p in paths),
            "times": times,
            "ratio": median(times["run"]) / median(times["extraction"]),
            "ratio_per_repeat": median(
                [r / e for r, e in zip(times["run"], times["extraction"], strict=True)]
            ),
            "target": target,
            "breakdown": median_breakdown(runs),
            "loadavg": loads,
        }
        if baseline_runs:
            out[label]["baseline"] = {
                "checkout": str(ctx.baseline),
                "ratio": median(times["baseline run"]) / median(times["extraction"]),
                "breakdown": median_breakdown(baseline_runs) if baseline_runs[0]["rules"] else None,
            }
    return out


def targets(r: dict[str, Any]) -> list[Target]:
    return [
        Target(
            f"fresh run over its own extraction, 5 x {s['n_per_checkpoint']} images",
            f"{s['ratio']:.2f} x",
            f"<= {s['target']} x",
            s["ratio"] <= s["target"],
        )
        for s in r.values()
    ]


def markdown(r: dict[str, Any], ctx: Context) -> str:
    lines = [
        "## Fresh run against its own extraction (targets: <= 1.5x on 5 x 200, <= 2.5x on 5 x 32)",
        "",
        "`python bench/run.py fresh` - `snakemake --cores 2` from an empty results folder "
        "(FID, KID, intervals, significance, PRDC, memorization, report; CLIP off: no model on "
        "this machine) against the same images through the full extraction path in one "
        "process, network loaded (each set in its job's batches); 256x256 PNG, median of "
        f"{ctx.repeats} interleaved runs (min-max).",
        "",
        "| set | images | extraction in one process, s | fresh run, s | ratio | target | met "
        "| load average (1 min) before, after |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for (label, s), target in zip(r.items(), targets(r), strict=True):
        e, w = s["times"]["extraction"], s["times"]["run"]
        met = yes_no(target)
        lines.append(
            f"| {label}: real {s['n_real']}, 5 x {s['n_per_checkpoint']} | {s['n_images']} "
            f"| {median(e):.1f} ({min(e):.1f}-{max(e):.1f}) "
            f"| {median(w):.1f} ({min(w):.1f}-{max(w):.1f}) "
            f"| **{s['ratio']:.2f}** (per run {s['ratio_per_repeat']:.2f}) | {s['target']} "
            f"| {met} | {s['loadavg'][0]:.1f}, {s['loadavg'][1]:.1f} |"
        )
    for label, s in r.items():
        if "baseline" in s:
            b = s["baseline"]
            base = s["times"]["baseline run"]
            lines += [
                "",
                f"Baseline ({label}): the workflow of `{b['checkout']}` interleaved with these "
                f"runs: {median(base):.1f} s ({min(base):.1f}-{max(base):.1f}), ratio "
                f"{b['ratio']:.2f}.",
            ]
    for label, s in r.items():
        lines += [
            "",
            f"Where the time of the {label} run goes (median of its runs; seconds summed over "
            "each rule's jobs):",
            "",
            *table(s["breakdown"]),
        ]
        if s.get("baseline", {}).get("breakdown"):
            lines += [
                "",
                f"The same for the baseline's {label} run:",
                "",
                *table(s["baseline"]["breakdown"]),
            ]
    return "\n".join(lines) + "\n"
