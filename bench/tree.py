"""Figure 7: planning a sample tree of up to 100,000 files (target: linear in the files).

Three projects of 25,000, 50,000 and 100,000 sample files (hard links to one small PNG per
checkpoint: planning reads no pixels), each 100 checkpoint folders of 10 subfolders, with a
prompt file of one row per file. Two timings per project, interleaved across the sizes, medians:

- the library's plan (what `workflow/rules/common.smk` does before Snakemake builds its DAG:
  walk the samples, group them by checkpoint, read the prompt file and give every checkpoint its
  prompts, walk the real images), in this process;
- `snakemake -n --cores 2`, the whole plan as a user waits for it (Snakemake also checks every
  input file).

Linear: what each added file costs stays the same as the tree grows. The seconds per 1,000
files added from 50,000 to 100,000 are at most 1.5 x those added from 25,000 to 50,000 (a cost
growing with the square of the files would give 2 x; a fixed start-up cost, such as Snakemake's
own, cancels out). The walk's own count (one listing and one stat per folder, none per file) is
checked by tests/test_discover.py.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from common import Context, interleaved, median, snakemake
from data import linked_real, write_config, write_prompt_rows

NAME = "tree"
CHECKPOINTS, SUBFOLDERS = 100, 10
SIZES = (25_000, 50_000, 100_000)
QUICK_SIZES = (2_000, 4_000, 8_000)  # multiples of the 1,000 folders
TARGET = 1.5


def tree_project(workdir: Path, files: int) -> Path:
    """`files` sample files in CHECKPOINTS x SUBFOLDERS folders (built once, reused)."""
    from PIL import Image

    root = workdir / f"project-tree-{files}"
    stamp = root / ".complete"
    if stamp.exists():
        return root
    linked_real(root, (40, 80, 120))
    per_folder = files // (CHECKPOINTS * SUBFOLDERS)
    rows = []
    for c in range(CHECKPOINTS):
        # one PNG per checkpoint: a file system caps the hard links to one file (ext4: 65,000)
        one = root / f"one_{c:03d}.png"
        Image.new("RGB", (64, 64), (40, 80, c)).save(one)
        for s in range(SUBFOLDERS):
            folder = root / "samples" / f"step-{(c + 1) * 10:06d}" / f"prompt-{s:02d}"
            folder.mkdir(parents=True)
            for i in range(per_folder):
                os.link(one, folder / f"img_{i:04d}.png")
                rows.append([f"{folder.parent.name}/{folder.name}/img_{i:04d}.png", f"p {s} {i}"])
    write_prompt_rows(root, rows)
    write_config(root, run="tree")
    stamp.write_text("built by bench/tree.py\n")
    return root


def library_plan(project: Path) -> int:
    """common.smk's input side, in this process; returns the number of samples planned."""
    import yaml

    from ckpt_eval.config import validate_config
    from ckpt_eval.inputs.discover import (
        check_distinct_names,
        check_separate_folders,
        list_images,
    )
    from ckpt_eval.inputs.layouts import checkpoint_prompts, load_samples

    here = Path.cwd()
    os.chdir(project)
    try:
        config = validate_config(yaml.safe_load(Path("config.yaml").read_text()))
        found = load_samples(config)
        checkpoints = found.checkpoints()
        check_distinct_names(checkpoints, found.root)
        out = f"results/{config['run']}"
        check_separate_folders(config["real_images"], found.root, out)
        list_images(config["real_images"], config["samples"]["extensions"])
        prompts = checkpoint_prompts(found, config)
        assert sum(map(len, prompts.values())) == len(found.samples)
        return len(found.samples)
    finally:
        os.chdir(here)


def run(ctx: Context) -> dict[str, Any]:
    sizes = QUICK_SIZES if ctx.quick else SIZES
    projects = {n: tree_project(ctx.workdir, n) for n in sizes}
    for n, project in projects.items():
        assert library_plan(project) == n
    library = interleaved(
        {n: lambda p=p: library_plan(p) for n, p in projects.items()}, ctx.repeats
    )
    repeats = max(2, ctx.repeats - 2)  # a 100,000-file dry run takes a while
    dry: dict[int, list[float]] = {n: [] for n in sizes}
    jobs: dict[int, int] = {}
    for _ in range(repeats):
        for n, project in projects.items():
            seconds, log = snakemake(project, "-n")
            dry[n].append(seconds)
            jobs[n] = int(re.search(r"^total\s+(\d+)", log, re.M).group(1))  # type: ignore[union-attr]
    return {"sizes": list(sizes), "library": library, "dry": dry, "jobs": jobs}


def _per_thousand(seconds: list[float], files: int) -> float:
    return median(seconds) / files * 1000


def _added(times: dict[int, list[float]], small: int, large: int) -> float:
    """Seconds per 1,000 files added from `small` to `large` files (medians)."""
    return (median(times[large]) - median(times[small])) / (large - small) * 1000


def markdown(r: dict[str, Any], ctx: Context) -> str:
    sizes = r["sizes"]
    small, large = sizes[0], sizes[-1]
    rows = []
    for n in sizes:
        lib, dry = r["library"][n], r["dry"][n]
        rows.append(
            f"| {n:,} | {r['jobs'][n]} | {median(lib):.2f} ({min(lib):.2f}-{max(lib):.2f}) "
            f"| {_per_thousand(lib, n) * 1000:.1f} | {median(dry):.1f} ({min(dry):.1f}-"
            f"{max(dry):.1f}) | {_per_thousand(dry, n) * 1000:.0f} |"
        )
    middle = sizes[1]
    added = {
        name: (_added(r[name], small, middle), _added(r[name], middle, large))
        for name in ("library", "dry")
    }
    growth = {name: late / early for name, (early, late) in added.items()}
    met = "yes" if max(growth.values()) <= TARGET else "NO"
    lines = [
        f"## 7. Planning a {large:,}-file sample tree (target: linear, a file added beyond "
        f"{middle:,} costs at most {TARGET} x one added beyond {small:,})",
        "",
        f"`python bench/run.py tree` - {CHECKPOINTS} checkpoint folders of {SUBFOLDERS} "
        "subfolders, hard links to one PNG per checkpoint, a prompt CSV of one row per file; "
        "the library's plan (walk, group, prompts, real set: what common.smk does before the "
        "DAG) in process, "
        f"median of {len(r['library'][small])} interleaved runs; `snakemake -n --cores 2`, "
        f"median of {len(r['dry'][small])}. File system cache warm (the tree was just built or "
        "walked).",
        "",
        "| sample files | jobs | library plan, s | ms per 1,000 files | `snakemake -n`, s "
        "| ms per 1,000 files |",
        "|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "Seconds per 1,000 files added (medians): library plan "
        f"{added['library'][0]:.3f} from {small:,} to {middle:,}, {added['library'][1]:.3f} "
        f"from {middle:,} to {large:,}: **{growth['library']:.2f} x**; `snakemake -n` "
        f"{added['dry'][0]:.3f} and {added['dry'][1]:.3f}: **{growth['dry']:.2f} x**. "
        f"Target met: {met}. The {large:,}-file plan takes "
        f"**{median(r['dry'][large]):.1f} s** with `snakemake -n`, of which "
        f"{median(r['library'][large]):.1f} s is the library's.",
    ]
    return "\n".join(lines) + "\n"
