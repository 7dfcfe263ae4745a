"""The demo's report.html in a real browser: Debian's chromium, driven by Playwright for Python
(pinned in requirements-dev.txt; it drives the system browser, `playwright install` is never
run), with the network blocked.

What it needs: `/usr/bin/chromium` (or `chromium` on PATH). When it is missing the session's
`chromium` fixture installs Debian's package (`apt-get install chromium`) if it runs as root
with apt-get, as CI's fresh machine does; else the tests skip saying why, and
`CKPT_EVAL_REQUIRE_BROWSER=1` (set by .ci/run) turns that skip into a failure.

The demo (its real photo crops, five checkpoints) runs with a tiny random CLIP model (numbers
that mean nothing; the grid's per-image scores and the per-prompt view are what is shown) and a
`<script>` appended to every prompt. The page is opened from its file:// URL in a context that is
offline, with every request routed through a handler that refuses all but the page itself.

Screenshots go to `results/browser-test/` of the checkout (or `$CKPT_EVAL_SCREENSHOTS`):
`report-full.png` (the whole page), `report-grid.png` (the grid), `report-enlarged.png` (an
image enlarged), `report-sorted.png` (the results table sorted by FID).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from conftest import REPO, snakemake
from debian_packages import Unavailable, install, skip_or_fail

# bench/report_paint.py: the chromium path and flags, and how both open the report
sys.path.insert(0, str(REPO / "bench"))
from report_paint import CHROMIUM, launch  # noqa: E402

pytestmark = pytest.mark.workflow

HOSTILE = "<script>window.__pwned = 1</script><img src=x onerror=window.__pwned=2>"
SCREENSHOTS = Path(os.environ.get("CKPT_EVAL_SCREENSHOTS") or REPO / "results" / "browser-test")


@pytest.fixture(scope="session")
def chromium(request: pytest.FixtureRequest) -> str:
    """The system chromium's path, installed from Debian's package when missing (root + apt)."""

    def unavailable(reason: str) -> None:
        skip_or_fail(request, "Browser tests", "CKPT_EVAL_REQUIRE_BROWSER", reason)

    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("Playwright is not installed (pip install -r requirements-dev.txt)")
    found = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if found is None:
        try:
            install(("chromium",))
        except Unavailable as error:
            unavailable(f"needs Debian's chromium (apt-get install chromium): {error}")
        found = shutil.which("chromium") or CHROMIUM
    return found


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, tiny_clip: Path) -> Path:
    """The bundled demo run to its report, CLIP through the tiny model, hostile prompts."""
    root = tmp_path_factory.mktemp("browser")
    shutil.copytree(REPO / "demo", root / "demo")
    prompts = root / "demo" / "prompts.csv"
    with open(prompts, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["prompt"] = f"{row['prompt']} {HOSTILE}"
    with open(prompts, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "prompt"])
        writer.writeheader()
        writer.writerows(rows)
    config = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    config.update(run="browser", device="cpu", clip={"model": str(tiny_clip), "required": True})
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    snakemake(root, path)
    return root / "results" / "browser"


def _open(chromium: str, url: str):
    """A browser page on `url` with the network blocked; yields (page, refused, errors)."""
    from playwright.sync_api import sync_playwright

    refused: list[str] = []
    errors: list[str] = []
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
        context = launch(p, profile, chromium)  # a fresh user-data-dir, offline
        try:

            def route(r) -> None:
                if r.request.url == url:
                    r.continue_()
                else:
                    refused.append(r.request.url)
                    r.abort()

            context.route("**/*", route)
            context.on("request", lambda req: None if req.url == url else refused.append(req.url))
            page = context.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url, wait_until="load")
            yield page, refused, errors
        finally:
            context.close()


@pytest.fixture(scope="module")
def opened(chromium: str, demo: Path):
    report = demo / "report.html"
    generator = _open(chromium, report.resolve().as_uri())
    yield next(generator)
    generator.close()


def _names(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "cells => cells.map(c => c.textContent.trim())")


def test_no_request_leaves_the_file_and_no_console_error(opened, demo: Path) -> None:
    page, refused, errors = opened
    page.wait_for_timeout(300)
    assert refused == []
    assert errors == []
    # the page's only script is its own (the CSP lets no other run)
    assert page.evaluate("document.scripts.length") == 1


def test_grid_has_a_column_per_checkpoint_and_a_row_per_row_shown(opened, demo: Path) -> None:
    page, _, _ = opened
    result = json.loads((demo / "consolidated_results.json").read_text(encoding="utf-8"))
    names = [r["name"] for r in result["checkpoints"]]
    columns = page.eval_on_selector_all(
        "#grid-table thead th.ckpt", "ths => ths.map(th => th.dataset.checkpoint)"
    )
    assert columns == names  # step order (no base model in the demo)
    rows = page.locator("#grid-table tbody tr")
    shown = min(16, 40)  # report.grid_rows of the 40 prompt positions every checkpoint has
    assert rows.count() == shown
    cells = page.eval_on_selector_all(
        "#grid-table tbody tr", "trs => trs.map(tr => tr.querySelectorAll('td').length)"
    )
    assert cells == [len(names)] * shown
    # every cell: a thumbnail that decoded, and its per-image CLIP score from the registry
    widths = page.eval_on_selector_all(
        "#grid-table td img", "imgs => imgs.map(i => i.complete && i.naturalWidth)"
    )
    assert len(widths) == shown * len(names) and all(w > 0 for w in widths)
    assert all("CLIP score" in s for s in _names(page, "#grid-table .scores"))
    recommended = result["recommendation"]["checkpoint"]
    marked = page.eval_on_selector_all(
        "#grid-table th.ckpt.recommended", "ths => ths.map(th => th.dataset.checkpoint)"
    )
    assert marked == [recommended]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#grid-table").screenshot(path=str(SCREENSHOTS / "report-grid.png"))
    page.screenshot(path=str(SCREENSHOTS / "report-full.png"), full_page=True)


def test_sorting_the_results_by_fid_reorders_them(opened, demo: Path) -> None:
    page, _, errors = opened
    result = json.loads((demo / "consolidated_results.json").read_text(encoding="utf-8"))
    fid = {r["name"]: r["fid"] for r in result["checkpoints"]}
    column = "#results-table tbody tr td:nth-child(2) a"
    before = _names(page, column)
    assert before == [r["name"] for r in result["checkpoints"]]  # step order
    header = page.locator("#results-table th[data-metric='fid'] button.sort")
    header.click()
    ascending = _names(page, column)
    assert ascending == sorted(fid, key=fid.get) and ascending != before
    header.click()
    assert _names(page, column) == ascending[::-1]
    page.locator("#results-table").screenshot(path=str(SCREENSHOTS / "report-sorted.png"))
    header.click()
    assert errors == []


def test_clicking_a_thumbnail_opens_the_enlarged_image(opened) -> None:
    page, _, errors = opened
    box = page.locator("#lightbox")
    assert box.is_hidden()
    thumb = page.locator("#grid-table button.zoom").first
    thumb.scroll_into_view_if_needed()
    thumb.click()
    assert box.is_visible()
    enlarged = page.locator("#lightbox-image")
    assert enlarged.get_attribute("src") == thumb.get_attribute("data-full")
    page.wait_for_function("document.getElementById('lightbox-image').complete")
    assert page.evaluate("document.getElementById('lightbox-image').naturalWidth") > 0
    shown = enlarged.bounding_box()
    small = thumb.locator("img").bounding_box()
    assert shown["width"] > 2 * small["width"]
    columns = page.eval_on_selector_all(
        "#grid-table thead th.ckpt", "ths => ths.map(th => th.dataset.checkpoint)"
    )
    caption = page.locator("#lightbox-caption")
    assert caption.text_content().startswith(columns[0] + " · ")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "report-enlarged.png"))
    # the arrow keys move across checkpoints, and across rows; Escape closes
    page.keyboard.press("ArrowRight")
    assert caption.text_content().startswith(columns[1] + " · ")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")  # at the first column: stays
    assert caption.text_content().startswith(columns[0] + " · ")
    first_row = caption.text_content()
    page.keyboard.press("ArrowDown")
    assert caption.text_content() != first_row
    assert caption.text_content().startswith(columns[0] + " · ")
    page.keyboard.press("Escape")
    assert box.is_hidden()
    assert errors == []


def test_a_prompt_with_a_script_stays_text(opened) -> None:
    page, _, _ = opened
    heads = _names(page, "#grid-table tbody th.prompt")
    assert heads and all(HOSTILE in h for h in heads)
    assert page.evaluate("window.__pwned === undefined")
    assert page.locator("img[src='x']").count() == 0
    assert page.evaluate("document.scripts.length") == 1
    prompts = _names(page, "table.per-prompt tbody td:first-child")
    assert prompts and all(p.endswith(HOSTILE) for p in prompts)
    # the enlarged view's caption is text too
    page.locator("#grid-table button.zoom").first.click()
    assert HOSTILE in page.locator("#lightbox-caption").text_content()
    assert page.locator("#lightbox-caption *").count() == 0
    page.keyboard.press("Escape")


def test_methodology_is_collapsed_below_the_results(opened) -> None:
    page, _, _ = opened
    assert page.evaluate("document.querySelector('details.methodology').open") is False
    order = page.evaluate(
        "['results', 'grid', 'methodology'].map(id => document.getElementById(id))"
        ".map((el, i, all) => i === 0 || "
        "!!(all[i - 1].compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING))"
    )
    assert order == [True, True, True]
