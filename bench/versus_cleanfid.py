"""Figure 2: the whole workflow against the usual loop of clean-fid calls.

The usual alternative, per checkpoint: `cleanfid.fid.compute_fid(real, ckpt)` and
`cleanfid.fid.compute_kid(real, ckpt)`, each of which extracts both folders again. The workflow
extracts the real set once and each checkpoint once, and computes FID, KID, bootstrap intervals,
significance, precision/recall, the memorization screen and the report besides (CLIP is left out
on both sides: its model is not on this machine). Both run on the same folders, on the CPU, with
the same Inception weights (clean-fid pointed at the bundled network through
`bench/cleanfid_compat.py`) and the same 2 torch threads; clean-fid's defaults otherwise, except
its DataLoader workers (`num_workers`, below). Runs alternate workflow, loop, workflow, loop...;
each workflow run starts from an empty results folder.

Target: the workflow takes at most one third of the loop's wall time.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

import torch
from cleanfid_compat import cleanfid_uses_bundled_weights
from common import Context, interleaved, median, snakemake
from data import RUN_CHECKPOINTS, bench_data, make_project

NAME = "versus_cleanfid"
CLEANFID_WORKERS = 0  # see `_cleanfid_workers`: the faster of 0 and clean-fid's default here


def _workflow(project: Any) -> None:
    shutil.rmtree(project / "results", ignore_errors=True)
    shutil.rmtree(project / ".snakemake", ignore_errors=True)
    snakemake(project)


def _loop(project: Any, workers: int) -> dict[str, dict[str, float]]:
    from cleanfid import fid as cleanfid

    out = {}
    cpu = torch.device("cpu")
    options = {"mode": "clean", "device": cpu, "num_workers": workers, "verbose": False}
    real = str(project / "real")
    for name in RUN_CHECKPOINTS:
        folder = str(project / "samples" / name)
        fid = cleanfid.compute_fid(real, folder, use_dataparallel=False, **options)
        kid = cleanfid.compute_kid(real, folder, use_dataparallel=False, **options)
        out[name] = {"fid": float(fid), "kid": float(kid)}
    return out


def run(ctx: Context) -> dict[str, Any]:
    torch.set_num_threads(ctx.threads)
    data = bench_data(ctx.workdir, ctx.quick)
    project = make_project(ctx.workdir / "project-versus", data)
    repeats = max(2, ctx.repeats - 2) if not ctx.quick else ctx.repeats
    loop_values: dict[str, dict[str, float]] = {}

    def loop() -> None:
        loop_values.update(_loop(project, CLEANFID_WORKERS))

    with cleanfid_uses_bundled_weights():
        times = interleaved({"workflow": lambda: _workflow(project), "loop": loop}, repeats)
    result = json.loads((project / "results" / "bench" / "consolidated_results.json").read_text())
    ours = {row["name"]: row for row in result["checkpoints"]}
    agreement = {
        name: {
            "fid": ours[name]["fid"],
            "cleanfid_fid": loop_values[name]["fid"],
            "rel_diff": abs(ours[name]["fid"] - loop_values[name]["fid"])
            / loop_values[name]["fid"],
            "kid": ours[name]["kid_mean"],
            "cleanfid_kid": loop_values[name]["kid"],
        }
        for name in RUN_CHECKPOINTS
    }
    ctx.cache["finished_project"] = project
    return {
        "times": times,
        "repeats": repeats,
        "ratio": median(times["workflow"]) / median(times["loop"]),
        "ratio_per_repeat": median(
            [w / c for w, c in zip(times["workflow"], times["loop"], strict=True)]
        ),
        "n_real": data.n_real,
        "n_per_checkpoint": data.n_per_checkpoint,
        "agreement": agreement,
        "extracted": {
            "workflow": data.n_real + len(RUN_CHECKPOINTS) * data.n_per_checkpoint,
            "loop": 2 * len(RUN_CHECKPOINTS) * (data.n_real + data.n_per_checkpoint),
        },
    }


def markdown(r: dict[str, Any], ctx: Context) -> str:
    w, c = r["times"]["workflow"], r["times"]["loop"]
    met = "yes" if r["ratio"] <= 1 / 3 else "NO"
    lines = [
        "## 2. Workflow against a loop of clean-fid calls (target: <= 1/3 of the loop's time)",
        "",
        f"`python bench/run.py versus_cleanfid` - real set of {r['n_real']} images, "
        f"{len(RUN_CHECKPOINTS)} checkpoints of {r['n_per_checkpoint']} (256x256 PNG); "
        f"median of {r['repeats']} interleaved runs each (fewer than the other figures: one "
        "loop run takes minutes).",
        "",
        "| | wall seconds, median (min-max) | images through Inception |",
        "|---|---:|---:|",
        f"| workflow: `snakemake --cores 2` from scratch (FID, KID, intervals, significance, "
        f"PRDC, memorization, report) | {median(w):.1f} ({min(w):.1f}-{max(w):.1f}) "
        f"| {r['extracted']['workflow']} |",
        f"| loop: `compute_fid` + `compute_kid` per checkpoint (clean-fid, "
        f"num_workers={CLEANFID_WORKERS}) | {median(c):.1f} ({min(c):.1f}-{max(c):.1f}) "
        f"| {r['extracted']['loop']} |",
        "",
        f"**Ratio: {r['ratio']:.2f}** (median of the per-run ratios {r['ratio_per_repeat']:.2f})."
        f" Target met: {met}.",
        "",
        "Same numbers (the last runs): FID from the workflow against clean-fid's, and KID (each "
        "averages its own random subsets, so KID agrees to its Monte-Carlo spread only):",
        "",
        "| checkpoint | FID workflow | FID clean-fid | relative difference | KID workflow "
        "| KID clean-fid |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, a in r["agreement"].items():
        lines.append(
            f"| {name} | {a['fid']:.4f} | {a['cleanfid_fid']:.4f} | {a['rel_diff']:.1e} "
            f"| {a['kid']:.5f} | {a['cleanfid_kid']:.5f} |"
        )
    return "\n".join(lines) + "\n"
