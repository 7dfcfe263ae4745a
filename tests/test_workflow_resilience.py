"""The workflow on bad inputs, after a kill, with stale caches, and run twice: never a quiet
wrong number, nothing finished lost."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from bad_inputs import CORPUS
from conftest import REPO, SNAKEMAKE, make_project, only_own_script, snakemake

from ckpt_eval.features.cache import load_features, save_features

pytestmark = pytest.mark.workflow

NUMBERS = ("fid", "kid_mean", "kid_std", "fid_ci", "kid_ci", "prdc")


def _result(root: Path) -> dict:
    return json.loads((root / "results" / "t" / "consolidated_results.json").read_text())


def _numbers(root: Path) -> dict[str, dict]:
    return {r["name"]: {k: r[k] for k in NUMBERS} for r in _result(root)["checkpoints"]}


def _corpus_project(root: Path, **overrides) -> Path:
    """Two checkpoints: step-1 with every corpus file beside 3 clean ones; step-2 with a file
    copied from step-1 and an internal duplicate. The prompt CSV has a BOM, quoted commas and
    an embedded newline; every sample has a prompt."""
    config = make_project(root, {"step-1": 3, "step-2": 3}, **overrides)
    samples = root / "samples"
    for name, maker, _ in CORPUS:
        maker(samples / "step-1" / name)
    shutil.copy(samples / "step-1" / "img_000.png", samples / "step-2" / "from_step_1.png")
    shutil.copy(samples / "step-2" / "img_000.png", samples / "step-2" / "again.png")
    files = sorted(p.relative_to(samples).as_posix() for p in samples.rglob("*") if p.is_file())
    with open(root / "prompts.csv", "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "prompt"])
        for i, file in enumerate(files):
            writer.writerow([file, f'a "shoe", number {i},\nsecond line'])
    return config


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_bad_input_corpus_through_the_workflow(tmp_path: Path) -> None:
    config = _corpus_project(tmp_path, on_bad_image="skip")
    snakemake(tmp_path, config)
    rows = {r["name"]: r for r in _result(tmp_path)["checkpoints"]}
    bad = {name for name, _, outcome in CORPUS if outcome == "error"}
    handled = [(name, outcome) for name, _, outcome in CORPUS if outcome != "error"]
    step1 = rows["step-1"]
    assert {Path(s["path"]).name for s in step1["skipped_images"]} == bad
    assert step1["n_images"] == 3 + len(handled)
    notes = " | ".join(c["note"] for c in step1["conversions"])
    for name, outcome in handled:
        assert outcome in notes, name
    assert rows["step-2"]["shared_with"] == {"step-1": 1}
    assert rows["step-1"]["shared_with"] == {"step-1": 1} or rows["step-1"]["shared_with"] == {
        "step-2": 1
    }
    assert rows["step-2"]["duplicates"] == [["step-2/again.png", "step-2/img_000.png"]]
    for row in rows.values():
        assert row["fallback_count"] == 0  # the BOM CSV's quoted, multi-line prompts all matched
    html = (tmp_path / "results" / "t" / "report.html").read_text(encoding="utf-8")
    parser = _Text()
    parser.feed(html)
    text = "".join(parser.text)
    for name in bad:
        assert name in text
    assert "EXIF orientation 6 ignored" in text and "byte-identical" in text
    assert parser.tags.count("script") == 1  # its own, and no other can run:
    only_own_script(html)

    # the same inputs with the default on_bad_image: error stop at organize (the first step of
    # each of the checkpoint's feature jobs, before torch is imported): each job that ran names
    # the same one file, once, without a Python traceback, and nothing of the finished run is lost
    data = yaml.safe_load(config.read_text())
    data["on_bad_image"] = "error"
    config.write_text(yaml.safe_dump(data))
    shutil.rmtree(tmp_path / "results" / "t" / "manifests")
    shutil.rmtree(tmp_path / "results" / "t" / "features" / "clip")
    done = snakemake(tmp_path, config, check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    failed = [
        output.count(f"ckpt-eval error in rule {rule}")
        for rule in ("inception_checkpoint", "clip_checkpoint")
    ]
    assert set(failed) <= {0, 1} and sum(failed) >= 1
    named = {line for line in output.splitlines() if line.startswith("  file: ")}
    assert len(named) == 1 and Path(named.pop().removeprefix("  file: ")).name in bad
    assert output.count("  file: ") == sum(failed)
    assert "Traceback" not in output
    assert "on_bad_image: skip" in output
    assert (tmp_path / "results" / "t" / "features" / "inception" / "real.npz").exists()


def test_a_run_killed_during_feature_extraction_resumes_to_the_same_numbers(
    tmp_path: Path,
) -> None:
    reference = tmp_path / "reference"
    killed = tmp_path / "killed"
    for root in (reference, killed):
        make_project(root, {"step-1": 12, "step-2": 12}, n_real=24)
    snakemake(reference, reference / "config.yaml")

    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(killed)]
    command += ["--configfile", str(killed / "config.yaml"), "--cores", "2"]
    process = subprocess.Popen(
        command, cwd=killed, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    logs = killed / "results" / "t" / "logs" / "features"
    deadline = time.monotonic() + 120
    while not (logs.is_dir() and any(logs.glob("inception_*.log"))):
        assert process.poll() is None and time.monotonic() < deadline, "no extraction started"
        time.sleep(0.05)
    time.sleep(1.0)  # the network is loaded and the first batches are running
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed / "results" / "t" / "consolidated_results.json").exists()
    # whatever feature file exists is complete (written under a temp name, then renamed)
    for path in (killed / "results" / "t" / "features").rglob("*.npz"):
        load_features(path)

    snakemake(killed, killed / "config.yaml", "--unlock")
    snakemake(killed, killed / "config.yaml")  # profiles/default: rerun-incomplete
    assert _numbers(killed) == _numbers(reference)


def _planned_rules(root: Path, config: Path) -> dict[str, int]:
    done = snakemake(root, config, "--dry-run", "--quiet", "rules")
    counts: dict[str, int] = {}
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def test_a_new_clip_model_reruns_clip_only_and_new_weights_inception_only(
    tmp_path: Path,
) -> None:
    config = make_project(tmp_path, {"step-1": 4, "step-2": 4})
    snakemake(tmp_path, config)
    data = yaml.safe_load(config.read_text())

    clip = tmp_path / "clip.yaml"
    clip.write_text(yaml.safe_dump({**data, "clip": {"model": "other-clip", "required": False}}))
    plan = _planned_rules(tmp_path, clip)
    assert plan["clip_model"] == 1 and plan["clip_checkpoint"] == 2 and plan["clip_real"] == 1
    assert not any(rule.startswith("inception") for rule in plan)

    from ckpt_eval.extract.inception import bundled_weights_path

    weights = tmp_path / "my-inception.pt"
    shutil.copy(bundled_weights_path(), weights)
    other = tmp_path / "weights.yaml"
    other.write_text(yaml.safe_dump({**data, "fid": {"inception_weights": str(weights)}}))
    plan = _planned_rules(tmp_path, other)
    assert plan["inception_real"] == 1 and plan["inception_checkpoint"] == 2
    assert not any(rule.startswith("clip") for rule in plan)


def test_a_stale_feature_file_is_removed_never_used_and_recomputed(tmp_path: Path) -> None:
    config = make_project(tmp_path, {"step-1": 4, "step-2": 4})
    snakemake(tmp_path, config)
    before = _numbers(tmp_path)
    path = tmp_path / "results" / "t" / "features" / "inception" / "checkpoint_step-2.npz"
    arrays, meta = load_features(path)
    # e.g. copied over from another run: other images behind the same name
    save_features(path, {"inception": arrays["inception"][::-1]}, {**meta, "image_sha256": []})
    done = snakemake(tmp_path, config, check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and output.count("cached features do not match") == 1
    assert "Traceback" not in output and not path.exists()
    snakemake(tmp_path, config)
    assert _numbers(tmp_path) == before


def test_one_or_two_cores_and_runs_from_scratch_give_identical_results(tmp_path: Path) -> None:
    config = make_project(tmp_path, {"step-1": 12, "step-2": 12, "step-3": 12}, n_real=20)

    def run(*args: str) -> str:
        shutil.rmtree(tmp_path / "results", ignore_errors=True)
        shutil.rmtree(tmp_path / ".snakemake", ignore_errors=True)
        snakemake(tmp_path, config, *args)
        data = _result(tmp_path)
        data["provenance"].pop("generated_at", None)
        return json.dumps(data, sort_keys=True)

    first = run("--cores", "1")
    assert run("--cores", "2") == first


def _whole(root: Path) -> str:
    """The results JSON apart from when it was made, and the CSV: what must come back."""
    data = _result(root)
    data["provenance"].pop("generated_at", None)
    csv_text = (root / "results" / "t" / "metrics.csv").read_text(encoding="utf-8")
    return json.dumps(data, sort_keys=True) + csv_text


def _up_to_date(root: Path, config: Path) -> None:
    done = snakemake(root, config, "--dry-run")
    assert "Nothing to be done" in done.stdout + done.stderr, done.stdout


@pytest.fixture
def healthy(finished: Path) -> Path:
    """The shared finished run (conftest: step-100, checkpoint-200, e000003); the tests here
    work on copies of it."""
    return finished


def _copy(healthy: Path, tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "run"
    shutil.copytree(healthy, root, symlinks=True)
    return root, root / "config.yaml"


# one file of every kind a run keeps (and the results), spread over the checkpoints
DELETED = (
    "features/inception/checkpoint_step-100.npz",
    "features/clip/checkpoint_checkpoint-200.npz",
    "features/clip/real.npz",
    "manifests/real.json",
    "metrics_checkpoint_step-100.json",
    "bootstrap/checkpoint_checkpoint-200.npz",
    "plots",
    "grids",
    "report.html",
)
TRUNCATED = (
    "features/inception/real.npz",
    "features/clip/model.json",
    "manifests/checkpoint_checkpoint-200.json",
    "features/clip/checkpoint_step-100.npz",
    "metrics_checkpoint_checkpoint-200.json",
    "bootstrap/checkpoint_step-100.npz",
    "consolidated_results.json",
    "metrics.csv",
    "report.md",
)


def test_deleted_and_truncated_caches_heal_in_one_plain_rerun(
    healthy: Path, tmp_path: Path
) -> None:
    """The trap of issue 17: Snakemake does not rebuild a deleted intermediate file whose
    downstream outputs are up to date, and trusts a truncated one. Every kept file is a target,
    and damaged ones are forced at plan time: one plain rerun restores everything, same numbers."""
    root, config = _copy(healthy, tmp_path)
    before = _whole(root)
    out = root / "results" / "t"
    for name in DELETED:
        shutil.rmtree(out / name) if (out / name).is_dir() else (out / name).unlink()
    snakemake(root, config)
    assert all((out / name).exists() for name in DELETED)
    assert _whole(root) == before
    _up_to_date(root, config)

    for name in TRUNCATED:
        path = out / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    done = snakemake(root, config)
    output = done.stdout + done.stderr
    assert f"ckpt-eval: {len(TRUNCATED)} damaged file(s)" in output
    for name in TRUNCATED:
        assert f"results/t/{name}: " in output
    assert _whole(root) == before
    _up_to_date(root, config)


def test_content_damage_is_found_by_the_reader_and_the_advice_heals_it(
    healthy: Path, tmp_path: Path
) -> None:
    """What the plan-time look cannot see (a bit flipped inside an array, another checkpoint's
    features, a manifest edited by hand) the job reading the file finds: it removes the file,
    says to run the same command again, and that run restores the same numbers."""
    root, config = _copy(healthy, tmp_path)
    before = _whole(root)
    out = root / "results" / "t"
    features = out / "features" / "inception"

    def flip(path: Path) -> None:
        data = bytearray(path.read_bytes())
        data[len(data) // 3] ^= 0xFF  # inside the rows: the zip directory is intact
        path.write_bytes(bytes(data))

    def other_checkpoints(path: Path) -> None:
        shutil.copy(features / "checkpoint_step-100.npz", path)

    def edit_manifest(path: Path) -> None:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        manifest["images"].pop()  # "leave this image out"
        path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")

    cases = [
        (flip, features / "checkpoint_checkpoint-200.npz", "cached features cannot be read"),
        (
            other_checkpoints,
            features / "checkpoint_checkpoint-200.npz",
            "do not match their inputs",
        ),
        (edit_manifest, out / "manifests" / "checkpoint_step-100.json", "changed after organize"),
    ]
    for damage, path, what in cases:
        damage(path)
        done = snakemake(root, config, check=False)
        output = done.stdout + done.stderr
        assert done.returncode != 0 and what in output, output
        assert f"  file: {path.relative_to(root)}" in output and "Traceback" not in output
        assert "fix: run the same command again" in output and not path.exists()
        snakemake(root, config)  # the advice, literally
        assert _whole(root) == before, what
    _up_to_date(root, config)


def _command(root: Path, config: Path, *args: str) -> list[str]:
    return [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(root), "--configfile", str(config),
            "--cores", "2", *args]  # fmt: skip


def _run(command: list[str], root: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=root)


def test_a_read_only_results_folder_is_named_with_a_fix_that_works(
    healthy: Path, tmp_path: Path
) -> None:
    root, config = _copy(healthy, tmp_path)
    before = _whole(root)
    out = root / "results" / "t"
    (out / "metrics_checkpoint_checkpoint-200.json").unlink()  # work to do
    if os.geteuid() == 0:  # root writes through permissions: a read-only mount instead
        wrap = ["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(out)]
        done = _run(wrap + _command(root, config), root)
    else:
        subprocess.run(["chmod", "-R", "a-w", str(out)], check=True)
        done = _run(_command(root, config), root)
        subprocess.run(["chmod", "-R", "u+w", str(out)], check=True)  # the fix, followed
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "ckpt-eval: results/t cannot be written" in output
    assert "fix: make results/t writable" in output and "another `run:` name" in output
    assert "Write-protected output files" in output  # Snakemake's own stop, before any job
    assert not (out / "metrics_checkpoint_checkpoint-200.json").exists()
    snakemake(root, config)  # writable again: the same command completes
    assert _whole(root) == before


def test_two_runs_of_one_config_at_once_the_second_is_refused(
    healthy: Path, tmp_path: Path
) -> None:
    root, config = _copy(healthy, tmp_path)
    before = _whole(root)
    (root / "results" / "t" / "features" / "inception" / "real.npz").unlink()  # work to do
    env = dict(os.environ, PYTHONPATH=str(REPO))
    first = subprocess.Popen(_command(root, config), cwd=root, env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        locks = root / ".snakemake" / "locks"
        deadline = time.monotonic() + 120
        while not (locks.is_dir() and any(locks.iterdir())):  # the first run holds its lock
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        second = snakemake(root, config, check=False)
    finally:
        assert first.wait(timeout=600) == 0
    output = second.stdout + second.stderr
    assert second.returncode != 0 and "Directory cannot be locked" in output
    assert _whole(root) == before  # the first run's results, untouched by the second
    _up_to_date(root, config)  # and the second, run again once the first is done, has no work


def test_two_configs_with_one_run_name_are_refused_naming_both(
    healthy: Path, tmp_path: Path
) -> None:
    root, config = _copy(healthy, tmp_path)
    before = _whole(root)
    shutil.copytree(root / "samples", root / "samples-b")
    shutil.rmtree(root / "samples-b" / "checkpoint-200")
    other = root / "other.yaml"
    data = yaml.safe_load(config.read_text())
    other.write_text(yaml.safe_dump({**data, "samples": {"root": "samples-b"}}))
    done = snakemake(root, other, check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "results/t/ holds the results of other data" in output
    assert "samples 'samples'" in output and "samples 'samples-b'" in output
    assert "own `run:` name" in output and "delete results/t/run.json" in output
    assert _whole(root) == before

    # the same config edited in other ways (or run again) is not refused
    edited = root / "edited.yaml"
    edited.write_text(yaml.safe_dump({**data, "kid": {"subsets": 20}}))
    snakemake(root, edited, "--dry-run")

    # the fixes, literally: its own run name ...
    other.write_text(yaml.safe_dump({**data, "samples": {"root": "samples-b"}, "run": "b"}))
    snakemake(root, other)
    assert _whole(root) == before
    separate = json.loads((root / "results" / "b" / "consolidated_results.json").read_text())
    assert {c["name"] for c in separate["checkpoints"]} == {"step-100", "e000003"}
    # ... or, replacing the other config, the record deleted (a dry run: it plans, not refuses)
    other.write_text(yaml.safe_dump({**data, "samples": {"root": "samples-b"}}))
    (root / "results" / "t" / "run.json").unlink()
    snakemake(root, other, "--dry-run")


# Kill-anywhere: each job type's rules (rerun with --forcerun), the logs its jobs open when they
# start, and the window after that in which the kill lands (about the job's length on the
# small project, so the kill mostly hits the job itself, sometimes the next one).
KILLED_JOBS = {
    # a set's Inception job organizes it first (its manifest), then extracts
    "features": (["inception_checkpoint", "inception_real"], "features/inception_*.log", 3.0),
    "metrics": (["metrics_checkpoint"], "metrics/*.log", 1.0),
    "consolidate": (["consolidate"], "consolidate.log", 1.0),
    # the page and the contact sheets run at once, after consolidate
    "report": (["report", "contact_sheets"], "report.log", 2.0),
}
KILL_SEED = 17


def _kill_delay(job: str, point: int) -> float:
    """The moment of the kill after the job type's first log appears: seeded, and printed."""
    window = KILLED_JOBS[job][2]
    return random.Random(f"{KILL_SEED}-{job}-{point}").uniform(0.0, window)


def _nothing_half_written(out: Path) -> list[str]:
    """Every file of the run that a job or a reader would take for finished, read whole."""
    from ckpt_eval.caches import damage

    read = []
    for path in sorted(out.rglob("*")):
        if not path.is_file() or "logs" in path.parts or path.name.startswith("."):
            continue  # logs; temporary files of killed writers (never read by anything)
        assert damage(path) is None, path
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".npz":
            load_features(path)
        read.append(path.name)
    return read


@pytest.mark.parametrize(
    ("job", "point"),
    [(job, point) for job in KILLED_JOBS for point in (0, 1)],
)
def test_a_kill_at_a_random_moment_of_each_job_type_then_a_rerun_gives_identical_results(
    healthy: Path, tmp_path: Path, job: str, point: int
) -> None:
    """SIGKILL to the whole run (Snakemake and its jobs) at a seeded random moment of one job
    type's jobs; nothing half-written is left under a real name, and after `--unlock` (the
    lock of the killed run) the same command gives the uninterrupted run's results."""
    root, config = _copy(healthy, tmp_path)
    before = _whole(root)
    out = root / "results" / "t"
    rules, logs, _ = KILLED_JOBS[job]
    for log in (out / "logs").glob(logs):
        log.unlink()
    delay = _kill_delay(job, point)
    print(f"kill {job} #{point}: {delay:.3f} s after its first job started (seed {KILL_SEED})")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen(
        _command(root, config, "--forcerun", *rules), cwd=root, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while not any((out / "logs").glob(logs)):
        assert process.poll() is None, f"the run ended before any {job} job started"
        assert time.monotonic() < deadline, f"no {job} job started"
        time.sleep(0.01)
    time.sleep(delay)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert _nothing_half_written(out)

    snakemake(root, config, "--unlock")
    snakemake(root, config)
    assert _whole(root) == before, f"kill {job} #{point} at {delay:.3f} s"
    _up_to_date(root, config)
