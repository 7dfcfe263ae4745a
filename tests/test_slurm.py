"""The workflow on a real single-node SLURM cluster (tests/slurm_cluster.py): Debian's
slurmctld, slurmd, munge, and slurmdbd with MariaDB for accounting, started by the tests.

- Through `--profile profiles/slurm` the bundled demo (and, below, the shared three-checkpoint
  project, conftest's `finished`)
  ends with the same results as its local run (accounting on: the executor polls sacct);
  without accounting, `--slurm-status-command squeue` sees jobs end (two chained jobs, the same
  arrays as the local run).
- On a node of 2 CPUs, a run whose jobs ask for more, and a run without accounting that would
  poll sacct, stop before anything is submitted with a message naming the job or the setting:
  never a job pending forever or a run waiting without a word.

Needs root and apt-get (as in CI: the packages are installed by the fixture when missing); else
the module is skipped and says why. `CKPT_EVAL_REQUIRE_SLURM=1` makes that a failure instead.
Every Snakemake run is bounded with `timeout -k` (Snakemake ignores SIGTERM while cluster jobs
run), and jobs left behind are cancelled.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import slurm_cluster
import yaml
from conftest import REPO, SNAKEMAKE, make_project
from debian_packages import skip_or_fail

pytestmark = pytest.mark.workflow

PROFILE = REPO / "profiles" / "slurm"
# seconds a whole run may take before `timeout` stops it (SIGTERM, SIGKILL 15 s later)
RUN_LIMIT = 420
# the first status check after a submission: the profile's 10 s, faster here (MinJobAge 300 s
# stays above 3 x this, so squeue is trusted); the profile's value is what users run with
STATUS_DELAY = "5"


def _unavailable(request: pytest.FixtureRequest, reason: str) -> None:
    """Skip (or fail, with CKPT_EVAL_REQUIRE_SLURM=1), saying why."""
    skip_or_fail(request, "SLURM cluster tests", "CKPT_EVAL_REQUIRE_SLURM", reason)


def _cluster(request: pytest.FixtureRequest, **settings) -> slurm_cluster.Cluster:
    if os.geteuid() != 0:
        _unavailable(request, "needs root (it installs Debian's slurm packages and starts daemons)")
    try:
        installed = slurm_cluster.install(accounting=settings.get("accounting", True))
    except slurm_cluster.Unavailable as error:
        _unavailable(request, str(error))
    cluster = slurm_cluster.Cluster(slurm_cluster.new_root(), **settings)
    cluster.timings["install"] = installed
    cluster.start()
    return cluster


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest):
    """With accounting; the node declares this machine's true CPU count."""
    cluster = _cluster(request)
    yield cluster
    cluster.stop()
    shutil.rmtree(cluster.root, ignore_errors=True)


@pytest.fixture(scope="module")
def small_cluster(request: pytest.FixtureRequest):
    """A node of 2 CPUs and no accounting database (AccountingStorageType none)."""
    cluster = _cluster(request, cpus=2, accounting=False)
    yield cluster
    cluster.stop()
    shutil.rmtree(cluster.root, ignore_errors=True)


def copy_project(finished: Path, to: Path) -> Path:
    """The inputs and config of the shared local run, without its results."""
    for name in ("real", "samples"):
        shutil.copytree(finished / name, to / name)
    for name in ("prompts.csv", "config.yaml"):
        shutil.copy(finished / name, to / name)
    return to / "config.yaml"


def slurm_run(
    cluster: slurm_cluster.Cluster,
    workdir: Path,
    config: Path,
    *args: str,
    limit: int = RUN_LIMIT,
    profile: Path = PROFILE,
) -> tuple[subprocess.CompletedProcess[str], float]:
    """`snakemake --profile profiles/slurm` on the cluster, bounded; returns it and its seconds.
    Jobs it left behind are cancelled (and make the test fail)."""
    command = [
        "timeout", "-k", "15", str(limit),
        SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir),
        "--configfile", str(config), "--profile", str(profile), *args,
    ]  # fmt: skip
    env = dict(cluster.env(), PYTHONPATH=str(REPO))
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir)
    seconds = time.monotonic() - start
    left = cluster.cancel_jobs()
    assert done.returncode != 124, f"snakemake did not end in {limit} s:\n{done.stderr[-4000:]}"
    assert not left, f"jobs left in the queue: {left}"
    return done, seconds


def results(root: Path) -> tuple[dict, bytes]:
    out = root / "results" / "t"
    data = json.loads((out / "consolidated_results.json").read_text())
    data["provenance"].pop("generated_at")
    return data, (out / "metrics.csv").read_bytes()


def submitted(cluster: slurm_cluster.Cluster) -> list[str]:
    """Every job the cluster knows (queued, running or ended within MinJobAge)."""
    done = cluster.run("squeue", "-h", "--states=all", "-o", "%i %j %T")
    return done.stdout.split("\n") if done.stdout.strip() else []


def assert_same_results(finished: Path, root: Path, done: subprocess.CompletedProcess[str]):
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    local, local_csv = results(finished)
    remote, remote_csv = results(root)
    assert [c["name"] for c in remote["checkpoints"]] == [c["name"] for c in local["checkpoints"]]
    for ours, theirs in zip(remote["checkpoints"], local["checkpoints"], strict=True):
        for key in ("fid", "kid_mean", "kid_std", "n_images", "rank"):
            assert ours[key] == theirs[key], (ours["name"], key)
    assert remote == local  # every number, the recommendation and the provenance
    assert remote_csv == local_csv
    assert (root / "results" / "t" / "report.html").exists()


def demo_project(to: Path) -> Path:
    """The bundled demo (5 checkpoints of 40, 100 real images) as a project of its own."""
    shutil.copytree(REPO / "demo", to / "demo")
    config = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    config.update(run="t", device="cpu")
    path = to / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_the_demo_runs_on_slurm_with_the_local_results(
    cluster: slurm_cluster.Cluster, tmp_path: Path
) -> None:
    local_root, remote_root = tmp_path / "local", tmp_path / "slurm"
    local_root.mkdir()
    remote_root.mkdir()
    local = demo_project(local_root)
    done = subprocess.run(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(local_root), "--configfile",
         str(local), "--cores", str(cluster.cpus)],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)),
        cwd=local_root,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    config = demo_project(remote_root)
    done, seconds = slurm_run(
        cluster,
        remote_root,
        config,
        "--cores", str(cluster.cpus),  # group jobs no wider than the node
        "--slurm-init-seconds-before-status-checks", STATUS_DELAY,
    )  # fmt: skip
    print(
        f"SLURM: install {cluster.timings['install']:.1f} s, bring-up "
        f"{cluster.timings['bring_up']:.1f} s, demo run {seconds:.0f} s"
    )
    assert_same_results(local_root, remote_root, done)
    assert results(remote_root)[0]["recommendation"]["checkpoint"] == "step-1500"
    assert list(cluster.pids()) == list(slurm_cluster.DAEMONS)
    # the jobs really went through SLURM, with accounting: sacct saw them complete
    states = cluster.run("sacct", "-X", "-n", "-P", "-o", "JobName,State,AllocCPUS").stdout
    rows = [line.split("|") for line in states.splitlines() if line]
    assert len(rows) >= 5, states
    assert {state for _, state, _ in rows} == {"COMPLETED"}, states
    assert max(int(cpus) for *_, cpus in rows) <= cluster.cpus


def test_jobs_bigger_than_the_node_stop_the_run_before_submitting(
    small_cluster: slurm_cluster.Cluster, tmp_path: Path
) -> None:
    config = make_project(tmp_path, {"step-100": 2, "step-200": 2}, n_real=3, feature_threads=4)
    before = submitted(small_cluster)
    # the profile as shipped: cores 4, so group jobs 4 wide, and feature jobs of 4 threads
    done, seconds = slurm_run(
        small_cluster, tmp_path, config, "--slurm-status-command", "squeue", limit=120
    )
    message = done.stdout + done.stderr
    assert done.returncode != 0, message
    assert seconds < 60, seconds
    assert submitted(small_cluster) == before, "nothing may be submitted"
    assert "nothing was submitted" in message
    # the rule, what it asks for, what the partition offers, the setting to change
    assert "rule `inception_real` asks for 4 CPUs" in message, message
    assert f"partition `{small_cluster.partition}` (largest node" in message
    assert "2 CPUs" in message
    assert "`feature_threads`" in message
    assert "group job `features`" in message and "set `cores:`" in message
    assert "PartitionConfig" in message


def test_without_accounting_a_sacct_run_stops_and_a_squeue_run_works(
    small_cluster: slurm_cluster.Cluster, finished: Path, tmp_path: Path
) -> None:
    config = copy_project(finished, tmp_path)
    assert small_cluster.run("sacct", "-n", check=False).returncode != 0  # no accounting here
    cores = ("--cores", str(small_cluster.cpus))

    # the default status command (sacct, which fails here) would never see a job end
    before = submitted(small_cluster)
    done, seconds = slurm_run(small_cluster, tmp_path, config, *cores, limit=120)
    message = done.stdout + done.stderr
    assert done.returncode != 0 and seconds < 60, message
    assert submitted(small_cluster) == before, "nothing may be submitted"
    assert "polls job states with sacct" in message, message
    assert "--slurm-status-command squeue" in message
    assert "MinJobAge (here 300 s)" in message

    # as the message says, with squeue the executor sees the jobs end: two jobs, one after the
    # other (the real set's manifest, then its Inception features), the same arrays as locally
    target = "results/t/features/inception/real.npz"
    done, seconds = slurm_run(
        small_cluster,
        tmp_path,
        config,
        *cores,
        "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", STATUS_DELAY,
        target,
    )  # fmt: skip
    print(f"SLURM without accounting (squeue): 2 jobs in {seconds:.0f} s")
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    with np.load(tmp_path / target) as ours, np.load(finished / target) as theirs:
        assert sorted(ours.files) == sorted(theirs.files)
        for key in ours.files:
            assert np.array_equal(ours[key], theirs[key]), key
    names = {line.split()[1] for line in submitted(small_cluster) if line.strip()}
    assert len(names) >= 1  # the run's jobs (by its run id) went through this cluster


def test_squeue_with_a_short_min_job_age_would_fall_back_to_sacct(
    small_cluster: slurm_cluster.Cluster, tmp_path: Path
) -> None:
    """MinJobAge 300 s and a first status check after 200 s: the executor would use sacct
    (which fails here), and the run stops saying so."""
    config = make_project(tmp_path, {"step-100": 2}, n_real=3)
    done, _ = slurm_run(
        small_cluster,
        tmp_path,
        config,
        "--cores", "2",
        "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", "200",
        limit=120,
    )  # fmt: skip
    message = done.stdout + done.stderr
    assert done.returncode != 0, message
    assert "falls back to sacct" in message, message


def test_gpu_profile_on_a_cluster_without_a_gpu_partition_stops(
    small_cluster: slurm_cluster.Cluster, tmp_path: Path
) -> None:
    config = make_project(tmp_path, {"step-100": 2}, n_real=3, device="cuda")
    before = submitted(small_cluster)
    done, seconds = slurm_run(
        small_cluster,
        tmp_path,
        config,
        "--cores", "2",
        "--slurm-status-command", "squeue",
        limit=120,
        profile=REPO / "profiles" / "slurm-gpu",
    )  # fmt: skip
    message = done.stdout + done.stderr
    assert done.returncode != 0 and seconds < 60, message
    assert submitted(small_cluster) == before
    assert "rule `inception_real` asks for partition `gpu`, which sinfo does not list" in message
    assert f"(partitions: {small_cluster.partition})" in message


def test_cluster_script_starts_and_stops_its_daemons_by_pid(
    request: pytest.FixtureRequest, small_cluster: slurm_cluster.Cluster
) -> None:
    node = small_cluster.run("sinfo", "-h", "-N", "-o", "%N %c %T").stdout.split()
    assert node == [small_cluster.node, "2", "idle"]  # 2 CPUs declared, whatever the machine
    # one more (no accounting: no database), started and stopped again here
    other = _cluster(request, accounting=False)
    pids = other.pids()
    assert list(pids) == ["munged", "slurmctld", "slurmd"]  # in start order
    assert all(slurm_cluster.pid_alive(pid) for pid in pids.values())
    assert other.ports["slurmctld"] != small_cluster.ports["slurmctld"]  # side by side
    other.stop()
    assert not any(slurm_cluster.pid_alive(pid) for pid in pids.values())
    assert not (other.root / "pids").exists()
    assert small_cluster.run("sinfo", "-h", "-o", "%T").stdout.split() == ["idle"]  # untouched
    shutil.rmtree(other.root, ignore_errors=True)
