"""Figure 8: the report of 20 checkpoints x 64 images: its size and its first paint in Chromium.

Project: 20 checkpoints of 64 photo crops of 512 pixels each (`data.photo_crops`, each
checkpoint's colours shifted a little so no two files are alike; 8 prompts x 8 images, paired by
position), 64 real crops; the workflow runs once with the default report settings
(`report.grid_rows: 16`, `report.thumbnails: 12`) and is reused. Then Debian's chromium
(`/usr/bin/chromium`, driven by Playwright as tests/test_report_browser.py does, network off)
opens `report.html` from its file:// URL in a fresh profile each time; the figures are the
browser's own `first-contentful-paint` and `loadEventEnd` (Performance API), median of the
repeats. Targets: under 15 MB (`ckpt_eval.report.render.SIZE_BUDGET`, also checked by
tests/test_render.py) and first paint under 2 s.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from common import Context, snakemake
from data import photo_crops, write_config, write_prompt_rows

NAME = "report_paint"
CHECKPOINTS, IMAGES, PROMPTS, SIZE = 20, 64, 8, 512
CHROMIUM = "/usr/bin/chromium"
# the flags a headless system chromium needs here: no sandbox (root, no user namespaces), no GPU,
# and none of its own traffic (QUIC probes, component updates, sync, first-run pings)
ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
PAINT_TARGET_S = 2.0


def project(workdir: Path) -> Path:
    """The 20 x 64 project, its workflow run once (kept in the work folder)."""
    root = workdir / "project-report"
    report = root / "results" / "report" / "report.html"
    if report.exists():
        return report
    photo_crops(root / "real", IMAGES, SIZE, seed=99)
    rows = []
    for c in range(CHECKPOINTS):
        name = f"step-{(c + 1) * 100:04d}"
        for i, path in enumerate(photo_crops(root / "samples" / name, IMAGES, SIZE, shift=c)):
            rows.append([f"{name}/{path.name}", f"prompt {i // (IMAGES // PROMPTS)} of the run"])
    write_prompt_rows(root, rows)
    write_config(root, run="report")
    snakemake(root, "--configfile", str(root / "config.yaml"))
    return report


def launch(playwright: Any, profile: str, executable: str = CHROMIUM) -> Any:
    """A browser context of the system chromium in the fresh user-data-dir `profile`, offline.
    tests/test_report_browser.py opens the report the same way."""
    return playwright.chromium.launch_persistent_context(
        profile,
        executable_path=executable,
        headless=True,
        args=list(ARGS),
        offline=True,
        viewport={"width": 1280, "height": 900},
    )


def paint(url: str, repeats: int) -> dict[str, list[float]]:
    """First contentful paint and load end (seconds), each load in a fresh browser profile."""
    from playwright.sync_api import sync_playwright

    out: dict[str, list[float]] = {"first_paint": [], "load": []}
    with sync_playwright() as p:
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as profile:
                context = launch(p, profile)
                page = context.new_page()
                page.goto(url, wait_until="load")
                page.wait_for_function(
                    "performance.getEntriesByName('first-contentful-paint').length > 0"
                )
                fcp = page.evaluate(
                    "performance.getEntriesByName('first-contentful-paint')[0].startTime"
                )
                load = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
                out["first_paint"].append(fcp / 1000)
                out["load"].append(load / 1000)
                context.close()
    return out


def run(ctx: Context) -> dict[str, Any]:
    from ckpt_eval.report.render import SIZE_BUDGET

    report = project(ctx.workdir)
    times = paint(report.resolve().as_uri(), ctx.repeats)
    return {
        "bytes": report.stat().st_size,
        "budget": SIZE_BUDGET,
        "first_paint": times["first_paint"],
        "load": times["load"],
    }


def markdown(result: dict[str, Any], ctx: Context) -> str:
    fcp = statistics.median(result["first_paint"])
    load = statistics.median(result["load"])
    size_met = result["bytes"] < result["budget"]
    lines = [
        "## 8. The report of 20 checkpoints x 64 images (targets: under 15 MB, first paint "
        "under 2 s)",
        "",
        f"`python bench/run.py report_paint` - {CHECKPOINTS} checkpoints x {IMAGES} photo crops "
        f"of {SIZE} pixels ({PROMPTS} prompts), default report settings; Debian's chromium "
        f"(headless, network off, fresh profile each load), median of {ctx.repeats} loads.",
        "",
        "| figure | value | target | met |",
        "|---|---:|---:|---|",
        f"| report.html size | {result['bytes'] / 1e6:.1f} MB | < {result['budget'] / 1e6:.0f} MB "
        f"| {'yes' if size_met else 'NO'} |",
        f"| first contentful paint | {fcp:.2f} s ({min(result['first_paint']):.2f}-"
        f"{max(result['first_paint']):.2f}) | < {PAINT_TARGET_S:.0f} s | "
        f"{'yes' if fcp < PAINT_TARGET_S else 'NO'} |",
        f"| load event end | {load:.2f} s ({min(result['load']):.2f}-{max(result['load']):.2f}) "
        "| | |",
    ]
    return "\n".join(lines) + "\n"
