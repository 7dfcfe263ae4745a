"""Figure 6: scale. Planning 1,000 checkpoints x 32 images; the real set of 50,000 images.

Plan: a project of 1,000 checkpoint folders of 32 images each (hard links to one small PNG:
planning reads no pixels) and a prompt file of 32,000 rows; `snakemake -n --cores 2` plans its
~5,000 jobs. Target: under 30 s.

Streaming: the real-set job's loop (`ckpt_eval.extract.inception.forward_batches`: DataLoader, 2
workers, batch 32, then `ckpt_eval.features.moments.stream_rows` keeping 10,000 rows and
accumulating float64 sums) on 50,000 synthetic pre-resized images, in a child process whose
memory (PSS of it
and its workers, and its RSS) a thread samples. The network is replaced by a cheap stand-in
(average pooling and a fixed random projection to 2048 values): running Inception on 50,000
images would take half an hour here, and its memory does not depend on how many images pass
through. The real job (`ckpt_eval.extract.feature_jobs.inception_features`, real network,
streaming forced by keeping 100 rows) is measured on the bench's real set, and the stand-in loop
on as many images: the difference between the stand-in at 50,000 and at that size is what
50,000 images add to the real job. Target: under 2 GiB. For contrast, the loop holding every
row (unstreamed).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import Context, median, snakemake
from data import bench_data, linked_real, write_config, write_prompt_rows

NAME = "scale"
PLAN_CHECKPOINTS, PLAN_IMAGES = 1000, 32
STREAM_IMAGES = 50_000
KEPT = 10_000  # max_real_features' default
JOB_KEPT = 100  # forces the real job on the bench's few hundred images to stream


def plan_project(workdir: Path) -> Path:
    """1,000 x 32 images as hard links to one PNG (built once, reused)."""

    root = workdir / "project-plan"
    stamp = root / ".complete"
    if stamp.exists():
        return root
    one = linked_real(root, (120, 80, 40))
    rows = []
    for c in range(PLAN_CHECKPOINTS):
        folder = root / "samples" / f"step-{(c + 1) * 10:06d}"
        folder.mkdir(parents=True)
        for i in range(PLAN_IMAGES):
            os.link(one, folder / f"img_{i:02d}.png")
            rows.append([f"{folder.name}/img_{i:02d}.png", f"prompt number {i}"])
    write_prompt_rows(root, rows)
    write_config(root, run="plan")
    stamp.write_text("built by bench/scale.py\n")
    return root


TIME = Path("/usr/bin/time")


def _child(*args: str) -> dict[str, Any]:
    """One measurement in a fresh process, its peak RSS from `/usr/bin/time -v` where there is
    one (the child's own `ru_maxrss` is no good: Linux carries it over from the bench process
    across the exec, so it reads the bench's gigabytes, not the child's)."""
    command = [sys.executable, __file__, "--child", *args]
    timed = TIME.is_file()
    done = subprocess.run(
        [str(TIME), "-v", *command] if timed else command,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"scale child {args} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    if timed and peak:
        result["main_rss_mib"] = int(peak.group(1)) / 1024
    return result


def run(ctx: Context) -> dict[str, Any]:
    project = plan_project(ctx.workdir)
    plans = []
    for _ in range(ctx.repeats):
        seconds, log = snakemake(project, "-n")
        plans.append(seconds)
    jobs = int(re.search(r"^total\s+(\d+)", log, re.M).group(1))  # type: ignore[union-attr]
    n_stream = 10_000 if ctx.quick else STREAM_IMAGES
    data = bench_data(ctx.workdir, ctx.quick)
    n_job = data.n_real
    return {
        "plans": plans,
        "jobs": jobs,
        "stream": _child("stream", str(n_stream), str(KEPT)),
        "stream_mid": _child("stream", str(n_stream * 2 // 5), str(KEPT)),
        "stream_small": _child("stream", str(n_job), str(JOB_KEPT)),
        "hold": _child("hold", str(n_stream), "0"),
        "job": _child("job", str(data.root / "real"), str(JOB_KEPT)),
    }


def _row(label: str, r: dict[str, Any]) -> str:
    return (
        f"| {label} | {r['n']} | {r['pss_mib']:.0f} | {r['main_rss_mib']:.0f} "
        f"| {r['rss_sum_mib']:.0f} | {r['seconds']:.0f} |"
    )


def markdown(r: dict[str, Any], ctx: Context) -> str:
    plans = r["plans"]
    s, m, small, h, j = r["stream"], r["stream_mid"], r["stream_small"], r["hold"], r["job"]
    # the real job at 50,000 images: the real job as measured, plus what streaming 50,000
    # images adds over streaming as many as the job had (the stand-in loop both times)
    growth = s["pss_mib"] - small["pss_mib"]
    estimate = j["pss_mib"] + growth
    estimate_rss = j["main_rss_mib"] + (s["main_rss_mib"] - small["main_rss_mib"])
    met_plan = "yes" if median(plans) < 30 else "NO"
    met_mem = "yes" if estimate < 2048 and estimate_rss < 2048 else "NO"
    lines = [
        "## 6. Scale (targets: plan of 1,000 x 32 in < 30 s; 50,000 real images in < 2 GiB)",
        "",
        "`python bench/run.py scale`",
        "",
        f"Planning {PLAN_CHECKPOINTS} checkpoints x {PLAN_IMAGES} images ({r['jobs']} jobs): "
        f"`snakemake -n --cores 2` takes **{median(plans):.1f} s** (median of {len(plans)}, "
        f"{min(plans):.1f}-{max(plans):.1f}). Target met: {met_plan}.",
        "",
        "Streaming the real set's statistics. Peak memory of the job's processes (the main one "
        "and its 2 DataLoader workers), sampled every 0.2 s: PSS (proportional set size: pages "
        "shared between the forked processes counted once) summed over them, the main process's "
        "RSS (what `/usr/bin/time -v` reports as maximum resident set size), and the RSS "
        "summed (shared pages counted in every process: an upper bound).",
        "",
        "| run | images | PSS sum MiB | main RSS MiB | RSS sum MiB | seconds |",
        "|---|---:|---:|---:|---:|---:|",
        _row(f"stand-in network, streaming, {KEPT} rows kept", s),
        _row(f"the same, {KEPT} rows kept", m),
        _row(f"the same, {JOB_KEPT} rows kept", small),
        _row("stand-in network, every row held (unstreamed)", h),
        _row(f"real-set job, real network, streaming, {JOB_KEPT} rows kept", j),
        "",
        f"Streamed, memory does not grow with the number of images ({m['n']} and {s['n']} "
        f"images: {m['pss_mib']:.0f} and {s['pss_mib']:.0f} MiB); {s['n']} images add "
        f"{growth:.0f} MiB over {small['n']} (the {KEPT} kept rows, 80 MB, and the float64 "
        f"sums, 32 MB). The real-set job of {j['n']} images peaks at {j['pss_mib']:.0f} MiB "
        f"(PSS; main RSS {j['main_rss_mib']:.0f} MiB), so one of {s['n']} images peaks at "
        f"about **{estimate:.0f} MiB** (main RSS about {estimate_rss:.0f} MiB). "
        f"Target met: {met_mem}. Holding every row instead peaks at {h['pss_mib']:.0f} MiB "
        "with the stand-in network alone.",
        "",
        f"KID, its bootstrap, PRDC and the Inception memorization screen use the {KEPT} kept "
        "rows (`max_real_features`, drawn with `seed`; each checkpoint's warnings say so); FID "
        "uses the mean and covariance of all images. Most of the baseline is torch itself: "
        "importing this CUDA build of torch takes ~700 MiB of RSS before anything runs.",
    ]
    return "\n".join(lines) + "\n"


# --- child processes (a fresh process per measurement: getrusage peaks are per process) --------


class PeakMemory:
    """Peak PSS summed over this process and its children, and peak RSS, sampled in a thread."""

    def __init__(self, interval: float = 0.2) -> None:
        import threading

        import psutil

        self.process = psutil.Process()
        self.interval = interval
        self.pss = self.main_rss = self.rss_sum = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def sample(self) -> None:
        import psutil

        pss = rss = 0
        for proc in [self.process, *self.process.children(recursive=True)]:
            try:
                info = proc.memory_full_info()
            except psutil.Error:  # a worker that just exited
                continue
            pss += info.pss
            rss += info.rss
        self.pss = max(self.pss, pss)
        self.rss_sum = max(self.rss_sum, rss)
        self.main_rss = max(self.main_rss, self.process.memory_info().rss)

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            self.sample()

    def result(self, start: float, n: int) -> dict[str, Any]:
        self.stop.set()
        self.thread.join()
        self.sample()
        mib = 1024 * 1024
        return {
            "n": n,
            "pss_mib": self.pss / mib,
            "main_rss_mib": self.main_rss / mib,  # sampled; /usr/bin/time's peak if it ran
            "rss_sum_mib": self.rss_sum / mib,
            "seconds": time.perf_counter() - start,
        }


def _child_main(mode: str, arg: str, kept: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import numpy as np
    import torch

    from ckpt_eval.extract import inception
    from ckpt_eval.features.moments import kept_rows, stream_rows

    torch.set_num_threads(2)
    memory = PeakMemory()
    start = time.perf_counter()
    cpu = torch.device("cpu")
    if mode == "job":
        from ckpt_eval.extract.feature_jobs import inception_features
        from ckpt_eval.inputs.manifest import build_manifest
        from ckpt_eval.jsonio import write_json

        real = Path(arg)
        paths = sorted(real.glob("*.png"))
        out = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-scale-{os.getpid()}"
        out.mkdir(exist_ok=True)
        write_json(build_manifest("real", paths, real, "error"), out / "real.json")
        inception_features(out / "real.json", out / "real.npz", None, "cpu", 32, 2, kept)
        print(json.dumps(memory.result(start, len(paths))))
        return

    n = int(arg)

    class Synthetic(torch.utils.data.Dataset):
        """Pre-resized, normalised 299x299x3 images: 16 random ones, repeated."""

        def __init__(self) -> None:
            g = torch.Generator().manual_seed(0)
            self.pool = torch.rand(16, 299, 299, 3, generator=g) * 2 - 1

        def __len__(self) -> int:
            return n

        def __getitem__(self, i: int) -> torch.Tensor:
            return self.pool[i % 16]

    class StandIn(torch.nn.Module):
        """Inception's input and output shapes at a tiny fraction of its cost."""

        def __init__(self) -> None:
            super().__init__()
            self.project = torch.nn.Linear(3 * 16 * 16, inception.DIM)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            pooled = torch.nn.functional.adaptive_avg_pool2d(x, 16).flatten(1)
            return torch.relu(self.project(pooled))

    batches = inception.forward_batches(Synthetic(), StandIn().eval(), cpu, 32, 2, desc="stream")
    keep = kept_rows(n, kept, 0) if mode == "stream" else None
    streamed = stream_rows(batches, inception.DIM, keep)
    if mode == "hold":  # as the unstreamed metrics jobs did: the rows in float64, statistics
        x = np.asarray(streamed.rows, np.float64)
        np.cov(x, rowvar=False)
        del x
    print(json.dumps(memory.result(start, n)))


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "--child":
    _child_main(sys.argv[2], sys.argv[3], int(sys.argv[4]))
