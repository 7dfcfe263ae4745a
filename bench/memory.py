"""Figure `memory`: the peak memory of a real set of 50,000 images, measured through the full
path (no stand-in, no estimate).

50,000 real images of 64x64 (PNG, generated with a seeded generator into the bench's work
folder: smooth colour fields with noise, every one different) and one checkpoint of 32; the
whole workflow runs on them, `snakemake --cores 2` from scratch: the real set's Inception job
(its manifest first: 50,000 images decoded and hashed; then the real network on every image,
resized to 299x299 like any other, so the small size only saves disk and decoding, not network
time), metrics, consolidate, report. A thread samples every process of the run every 0.5 s
(psutil): each job's process tree (the job and its DataLoader workers, if any), PSS summed
(pages shared between forked processes counted once) and its main process's RSS. Target
(issue 18): every job under 2 GiB. Takes about as long as 50,000 images through Inception: half
an hour or more.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from common import REPO, SNAKEMAKE, Context, Target, yes_no

NAME = "memory"
N_REAL, N_SAMPLES, SIZE = 50_000, 32, 64
QUICK_REAL = 2_000
LIMIT_MIB = 2048
SCRIPT = re.compile(r"\.snakemake/scripts/tmp\w+\.(\w+)\.py")


def write_images(folder: Path, n: int, seed: int) -> None:
    """`n` different 64x64 PNGs: a 4x4 random colour grid resized bilinear, plus noise."""
    from PIL import Image

    stamp = folder / ".complete"
    if stamp.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k in range(n):
        grid = Image.fromarray(rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8))
        field = np.asarray(grid.resize((SIZE, SIZE), Image.BILINEAR), dtype=np.float64)
        pixels = np.clip(field + rng.normal(0, 12, size=field.shape), 0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"real_{k:05d}.png")
    stamp.write_text("built by bench/memory.py\n")


def make_project(root: Path, n_real: int) -> Path:
    write_images(root / f"real-{n_real}", n_real, seed=0)
    write_images(root / "samples" / "step-100", N_SAMPLES, seed=1)
    project = root / f"project-{n_real}"
    project.mkdir(parents=True, exist_ok=True)
    rows = [f"step-100/real_{k:05d}.png,a colour field" for k in range(N_SAMPLES)]
    (project / "prompts.csv").write_text("file,prompt\n" + "\n".join(rows) + "\n")
    config = {
        "run": "memory",
        "real_images": str(root / f"real-{n_real}"),
        "samples": {"root": str(root / "samples")},
        "prompts": "prompts.csv",
        "device": "cpu",
        "clip": {"model": str(project / "no-clip-model-here"), "required": False},
    }
    (project / "config.yaml").write_text(yaml.safe_dump(config))
    return project


class JobMemory:
    """Peak PSS (summed over a job's process tree) and main RSS per rule, sampled in a thread."""

    def __init__(self, root: Any, interval: float = 0.5, record: Path | None = None) -> None:
        self.root, self.interval, self.record = root, interval, record
        self.peaks: dict[str, dict[str, float]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def sample(self) -> None:
        import psutil

        try:
            processes = self.root.children(recursive=True)
        except psutil.Error:
            return
        for proc in processes:
            try:
                match = SCRIPT.search(" ".join(proc.cmdline()))
                if not match:
                    continue
                tree = [proc, *proc.children(recursive=True)]
                pss = sum(p.memory_full_info().pss for p in tree)
                rss = proc.memory_info().rss
            except psutil.Error:  # a process that just ended
                continue
            peak = self.peaks.setdefault(match.group(1), {"pss_mib": 0.0, "rss_mib": 0.0})
            peak["pss_mib"] = max(peak["pss_mib"], pss / 2**20)
            peak["rss_mib"] = max(peak["rss_mib"], rss / 2**20)

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            self.sample()
            if self.record is not None:  # the peaks so far, for a run stopped before its end
                self.record.write_text(json.dumps(self.peaks))

    def result(self) -> dict[str, dict[str, float]]:
        self.stop.set()
        self.thread.join()
        return self.peaks


def measure(project: Path) -> dict[str, Any]:
    import psutil

    for folder in ("results", ".snakemake"):
        subprocess.run(["rm", "-rf", str(project / folder)], check=True)
    command = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(project), "--cores", "2"]
    start = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with subprocess.Popen(
        command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        memory = JobMemory(psutil.Process(proc.pid), record=project / "peaks-so-far.json")
        output, _ = proc.communicate()
        peaks = memory.result()
    if proc.returncode != 0:
        raise RuntimeError(f"the memory run failed:\n{output[-3000:]}")
    result = json.loads((project / "results" / "memory" / "consolidated_results.json").read_text())
    return {
        "seconds": time.perf_counter() - start,
        "peaks": peaks,
        "n_real": result["checkpoints"][0]["n_real"],
    }


def run(ctx: Context) -> dict[str, Any]:
    n_real = QUICK_REAL if ctx.quick else N_REAL
    project = make_project(ctx.workdir / "memory", n_real)
    loads = [os.getloadavg()[0]]
    out = measure(project)
    loads.append(os.getloadavg()[0])
    return {**out, "loadavg": loads}


SCRIPTS = {
    "inception_network": "the network folded",
    "inception_features": "manifest and Inception features (the real set's job and the "
    "checkpoint's)",
    "model_status": "CLIP model status",
    "model_features": "CLIP features (none: no model)",
    "metrics": "metrics",
    "consolidate": "consolidate",
    "report": "report",
    "contact_sheets": "contact sheets",
}


def targets(r: dict[str, Any]) -> list[Target]:
    worst = max(max(p["pss_mib"], p["rss_mib"]) for p in r["peaks"].values())
    return [
        Target(
            f"peak memory of the largest job, real set of {r['n_real']:,} images",
            f"{worst:.0f} MiB",
            f"< {LIMIT_MIB} MiB",
            worst < LIMIT_MIB,
        )
    ]


def markdown(r: dict[str, Any], ctx: Context) -> str:
    peaks = r["peaks"]
    worst = max(p["pss_mib"] for p in peaks.values())
    worst_rss = max(p["rss_mib"] for p in peaks.values())
    met = yes_no(targets(r)[0])
    lines = [
        f"## Memory of a real set of {r['n_real']:,} images (target: every job under 2 GiB)",
        "",
        f"`python bench/run.py memory` - the whole workflow from scratch on a real set of "
        f"{r['n_real']:,} images ({SIZE}x{SIZE} PNG, each different) and one checkpoint of "
        f"{N_SAMPLES}, every image through the real network; each job's process tree sampled "
        f"every 0.5 s. The run took {r['seconds']:.0f} s (load average, 1 min: "
        f"{r['loadavg'][0]:.1f} before, {r['loadavg'][1]:.1f} after).",
        "",
        "| job (script) | peak PSS of the job and its workers, MiB | peak RSS of the job, MiB |",
        "|---|---:|---:|",
    ]
    for script, label in SCRIPTS.items():
        if script in peaks:
            p = peaks[script]
            lines.append(f"| {label} | {p['pss_mib']:.0f} | {p['rss_mib']:.0f} |")
    lines += [
        "",
        f"**Largest job: {worst:.0f} MiB PSS, {worst_rss:.0f} MiB RSS.** Target met: {met}. "
        "Jobs shorter than the sampling interval may be missed (they are the light ones).",
    ]
    return "\n".join(lines) + "\n"
