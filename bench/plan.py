"""Figure `plan`: planning 1,000 checkpoints of 32 images (issue 18's target: under 10 s).

The project of figure 6 (`scale.plan_project`: hard links to one small PNG, a prompt file of
32,000 rows); `snakemake -n --cores 2`, median of the repeats, with the machine's load. With
`--baseline`, the baseline checkout's plan of the same project, interleaved.
"""

from __future__ import annotations

import os
import re
from typing import Any

from common import REPO, Context, Target, children_cpu, interleaved, median, snakemake, yes_no
from scale import PLAN_CHECKPOINTS, PLAN_IMAGES, plan_project

NAME = "plan"
TARGET = 10.0


def run(ctx: Context) -> dict[str, Any]:
    project = plan_project(ctx.workdir)
    logs: list[str] = []
    cpu: dict[str, list[float]] = {"plan": [], "baseline plan": []}

    def plan(repo: Any, name: str) -> Any:
        def run() -> None:
            before = children_cpu()
            logs.append(snakemake(project, "-n", repo=repo)[1])
            cpu[name].append(children_cpu() - before)

        return run

    runs = {"plan": plan(REPO, "plan")}
    if ctx.baseline is not None:
        runs["baseline plan"] = plan(ctx.baseline, "baseline plan")
    loads = [os.getloadavg()[0]]
    times = interleaved(runs, ctx.repeats)
    loads.append(os.getloadavg()[0])
    jobs = int(re.search(r"^total\s+(\d+)", logs[0], re.M).group(1))  # type: ignore[union-attr]
    return {
        "times": times,
        "cpu": cpu,
        "jobs": jobs,
        "loadavg": loads,
        "baseline": str(ctx.baseline),
    }


def targets(r: dict[str, Any]) -> list[Target]:
    plans = median(r["times"]["plan"])
    return [
        Target(
            f"planning {PLAN_CHECKPOINTS:,} checkpoints x {PLAN_IMAGES} images (`snakemake -n`)",
            f"{plans:.1f} s",
            f"< {TARGET:.0f} s",
            plans < TARGET,
        )
    ]


def markdown(r: dict[str, Any], ctx: Context) -> str:
    plans, cpu = r["times"]["plan"], r["cpu"]["plan"]
    met = yes_no(targets(r)[0])
    met_cpu = "yes" if median(cpu) < TARGET else "NO"
    lines = [
        f"## Planning {PLAN_CHECKPOINTS:,} checkpoints (target: under {TARGET:.0f} s)",
        "",
        f"`python bench/run.py plan` - {PLAN_CHECKPOINTS} checkpoints x {PLAN_IMAGES} images "
        f"({r['jobs']} jobs): `snakemake -n --cores 2` takes **{median(plans):.1f} s** (median "
        f"of {len(plans)}, {min(plans):.1f}-{max(plans):.1f}). Target met: {met}. Load "
        f"average (1 min) {r['loadavg'][0]:.1f} before, {r['loadavg'][1]:.1f} after.",
        "",
        f"CPU time of the plan (user + system, what it takes on an idle core): "
        f"**{median(cpu):.1f} s** ({min(cpu):.1f}-{max(cpu):.1f}); under the target: {met_cpu}.",
    ]
    if "baseline plan" in r["times"]:
        base, base_cpu = r["times"]["baseline plan"], r["cpu"]["baseline plan"]
        lines += [
            "",
            f"Baseline `{r['baseline']}`, interleaved: {median(base):.1f} s "
            f"({min(base):.1f}-{max(base):.1f}), CPU {median(base_cpu):.1f} s.",
        ]
    return "\n".join(lines) + "\n"
