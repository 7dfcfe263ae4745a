"""The SLURM profile is valid: a dry run with the real executor plugin plans every job with the
resources, threads and groups the profile gives, and submits nothing.

The SLURM plugin asks `scontrol` about the cluster even in a dry run (and tolerates it failing).
So that no real cluster is touched when these tests run on a login node, fake `sbatch`, `srun`,
`salloc`, `sinfo`, `squeue`, `sacct` and `scontrol` come first on PATH: each records its call and
fails, and the test fails if a submitting one was called at all.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import REPO, make_project, snakemake

pytestmark = pytest.mark.workflow

SLURM = REPO / "profiles" / "slurm"
PROFILE = yaml.safe_load((SLURM / "config.yaml").read_text(encoding="utf-8"))
SLURM_GPU = REPO / "profiles" / "slurm-gpu"
GPU_PROFILE = yaml.safe_load((SLURM_GPU / "config.yaml").read_text(encoding="utf-8"))
# the rules that run a network on the device (resources: gpu=GPU in workflow/rules/features.smk)
FEATURE_RULES = {
    "inception_real",
    "inception_checkpoint",
    "clip_model",
    "clip_checkpoint",
    "clip_real",
}
# planned only with a generate: section (test_generate_jobs_get_the_profiles_resources)
GENERATE_RULES = {"generate"}
# the rules whose threads (and so SLURM CPUs) are the config's feature_threads
THREADED_RULES = (FEATURE_RULES - {"clip_model"}) | GENERATE_RULES
FEATURE_THREADS = 2  # the schema's default
METRICS_THREADS = 2  # the schema's default of metrics_threads (the metrics jobs' threads)


def expected_threads(rule: str, feature_threads: int = FEATURE_THREADS) -> int:
    """A rule's threads: from the config's feature_threads or metrics_threads, else one."""
    if rule in THREADED_RULES:
        return feature_threads
    if rule == "metrics_checkpoint":
        return METRICS_THREADS
    return 1


SUBMIT = ("sbatch", "srun", "salloc")
QUERY = ("sinfo", "squeue", "sacct", "scontrol")
# components per checkpoint in each group: a checkpoint's Inception and CLIP jobs each organize
# its images themselves, not connected to each other (two); its metrics job one
COMPONENTS_PER_CHECKPOINT = {"features": 2, "metrics": 1}
N_CHECKPOINTS = 6  # 12 feature components: more than one features group job


@dataclass
class PlannedJob:
    rule: str
    group: str | None
    threads: int = 1
    wildcards: str | None = None
    resources: dict[str, str] = field(default_factory=dict)


def planned_jobs(output: str) -> tuple[list[PlannedJob], list[str]]:
    """The jobs of a dry run's printout, and the group jobs (by group name) in order.

    A group job's header is followed by its jobs, indented; a job at the left margin is alone.
    """
    jobs: list[PlannedJob] = []
    groups: list[str] = []
    group = None
    for line in output.splitlines():
        if header := re.search(r"Group job (\S+) \(", line):
            group = header.group(1)
            groups.append(group)
        elif rule := re.match(r"^(\s*)(?:local)?rule (\w+):$", line):
            jobs.append(PlannedJob(rule.group(2), group if rule.group(1) else None))
        elif jobs and (threads := re.match(r"^\s+threads: (\d+)$", line)):
            jobs[-1].threads = int(threads.group(1))
        elif jobs and (wildcards := re.match(r"^\s+wildcards: (.+)$", line)):
            jobs[-1].wildcards = wildcards.group(1)
        elif jobs and (resources := re.match(r"^\s+resources: (.+)$", line)):
            pairs = (item.split("=", 1) for item in resources.group(1).split(", "))
            jobs[-1].resources = {key: value for key, value in pairs}
    return jobs, groups


def profile_value(expression: int | str, threads: int = 1) -> int:
    """A profile resource such as `2000 * attempt` or `threads`, on the first attempt."""
    return int(eval(str(expression), {"__builtins__": {}}, {"attempt": 1, "threads": threads}))


def fake_slurm(folder: Path) -> tuple[Path, Path]:
    """Fake SLURM commands in `folder`; returns the folder and the file their calls go to."""
    folder.mkdir()
    calls = folder / "calls.log"
    for name in SUBMIT + QUERY:
        script = folder / name
        script.write_text(
            f'#!/bin/sh\necho "{name} $*" >> "{calls}"\n'
            f'echo "fake {name}: a dry run must not reach SLURM" >&2\nexit 1\n'
        )
        script.chmod(0o755)
    return folder, calls


def slurm_dry_run(
    root: Path, device: str, config: Path | None = None, profile: Path = SLURM, **settings
) -> tuple[list[PlannedJob], list[str], str]:
    config = config or make_project(
        root,
        {f"step-{i}00": 2 for i in range(1, N_CHECKPOINTS + 1)},
        n_real=3,
        device=device,
        **settings,
    )
    fakes, calls = fake_slurm(root / "fake-slurm")
    done = snakemake(
        root,
        config,
        "--profile",
        str(profile),
        "--dry-run",
        cores=None,
        env={"PATH": f"{fakes}{os.pathsep}{os.environ['PATH']}"},
    )
    log = calls.read_text() if calls.exists() else ""
    assert not [c for c in log.splitlines() if c.split()[0] in SUBMIT], log
    jobs, groups = planned_jobs(done.stdout)
    return jobs, groups, done.stdout + done.stderr


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_slurm_profile_plans_every_job_with_the_profiles_resources(
    tmp_path: Path, device: str
) -> None:
    jobs, groups, output = slurm_dry_run(tmp_path, device)
    assert "profiles/slurm" in output and "profiles/default" in output  # both profiles in force
    jobs = [j for j in jobs if j.rule != "all"]  # the target rule runs nothing
    rules = {j.rule for j in jobs}
    per_checkpoint = {j.rule for j in jobs if j.wildcards}
    # every job planned: one per rule, or one per checkpoint
    assert rules == set(PROFILE["set-resources"]) - GENERATE_RULES, "each rule has resources"
    for rule in rules:
        count = sum(j.rule == rule for j in jobs)
        assert count == (N_CHECKPOINTS if rule in per_checkpoint else 1), rule

    defaults = PROFILE["default-resources"]
    for job in jobs:
        given = {**defaults, **PROFILE["set-resources"][job.rule]}
        for key in ("mem_mb", "runtime", "cpus_per_task"):
            expected = profile_value(given[key], job.threads)
            assert job.resources[key] == str(expected), (job.rule, key)
        # threads from the config's threads keys; SLURM gives each job as
        # many CPUs as it runs threads
        assert job.threads == expected_threads(job.rule), job.rule
        assert int(job.resources["cpus_per_task"]) == job.threads, job.rule
        # a GPU only for the feature rules, and only when the config's device asks for one
        gpu = job.resources.get("gpu", "0")
        assert gpu == ("1" if device == "cuda" and job.rule in FEATURE_RULES else "0"), job.rule
        assert job.group == PROFILE["groups"].get(job.rule), job.rule

    # many checkpoints make few cluster jobs: each group job holds up to group-components
    limits = PROFILE["group-components"]
    assert set(groups) == set(limits)
    for name, limit in limits.items():
        components = N_CHECKPOINTS * COMPONENTS_PER_CHECKPOINT[name]
        assert groups.count(name) == math.ceil(components / limit), name


def test_generate_jobs_get_the_profiles_resources_and_a_gpu(tmp_path: Path) -> None:
    from trainer_outputs import lora_file

    for step in (100, 200):
        lora_file(tmp_path / "loras" / f"step-{step}.safetensors")
    config = make_project(tmp_path, {}, n_real=3, device="cuda")
    data = yaml.safe_load(config.read_text())
    data.pop("prompts")
    data["samples"] = {"root": "loras"}
    data["generate"] = {"base_model": "base", "prompts": ["a dog"], "images_per_prompt": 2}
    config.write_text(yaml.safe_dump(data))
    jobs, _, _ = slurm_dry_run(tmp_path, "cuda", config)
    generate = [j for j in jobs if j.rule == "generate"]
    assert len(generate) == 3  # the base model alone, step-100, step-200
    given = {**PROFILE["default-resources"], **PROFILE["set-resources"]["generate"]}
    for job in generate:
        for key in ("mem_mb", "runtime", "cpus_per_task"):
            assert job.resources[key] == str(profile_value(given[key], job.threads)), key
        assert job.threads == FEATURE_THREADS == int(job.resources["cpus_per_task"])
        assert job.resources["gpu"] == "1"
        assert job.group is None  # one long job each, not batched


def test_cpus_come_from_the_configs_threads_alone(tmp_path: Path) -> None:
    """One place for the CPUs: the profile sets no threads and no per-rule cpus_per_task, so
    `feature_threads: 3` makes every feature job ask SLURM for 3 CPUs (and compute with 3)."""
    assert "set-threads" not in PROFILE
    assert PROFILE["default-resources"]["cpus_per_task"] == "threads"
    assert not [r for r, res in PROFILE["set-resources"].items() if "cpus_per_task" in res]
    jobs, _, _ = slurm_dry_run(tmp_path, "cpu", feature_threads=3)
    for job in jobs:
        if job.rule == "all":
            continue
        cpus = expected_threads(job.rule, feature_threads=3)
        assert (job.threads, job.resources["cpus_per_task"]) == (cpus, str(cpus)), job.rule


# the rules the GPU profile sends to the GPU partition: those that ask for a GPU with device cuda
GPU_RULES = FEATURE_RULES | GENERATE_RULES


def test_gpu_profile_is_the_slurm_profile_with_the_gpu_jobs_on_a_gpu_partition() -> None:
    expected = yaml.safe_load(yaml.safe_dump(PROFILE))
    for rule in GPU_RULES:
        expected["set-resources"][rule]["slurm_partition"] = "gpu"
    assert GPU_PROFILE == expected


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_gpu_profile_plans_gpu_jobs_on_the_gpu_partition(tmp_path: Path, device: str) -> None:
    jobs, groups, output = slurm_dry_run(tmp_path, device, profile=SLURM_GPU)
    assert "profiles/slurm-gpu" in output
    jobs = [j for j in jobs if j.rule != "all"]
    assert {j.rule for j in jobs} == set(PROFILE["set-resources"]) - GENERATE_RULES
    for job in jobs:
        on_gpu = job.rule in GPU_RULES
        assert job.resources.get("slurm_partition") == ("gpu" if on_gpu else None), job.rule
        gpu = "1" if device == "cuda" and on_gpu else "0"
        assert job.resources.get("gpu", "0") == gpu, job.rule
        assert int(job.resources["cpus_per_task"]) == job.threads, job.rule
    assert set(groups) == set(PROFILE["group-components"])


class Resources(dict):
    """A job's resources as the SLURM plugin reads them: `.get()` and attributes."""

    __getattr__ = dict.__getitem__


@pytest.mark.parametrize(
    ("resources", "flags"),
    [
        ({"gpu": 1}, "--gpus=1"),  # the workflow's gpu resource (device: cuda)
        ({"gpu": 0}, ""),  # device: cpu
        ({"gpu": 1, "gpu_model": "a100"}, "--gpus=a100:1"),
        ({"gpu": 0, "gres": "gpu:a100:1"}, "--gres=gpu:a100:1"),
        ({"gpu": 1, "gres": "gpu:1"}, "--gres=gpu:1 --gpus=1"),  # why gres wants gpu: 0
    ],
)
def test_gpu_resources_become_these_sbatch_flags(resources: dict, flags: str) -> None:
    """How the pinned plugin maps gpu / gpu_model / gres (docs/cluster.md, GPU partitions)."""
    from types import SimpleNamespace

    from snakemake_executor_plugin_slurm.utils import set_gres_string

    job = SimpleNamespace(resources=Resources(resources))
    assert set_gres_string(job).strip() == flags
