"""ckpt_eval.cluster without a cluster: sinfo parsing, what a job asks for, the fit and
status-command checks and their messages (tests/test_slurm.py runs them on a real one)."""

from __future__ import annotations

import math
import subprocess
from types import SimpleNamespace

import pytest

from ckpt_eval import cluster
from ckpt_eval.errors import CkptEvalError

SINFO = """\
node1|cpu*|2|21694|infinite|(null)
node2|cpu*|8|64000+|infinite|(null)
gpu1|gpu|32|256000|1-00:00:00|gpu:a100:4(S:0-1)
gpu2|gpu|16|128000|1-00:00:00|gpu:v100:2,gpu:t4:1
"""


def test_sinfo_partitions_nodes_and_limits() -> None:
    partitions = cluster.parse_sinfo(SINFO)
    assert sorted(partitions) == ["cpu", "gpu"]
    cpu, gpu = partitions["cpu"], partitions["gpu"]
    assert cpu.default and not gpu.default
    assert cpu.largest() == cluster.Node("node2", 8, 64000)
    assert math.isinf(cpu.time_limit_min) and gpu.time_limit_min == 1440
    assert gpu.largest().gpus == 4 and gpu.largest().gpu_types == {"a100"}
    assert gpu.nodes[1].gpus == 3 and gpu.nodes[1].gpu_types == {"v100", "t4"}


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("infinite", math.inf), ("30:00", 30), ("2:00:00", 120), ("1-00:00:00", 1440),
     ("1-12", 2160), ("45", 45), ("UNLIMITED", math.inf)],
)  # fmt: skip
def test_time_limits(text: str, minutes: float) -> None:
    assert cluster.parse_time_limit(text) == minutes


def job(rule: str, threads: int = 1, **resources) -> SimpleNamespace:
    return SimpleNamespace(
        is_group=lambda: False,
        rule=SimpleNamespace(name=rule),
        threads=threads,
        resources=resources,
    )


def group(name: str, jobs: list, **resources) -> SimpleNamespace:
    return SimpleNamespace(
        is_group=lambda: True, groupid=name, jobs=jobs, threads=4, resources=resources
    )


def test_requests_follow_the_executors_cpu_order() -> None:
    # cpus_per_task first, then cpus_per_gpu x GPUs for a GPU job, then the threads
    assert cluster.request_of(job("a", 2, cpus_per_task=3)).cpus == 3
    assert cluster.request_of(job("a", 2, gpu=2, cpus_per_gpu=4)).cpus == 8
    assert cluster.request_of(job("a", 2)).cpus == 2
    assert cluster.request_of(job("a", 2, mem_mb_per_cpu=1000)).mem_mb == 2000
    gres = cluster.request_of(job("a", gres="gpu:a100:2"))
    assert (gres.gpus, gres.gpu_type) == (2, "a100")
    model = cluster.request_of(job("a", gpu=1, gpu_model="h100", slurm_partition="gpu"))
    assert (model.gpus, model.gpu_type, model.partition) == (1, "h100", "gpu")
    grouped = cluster.request_of(
        group("features", [job("clip_checkpoint"), job("inception_checkpoint")], cpus_per_task=4)
    )
    assert grouped.rules == ("clip_checkpoint", "inception_checkpoint")
    assert grouped.what() == "group job `features` (rules clip_checkpoint, inception_checkpoint)"


def test_a_job_too_big_for_every_node_is_named_with_the_setting_to_change() -> None:
    partitions = cluster.parse_sinfo("vm|main*|2|21694|infinite|(null)\n")
    requests = [
        cluster.request_of(job("inception_real", 4, cpus_per_task=4, mem_mb=8000, runtime=60)),
        cluster.request_of(job("clip_real", 2, cpus_per_task=2, mem_mb=30000)),
        cluster.request_of(job("report", 1, cpus_per_task=1, mem_mb=4000)),
        cluster.request_of(group("features", [job("clip_checkpoint")], cpus_per_task=4)),
        cluster.request_of(job("metrics_checkpoint", 3, cpus_per_task=3)),
    ]
    problems = cluster.fit_problems(requests + requests, partitions)
    assert len(problems) == 4  # each distinct request once; report fits
    cpus, memory, grouped, metrics = problems
    assert cpus.startswith("rule `inception_real` asks for 4 CPUs, 8000 MB, 60 min")
    assert "partition `main` (largest node vm: 2 CPUs and 21694 MB)" in cpus
    assert "pending forever (reason PartitionConfig)" in cpus
    assert "`feature_threads`" in cpus and "to at most 2" in cpus
    assert "rule `clip_real` asks for 2 CPUs, 30000 MB" in memory
    assert "`mem_mb` of `clip_real` under `set-resources`" in memory
    assert "group job `features`" in grouped and "set `cores:`" in grouped
    # each rule's threads are named by the key that sets them
    assert "lower `metrics_threads` in the config (the metrics jobs' threads" in metrics


def test_gpus_partitions_and_time_limits() -> None:
    partitions = cluster.parse_sinfo(SINFO)
    fits = cluster.request_of(job("clip_real", 2, gpu=1, slurm_partition="gpu", runtime=60))
    assert cluster.fit_problems([fits], partitions) == []
    typed = cluster.request_of(job("clip_real", gres="gpu:h100:1", slurm_partition="gpu"))
    (problem,) = cluster.fit_problems([typed], partitions)
    assert "1 GPU of type h100" in problem and "gpu_model" in problem
    no_gpu = cluster.request_of(job("clip_real", gpu=1))  # to the default partition: no GPUs
    assert "GPU partition" in cluster.fit_problems([no_gpu], partitions)[0]
    long = cluster.request_of(job("generate", 2, slurm_partition="gpu", gpu=1, runtime=2000))
    (problem,) = cluster.fit_problems([long], partitions)
    assert "allows at most 1440 min" in problem and "PartitionTimeLimit" in problem
    unknown = cluster.request_of(job("report", slurm_partition="bigmem"))
    (problem,) = cluster.fit_problems([unknown], partitions)
    assert "partition `bigmem`, which sinfo does not list" in problem


def fake_slurm(sacct_rc: int = 0, min_job_age: int = 300, sinfo: str | None = SINFO):
    calls = []

    def run(command, **_):
        calls.append(command)
        name = command[0]
        if name == "sinfo":
            rc = 0 if sinfo is not None else 1
            return subprocess.CompletedProcess(command, rc, sinfo or "", "")
        if name == "scontrol":
            out = f"MinJobAge               = {min_job_age} sec\n"
            return subprocess.CompletedProcess(command, 0, out, "")
        if name == "sacct":
            err = "" if sacct_rc == 0 else "sacct: error: Slurm accounting storage is disabled"
            return subprocess.CompletedProcess(command, sacct_rc, "", err)
        raise AssertionError(command)

    return run, calls


def on_path(name: str) -> str:
    return f"/usr/bin/{name}"


def test_status_command_checks() -> None:
    run, calls = fake_slurm(sacct_rc=0)
    assert cluster.status_problem(None, 10, run, on_path) is None
    assert calls[-1][:3] == ["sacct", "-X", "--parsable2"]  # the executor's query shape

    run, _ = fake_slurm(sacct_rc=1)
    problem = cluster.status_problem("sacct", 10, run, on_path)
    assert "accounting storage is disabled" in problem
    assert "--slurm-status-command squeue" in problem and "MinJobAge (here 300 s)" in problem
    assert cluster.status_problem("squeue", 10, run, on_path) is None  # 300 >= 3 x 10

    # squeue asked for, but MinJobAge below 3 x the first delay: the executor uses sacct
    problem = cluster.status_problem("squeue", 200, run, on_path)
    assert "falls back to sacct" in problem
    # without sacct on PATH it stays on squeue, which could miss a short job
    problem = cluster.status_problem("squeue", 200, run, lambda name: None)
    assert "MinJobAge = 300 s only" in problem


def test_check_slurm_run_stops_with_every_problem_or_passes() -> None:
    run, _ = fake_slurm(sacct_rc=1, sinfo="vm|main*|2|21694|infinite|(null)\n")
    jobs = [job("inception_real", 4, cpus_per_task=4, mem_mb=8000)]
    with pytest.raises(CkptEvalError) as raised:
        cluster.check_slurm_run(jobs, "sacct", 10, run, on_path)
    text = str(raised.value)
    assert text.startswith("this SLURM run would wait forever; nothing was submitted:")
    assert "rule `inception_real` asks for 4 CPUs" in text and "polls job states" in text

    run, _ = fake_slurm(sacct_rc=0)
    cluster.check_slurm_run(jobs, "sacct", 10, run, on_path)  # node2 has 8 CPUs

    warnings = []
    run, _ = fake_slurm(sinfo=None)
    cluster.check_slurm_run(jobs, "sacct", 10, run, on_path, warn=warnings.append)
    assert "not checked" in warnings[0]
