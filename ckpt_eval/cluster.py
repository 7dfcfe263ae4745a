"""Before a SLURM run submits anything: do its jobs fit the partitions, and can it see them end?

SLURM keeps a job that asks for more CPUs, memory, GPUs or time than any node of its partition
offers pending forever (reason PartitionConfig), and Snakemake's SLURM executor then waits
without a word; a run whose status command cannot see job states (`sacct` without an
accounting database) waits forever too. `check_slurm_run`, called from the workflow's
`onstart:` hook (workflow/rules/common.smk) when the executor is slurm, stops such a run
before its first `sbatch` with a message naming the job, what it asks for, what the partition
offers and the setting to change.

Plain data in and out (no Snakemake, no torch): the hook passes the jobs and group jobs of the
DAG, read here by duck typing (`is_group()`, `resources`, `rule.name`, `jobs`, `threads`).
"""

from __future__ import annotations

import math
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ckpt_eval.errors import CkptEvalError

PROFILE = "the SLURM profile (profiles/slurm/config.yaml)"
# the node lines sinfo prints: one per node and partition
SINFO = ["sinfo", "-h", "-N", "-o", "%N|%P|%c|%m|%l|%G"]

Runner = Callable[..., subprocess.CompletedProcess]


@dataclass(frozen=True)
class Node:
    name: str
    cpus: int
    mem_mb: int
    gpus: int = 0
    gpu_types: frozenset[str] = frozenset()

    def describe(self) -> str:
        gpus = f", {self.gpus} GPUs" if self.gpus else ""
        types = f" ({', '.join(sorted(self.gpu_types))})" if self.gpu_types else ""
        return f"{self.cpus} CPUs and {self.mem_mb} MB{gpus}{types}"


@dataclass
class Partition:
    name: str
    default: bool = False
    time_limit_min: float = math.inf
    nodes: list[Node] = field(default_factory=list)

    def largest(self) -> Node:
        return max(self.nodes, key=lambda n: (n.cpus, n.mem_mb, n.gpus))

    def describe(self) -> str:
        largest = self.largest()
        limit = (
            ""
            if math.isinf(self.time_limit_min)
            else f", a time limit of {self.time_limit_min:g} min"
        )
        return f"partition `{self.name}` (largest node {largest.name}: {largest.describe()}{limit})"


@dataclass(frozen=True)
class Request:
    """What one cluster job (a job, or a group job) asks SLURM for."""

    rules: tuple[str, ...]
    group: str | None
    cpus: int
    mem_mb: float | None = None
    runtime_min: float | None = None
    gpus: int = 0
    gpu_type: str | None = None
    partition: str | None = None

    def what(self) -> str:
        if self.group:
            return f"group job `{self.group}` (rules {', '.join(self.rules)})"
        return f"rule `{self.rules[0]}`"


def parse_time_limit(text: str) -> float:
    """Minutes of a SLURM time (`infinite`, `30:00`, `2:00:00`, `1-00:00:00`, `1-12`)."""
    text = text.strip()
    if text.lower() in ("infinite", "unlimited", "n/a", ""):
        return math.inf
    days = 0
    if "-" in text:
        day, text = text.split("-", 1)
        days = int(day)
        parts = [int(p) for p in text.split(":")] + [0, 0]
        hours, minutes, seconds = parts[:3]
    else:
        parts = [int(p) for p in text.split(":")]
        if len(parts) == 3:
            hours, minutes, seconds = parts
        elif len(parts) == 2:
            hours, (minutes, seconds) = 0, parts
        else:
            hours, minutes, seconds = 0, parts[0], 0
    return days * 1440 + hours * 60 + minutes + seconds / 60


def parse_gres(text: str) -> tuple[int, frozenset[str]]:
    """GPUs and GPU types of a node's gres (`gpu:a100:4(S:0-1),gpu:2`, `(null)`)."""
    count, types = 0, set()
    for match in re.finditer(r"gpu(?::([A-Za-z][^:(,]*))?:(\d+)", text):
        count += int(match.group(2))
        if match.group(1):
            types.add(match.group(1))
    return count, frozenset(types)


def parse_sinfo(text: str) -> dict[str, Partition]:
    """The partitions of `sinfo -h -N -o "%N|%P|%c|%m|%l|%G"` output."""
    partitions: dict[str, Partition] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        node, name, cpus, mem, limit, gres = (p.strip() for p in line.split("|", 5))
        default = name.endswith("*")
        name = name.rstrip("*")
        partition = partitions.setdefault(name, Partition(name))
        partition.default = partition.default or default
        partition.time_limit_min = parse_time_limit(limit)
        gpus, gpu_types = parse_gres(gres)
        partition.nodes.append(
            Node(node, int(cpus.rstrip("+")), int(mem.rstrip("+")), gpus, gpu_types)
        )
    return partitions


def _number(value) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def cpus_asked(resources, threads: int) -> int:
    """The CPUs the SLURM executor asks for: `cpus_per_task`, else for a GPU job
    `cpus_per_gpu` x GPUs, else the job's threads (the plugin's own order)."""
    cpus = _number(resources.get("cpus_per_task"))
    if cpus is not None:
        return max(1, int(cpus))
    gpus, _ = gpus_asked(resources)
    per_gpu = _number(resources.get("cpus_per_gpu"))
    if gpus and per_gpu:
        return int(per_gpu) * gpus
    return max(1, int(threads or 1))


def gpus_asked(resources) -> tuple[int, str | None]:
    """GPUs (and the type, if one is named) from `gpu`/`gpus` with `gpu_model`, or `gres`."""
    gres = str(resources.get("gres") or "")
    if "gpu" in gres:
        match = re.search(r"gpu(?::([A-Za-z][^:,]*))?(?::(\d+))?", gres)
        return (int(match.group(2) or 1), match.group(1)) if match else (1, None)
    count = _number(resources.get("gpu")) or _number(resources.get("gpus")) or 0
    model = resources.get("gpu_model")
    return int(count), (str(model) if model and count else None)


def memory_asked(resources, cpus: int) -> float | None:
    per_cpu = _number(resources.get("mem_mb_per_cpu"))
    if per_cpu:
        return per_cpu * cpus
    return _number(resources.get("mem_mb"))


def request_of(job) -> Request:
    """The request of a Snakemake job or group job (duck typed)."""
    resources = job.resources
    if job.is_group():
        rules = tuple(sorted({j.rule.name for j in job.jobs}))
        group = job.groupid
    else:
        rules, group = (job.rule.name,), None
    cpus = cpus_asked(resources, job.threads)
    gpus, gpu_type = gpus_asked(resources)
    partition = resources.get("slurm_partition")
    return Request(
        rules=rules,
        group=group,
        cpus=cpus,
        mem_mb=memory_asked(resources, cpus),
        runtime_min=_number(resources.get("runtime")),
        gpus=gpus,
        gpu_type=gpu_type,
        partition=str(partition) if partition else None,
    )


# the config key that sets a rule's threads, and what it names (workflow/rules/*.smk): the
# metrics jobs' own, else the feature and generate jobs' one
THREADS_KEYS = {
    "metrics_checkpoint": ("metrics_threads", "metrics jobs"),
    None: ("feature_threads", "feature and generate jobs"),
}


def fits(request: Request, node: Node) -> bool:
    return (
        request.cpus <= node.cpus
        and (request.mem_mb is None or request.mem_mb <= node.mem_mb)
        and request.gpus <= node.gpus
        and (not request.gpu_type or not request.gpus or request.gpu_type in node.gpu_types)
    )


def _what_to_change(request: Request, partition: Partition) -> str:
    largest = partition.largest()
    rule = request.rules[0]
    fixes = []
    if request.group and (request.cpus > largest.cpus or (request.mem_mb or 0) > largest.mem_mb):
        fixes.append(
            f"a group job runs its jobs side by side on up to `cores` CPUs: set `cores:` in "
            f"{PROFILE} (or pass `--cores`) to at most {largest.cpus}, or lower the rules' "
            "`feature_threads`/`metrics_threads`/`mem_mb`"
        )
    elif request.cpus > largest.cpus:
        key, jobs = THREADS_KEYS.get(rule, THREADS_KEYS[None])
        fixes.append(
            f"lower `{key}` in the config (the {jobs}' threads, which the profile passes on as "
            f"cpus_per_task: threads) to at most {largest.cpus}, or set `cpus_per_task` of "
            f"`{rule}` under `set-resources` in {PROFILE}"
        )
    if not request.group and (request.mem_mb or 0) > largest.mem_mb:
        fixes.append(f"lower `mem_mb` of `{rule}` under `set-resources` in {PROFILE}")
    if request.gpus > largest.gpus or (
        request.gpu_type and not any(request.gpu_type in n.gpu_types for n in partition.nodes)
    ):
        fixes.append(
            "send the GPU jobs to a GPU partition (`slurm_partition` under `set-resources` in "
            "profiles/slurm-gpu/config.yaml), fix `gpu_model`/`gres`, or set `device: cpu`"
        )
    if not fixes:
        fixes.append(f"use another `slurm_partition` for `{rule}` in {PROFILE}")
    return "; ".join(fixes)


def _asks(request: Request) -> str:
    parts = [f"{request.cpus} CPUs"]
    if request.mem_mb is not None:
        parts.append(f"{request.mem_mb:g} MB")
    if request.gpus:
        parts.append(f"{request.gpus} GPU{'s' if request.gpus > 1 else ''}")
        if request.gpu_type:
            parts[-1] += f" of type {request.gpu_type}"
    if request.runtime_min is not None:
        parts.append(f"{request.runtime_min:g} min")
    return ", ".join(parts)


def fit_problems(requests: Iterable[Request], partitions: dict[str, Partition]) -> list[str]:
    """One message per distinct request that no node of its partition can run."""
    default = next((p for p in partitions.values() if p.default), None)
    problems, seen = [], set()
    for request in requests:
        if request in seen:
            continue
        seen.add(request)
        partition = partitions.get(request.partition) if request.partition else default
        if partition is None:
            where = (
                f"partition `{request.partition}`, which sinfo does not list"
                if request.partition
                else "the default partition, but the cluster has none"
            )
            problems.append(
                f"{request.what()} asks for {where} (partitions: "
                f"{', '.join(sorted(partitions)) or 'none'}): set `slurm_partition` in {PROFILE}."
            )
            continue
        if not partition.nodes:
            continue
        if not any(fits(request, node) for node in partition.nodes):
            problems.append(
                f"{request.what()} asks for {_asks(request)}, but {partition.describe()} has "
                "no node that big: SLURM would keep the job pending forever (reason "
                f"PartitionConfig). To fix: {_what_to_change(request, partition)}."
            )
        elif (request.runtime_min or 0) > partition.time_limit_min:
            problems.append(
                f"{request.what()} asks for {request.runtime_min:g} min, but "
                f"{partition.describe()} allows at most {partition.time_limit_min:g} min: SLURM "
                "would keep the job pending forever (reason PartitionTimeLimit). To fix: lower "
                f"`runtime` of `{request.rules[0]}` under `set-resources` in {PROFILE}"
                + (
                    ", or `group-components` of the group (a group job's runtime is the sum of "
                    "its jobs')"
                    if request.group
                    else ""
                )
                + "."
            )
    return problems


def read_partitions(run: Runner = subprocess.run) -> dict[str, Partition] | None:
    """The cluster's partitions from sinfo, or None when sinfo does not answer."""
    try:
        done = run(SINFO, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    try:
        return parse_sinfo(done.stdout)
    except ValueError:
        return None


def min_job_age(run: Runner = subprocess.run) -> int | None:
    """MinJobAge (seconds) from `scontrol show config`: how long squeue still lists an ended job."""
    try:
        done = run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"^MinJobAge\s*=\s*(\d+)", done.stdout, re.MULTILINE)
    return int(match.group(1)) if match else None


def sacct_probe() -> list[str]:
    """A query of the shape the SLURM executor polls with (for a job name that has no jobs)."""
    start = f"{datetime.now() - timedelta(hours=1):%Y-%m-%dT%H:00}"
    return [
        "sacct", "-X", "--parsable2", "--clusters", "all", "--noheader",
        "--format=JobIdRaw,State", "--starttime", start, "--endtime", "now",
        "--name", "ckpt-eval-status-probe",
    ]  # fmt: skip


def status_problem(
    status_command: str | None,
    init_seconds: int,
    run: Runner = subprocess.run,
    which: Callable[[str], str | None] = shutil.which,
) -> str | None:
    """Why the SLURM executor could not see this run's jobs end, or None.

    The executor (snakemake-executor-plugin-slurm 2.8) polls `sacct` by default; it uses
    `squeue` when asked (`--slurm-status-command squeue`) unless MinJobAge is below three times
    `--slurm-init-seconds-before-status-checks` and sacct exists, then it falls back to sacct. A
    failing sacct makes it drop the jobs it polls, and a job that left squeue before the first
    poll looks running forever: either way the run waits without a word.
    """
    age = min_job_age(run)
    threshold = 3 * init_seconds
    command = status_command or ("sacct" if which("sacct") else "squeue")
    if command == "squeue" and (age is None or age < threshold) and which("sacct"):
        command = "sacct"  # what the executor does
        fallback = (
            f" (asked for squeue, but MinJobAge={age} s is below 3 x "
            f"--slurm-init-seconds-before-status-checks = {threshold} s, so the executor "
            "falls back to sacct)"
        )
    else:
        fallback = ""
    if command == "sacct":
        probe = sacct_probe()
        try:
            done = run(probe, capture_output=True, text=True, timeout=60)
            failure = (
                None
                if done.returncode == 0
                else (f"exits {done.returncode}: {(done.stderr or done.stdout).strip()[:300]}")
            )
        except (OSError, subprocess.SubprocessError) as error:
            failure = str(error)
        if failure is None:
            return None
        return (
            f"the SLURM executor polls job states with sacct{fallback}, but "
            f"`{shlex.join(probe)}` {failure}. Without an accounting database (slurmdbd; "
            "AccountingStorageType=accounting_storage/none) it would never see a job end and "
            "the run would wait forever. To fix: run with `--slurm-status-command squeue` (or "
            f"`slurm-status-command: squeue` in {PROFILE}); squeue sees an ended job only for "
            f"MinJobAge (here {age} s), which must be at least 3 x "
            f"--slurm-init-seconds-before-status-checks (here 3 x {init_seconds} = {threshold} s)."
        )
    if age is not None and age < threshold:
        return (
            f"the SLURM executor polls job states with squeue, which lists an ended job for "
            f"MinJobAge = {age} s only, less than 3 x --slurm-init-seconds-before-status-checks "
            f"= {threshold} s: a short job could end unseen and the run wait forever. To fix: "
            "lower --slurm-init-seconds-before-status-checks, raise MinJobAge in slurm.conf, or "
            "set up accounting (slurmdbd) and use sacct."
        )
    return None


def check_slurm_run(
    jobs: Iterable,
    status_command: str | None,
    init_seconds: int,
    run: Runner = subprocess.run,
    which: Callable[[str], str | None] = shutil.which,
    warn: Callable[[str], None] = print,
) -> None:
    """Stop (CkptEvalError) before anything is submitted when a job could never start or the
    run could never see its jobs end; `jobs` are the DAG's jobs and group jobs to run."""
    problems = []
    partitions = read_partitions(run)
    if partitions is None:
        warn(
            "ckpt-eval: `sinfo` did not answer, so the jobs' CPUs and memory were not checked "
            "against the partitions before submitting"
        )
    else:
        problems += fit_problems((request_of(job) for job in jobs), partitions)
    status = status_problem(status_command, init_seconds, run, which)
    if status:
        problems.append(status)
    if problems:
        raise CkptEvalError(
            "this SLURM run would wait forever; nothing was submitted:\n"
            + "\n".join(f"- {p}" for p in problems)
        )
