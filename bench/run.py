"""Run the benchmarks and write bench/RESULTS.md: `python bench/run.py [--quick] [figure ...]`.

Figures (each a module here, each writing its own section of RESULTS.md):

1. `extraction`: full extraction path against the bare Inception forward; absolute images/s
   of Inception and CLIP; the forward's share of the machine's fp32 GEMM throughput.
2. `versus_cleanfid`: the whole workflow against a loop of clean-fid's compute_fid and
   compute_kid per checkpoint, on the same folders and weights.
`fresh`: a fresh run against the extraction of the same images in one process, on a small and
   a large set, with where the rest of the time goes, job by job.
3. and 4. `incremental`: adding one checkpoint to a finished run; a rerun with nothing changed.
5. `frechet`: Fréchet distance on 2048-d statistics against scipy's sqrtm.
6. `scale`: planning 1,000 checkpoints x 32 images; streaming real-set statistics of 50,000
   images in bounded memory.
7. `tree`: planning sample trees of 25,000, 50,000 and 100,000 files: linear in the files.
`clip`: the CLIP job's path (decode, preprocess, image forward, each distinct prompt's text
   forward) against the bare image forward of ViT-L/14, random weights loaded from a folder.
`plan`: planning 1,000 checkpoints, against the 10 s target of issue 18.
`memory`: the whole workflow on a real set of 50,000 images, every job's peak memory measured.
`report_paint`: the size of the report of 20 checkpoints x 64 images and its first paint in
Debian's chromium.

The bench builds its own data set (bench/data.py) in `--workdir`. Sections of figures not run
this time are kept from the existing RESULTS.md; each section records when, at which commit
and on which machine it was measured. The figures with targets end their section with a
machine-readable line of them, which docs/performance.md quotes (`bench/quote.py`).
`--quick` uses fewer images and repeats: a smoke test, not the recorded figures.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import clip  # noqa: E402
import extraction  # noqa: E402
import frechet  # noqa: E402
import fresh  # noqa: E402
import incremental  # noqa: E402
import memory  # noqa: E402
import plan  # noqa: E402
import quote  # noqa: E402
import report_paint  # noqa: E402
import scale  # noqa: E402
import tree  # noqa: E402
import versus_cleanfid  # noqa: E402
from common import Context, MachineLoad  # noqa: E402

from ckpt_eval.allocator import keep_freed_memory  # noqa: E402

FIGURES = {
    "extraction": extraction,
    "versus_cleanfid": versus_cleanfid,
    "fresh": fresh,
    "incremental": incremental,
    "clip": clip,
    "frechet": frechet,
    "scale": scale,
    "tree": tree,
    "plan": plan,
    "memory": memory,
    "report_paint": report_paint,
}
PACKAGES = ("numpy", "scipy", "torch", "Pillow", "clean-fid", "snakemake", "transformers")
# Written by hand, not measured by a run: what each optimisation predicted, gave, and why. Kept
# as it is (after the figures) every time RESULTS.md is rewritten.
NOTES = "tried"
SECTION = quote.SECTION  # one figure's section of RESULTS.md
# The docs page that quotes the targets (`bench/quote.py`), rewritten with RESULTS.md.
PERFORMANCE_PAGE = HERE.parent / "docs" / "performance.md"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    import torch

    return (
        f"{cpu_name()}, {os.cpu_count()} CPUs ({platform.machine()}, "
        f"{torch.backends.cpu.get_cpu_capability()}), {platform.platform()}; no GPU used"
    )


BENCH_OUTPUTS = {"bench/RESULTS.md", "docs/performance.md"}


def commit() -> str:
    """The checkout's commit, `+changes` when files other than the bench's outputs differ."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(HERE.parent), *args], capture_output=True, text=True, check=False
        ).stdout

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    return head + ("+changes" if changed_files(git("status", "--porcelain")) else "")


def changed_files(porcelain: str) -> set[str]:
    """The paths `git status --porcelain` lists (`XY path`), the bench's own outputs left out."""
    return {line[3:] for line in porcelain.splitlines() if line.strip()} - BENCH_OUTPUTS


def header(argv: list[str]) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"- Machine of the last run: {machine()}",
        f"- Python {platform.python_version()}; "
        + ", ".join(f"{p} {version(p)}" for p in PACKAGES),
        f"- Last run {datetime.date.today().isoformat()}: "
        f"`python bench/run.py {' '.join(argv)}`".rstrip()
        + " (every figure: `python "
        "bench/run.py`; one figure: `python bench/run.py <name>`; smoke test: `--quick`)",
        "- Sections not run that time are kept from earlier runs. A section ending with a "
        "`Measured <date> at commit <commit>` line says when, at which commit and on which "
        "machine it was measured; one without it comes from a run before that line existed "
        "(see 'What was tried'). Each says how much CPU other processes took meanwhile "
        "(absolute times on a shared machine are noisy; ratios are measured side by side, "
        "runs interleaved, medians throughout).",
        "",
    ]
    return "\n".join(lines)


def provenance(argv: list[str], load: MachineLoad) -> tuple[str, dict[str, object]]:
    """The line each section ends with, and the same facts for the targets' quote."""
    today, at = datetime.date.today().isoformat(), commit()
    line = (
        f"Measured {today} at commit {at} (`python bench/run.py {' '.join(argv)}`".rstrip()
        + f") on {machine()}. {load.note()}"
    )
    return line, {"date": today, "commit": at, "others_cpu": load.others}


def merge(existing: str, sections: dict[str, str]) -> str:
    """Every figure's section in FIGURES order (this run's, else the one already written), then
    the hand-written notes."""
    kept = {m.group(1): m.group(2) for m in SECTION.finditer(existing)}
    kept.update(sections)
    return "".join(
        f"<!-- figure: {name} -->\n{kept[name]}<!-- end: {name} -->\n\n"
        for name in (*FIGURES, NOTES)
        if name in kept
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("figures", nargs="*", help=f"any of {', '.join(FIGURES)}; default all")
    parser.add_argument("--quick", action="store_true", help="fewer images and repeats")
    parser.add_argument("--repeats", type=int, help="runs per measurement (default 5, quick 2)")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout (e.g. a `git worktree` of the commit before a change): the "
        "fresh figure runs its workflow too, interleaved, under the same load",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "ckpt-eval-bench",
        help="where the data set and workflow projects go (kept between runs)",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.figures) - set(FIGURES))
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(FIGURES)}")
    repeats = args.repeats or (2 if args.quick else 5)
    ctx = Context(quick=args.quick, repeats=repeats, workdir=args.workdir, baseline=args.baseline)
    # The torch jobs keep the memory they free (ckpt_eval.allocator): so does every extraction
    # measured here in process, or the reference would be slower than the jobs' own path.
    keep_freed_memory()
    args.workdir.mkdir(parents=True, exist_ok=True)
    existing = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
    sections: dict[str, str] = {}
    for name in args.figures or FIGURES:
        module = FIGURES[name]
        print(f"--- {name}", flush=True)
        with MachineLoad() as load:
            result = module.run(ctx)
        line, facts = provenance(argv, load)
        sections[name] = module.markdown(result, ctx) + "\n" + line + "\n"
        if hasattr(module, "targets"):
            sections[name] += quote.note(module.targets(result), facts)
        print(sections[name], flush=True)
        text = header(argv) + "\n" + merge(existing, sections)
        args.out.write_text(text, encoding="utf-8")
        if args.out == HERE / "RESULTS.md":
            quote.update(PERFORMANCE_PAGE, text)


if __name__ == "__main__":
    main()
