"""The manual: docs/config.md is generated from the schema, the README stays short, links resolve,
and figures measured on one machine live only in bench/RESULTS.md (docs/performance.md quotes its
targets in a table the bench writes from it: `tests/test_bench.py` checks that one)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ckpt_eval.__main__ import main
from ckpt_eval.config import load_schema
from ckpt_eval.config_reference import COMMAND, render_reference

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = REPO / "docs"
CONFIG_MD = DOCS / "config.md"
RESULTS = REPO / "bench" / "RESULTS.md"
README_LIMIT = 12 * 1024


def manual() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def properties(schema: dict[str, Any], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every property of the schema, nested ones included, with its dotted name."""
    found = []
    for key, sub in schema.get("properties", {}).items():
        name = f"{prefix}{key}"
        found.append((name, sub))
        found += properties(sub, f"{name}.")
    return found


def test_config_md_is_the_rendered_schema() -> None:
    expected = render_reference(load_schema())
    actual = CONFIG_MD.read_text(encoding="utf-8") if CONFIG_MD.exists() else ""
    assert actual == expected, (
        f"docs/config.md differs from the schema's descriptions: run `{COMMAND}` and commit it"
    )


def test_every_schema_property_has_a_description() -> None:
    schema = load_schema()
    missing = [
        name for name, sub in properties(schema) if not str(sub.get("description", "")).strip()
    ]
    assert not missing, f"schema properties without a description: {missing}"
    assert len(properties(schema)) > 60  # the walk reached the nested sections


def test_every_config_key_is_in_config_md() -> None:
    text = CONFIG_MD.read_text(encoding="utf-8")
    missing = [name for name, _ in properties(load_schema()) if f"`{name}`" not in text]
    assert not missing, f"config keys missing from docs/config.md: {missing}"


def test_render_is_deterministic_and_follows_the_schema() -> None:
    schema = load_schema()
    text = render_reference(schema)
    assert text == render_reference(load_schema())
    headings = re.findall(r"^## `([^`]+)`$", text, flags=re.M)
    assert headings == list(schema["properties"])
    row = next(line for line in text.splitlines() if line.startswith("| `kid.subset_size` |"))
    assert "integer" in row and "`1000`" in row
    assert "- default: required" in text.split("## `real_images`")[1].split("##")[0]


def test_render_escapes_what_markdown_would_eat() -> None:
    schema = {
        "properties": {
            "section": {
                "type": "object",
                "description": "goes to results/<run>/ and `results/<run>/`",
                "properties": {
                    "mode": {
                        "type": "string",
                        "enum": ["a", "b"],
                        "default": "a",
                        "description": "a | b",
                    }
                },
            }
        }
    }
    text = render_reference(schema)
    assert "results/&lt;run&gt;/ and `results/<run>/`" in text
    assert "| `section.mode` | string: one of `a`, `b` | `a` | a \\| b |" in text


def test_readme_is_short() -> None:
    size = README.stat().st_size
    assert size < README_LIMIT, f"README.md is {size} bytes; the manual belongs in docs/"


def test_readme_keeps_the_two_set_up_commands() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Set-up: two commands", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in block.splitlines()] == [
        ["make", "demo"],
        ["make", "test"],
    ]
    assert "python -m ckpt_eval init" in text


def _without_code_blocks(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def _anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file."""
    anchors: set[str] = set()
    for heading in re.findall(r"^#+ (.+)$", _without_code_blocks(path.read_text("utf-8")), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchor, n = slug, 0
        while anchor in anchors:
            n += 1
            anchor = f"{slug}-{n}"
        anchors.add(anchor)
    return anchors


def _links(path: Path) -> list[str]:
    text = _without_code_blocks(path.read_text(encoding="utf-8"))
    return re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("page", manual(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for link in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", link):  # http:, https:, mailto:
            continue
        target, _, anchor = link.partition("#")
        resolved = (page.parent / target).resolve() if target else page
        if not resolved.exists():
            broken.append(f"{link} (no file {resolved})")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{link} (no heading #{anchor} in {resolved.name})")
    assert not broken, f"{page.name}: broken links: {broken}"


def test_the_manual_links_every_docs_page_from_the_readme() -> None:
    linked = {Path(link.partition("#")[0]).name for link in _links(README)}
    pages = {p.name for p in DOCS.glob("*.md")}
    assert pages <= linked, f"docs pages the README does not link: {sorted(pages - linked)}"


# A figure measured on a machine: a rate, or a decimal with a unit of time, memory or speed-up.
# The performance page's quote of the targets (between these markers, `bench/quote.py`) is
# written by the bench from RESULTS.md and checked equal to it by tests/test_bench.py.
QUOTE = re.compile(
    r"<!-- targets quoted from bench/RESULTS.md by bench/run.py: do not edit by hand -->"
    r".*?<!-- end of the quote -->",
    re.S,
)
RATE = re.compile(r"\d[\d.,]*\s*(?:images?/s|GFLOP/s|it/s)\b")
MEASURED = re.compile(r"\b\d+\.\d+\s?(?:s|ms|MiB|GiB|x)(?![\w-])")


def test_machine_figures_live_only_in_bench_results() -> None:
    results = RESULTS.read_text(encoding="utf-8")
    measured = set(MEASURED.findall(results))
    table_rows = {
        line.strip()
        for line in results.splitlines()
        if line.startswith("|") and re.search(r"\d", line) and not set(line) <= set("|-: ")
    }
    assert measured and table_rows  # the check has something to look for
    found = []
    for page in manual():
        text = QUOTE.sub("", page.read_text(encoding="utf-8"))
        found += [f"{page.name}: {m}" for m in RATE.findall(text)]
        found += [f"{page.name}: {m}" for m in MEASURED.findall(text) if m in measured]
        found += [f"{page.name}: {row[:60]}" for row in table_rows if row in text]
    assert not found, (
        f"figures measured on a machine belong in bench/RESULTS.md (link to it instead): {found}"
    )


def test_cli_writes_the_rendered_reference(tmp_path: Path, capsys) -> None:
    expected = render_reference(load_schema())
    out = tmp_path / "config.md"
    assert main(["config-reference", "--output", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == expected
    capsys.readouterr()
    assert main(["config-reference"]) == 0
    assert capsys.readouterr().out == expected


def test_python_dash_m_prints_the_reference() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ckpt_eval", "config-reference"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == render_reference(load_schema())
