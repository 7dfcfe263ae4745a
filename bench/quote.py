"""The performance page's quote of the targets: a table built from bench/RESULTS.md alone.

Each figure with targets ends its section with a `<!-- targets: [...] -->` line (`note`): the
targets as measured, when, at which commit, and how busy the machine was. `render` reads those
lines back; `update` puts the table between the markers of docs/performance.md. The bench
rewrites it after every run, and `tests/test_bench.py` fails when the page's table is not the
one RESULTS.md gives: the docs cannot quote a figure RESULTS.md does not hold.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from common import Target

BEGIN = "<!-- targets quoted from bench/RESULTS.md by bench/run.py: do not edit by hand -->"
END = "<!-- end of the quote -->"
NOTE = re.compile(r"^<!-- targets: (.*) -->$", re.M)
SECTION = re.compile(r"<!-- figure: (\w+) -->\n(.*?)<!-- end: \1 -->\n", re.S)


def note(targets: list[Target], measured: dict[str, Any]) -> str:
    """The machine-readable line a section ends with; `measured`: date, commit, others' CPU."""
    payload = {"targets": [asdict(t) for t in targets], **measured}
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True)
    if "-->" in text:
        raise ValueError(f"a target's text would end the HTML comment: {text}")
    return f"<!-- targets: {text} -->\n"


def _heading_anchor(section: str) -> str:
    """GitHub's anchor of the section's first `## ` heading."""
    heading = next(line[3:] for line in section.splitlines() if line.startswith("## "))
    slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
    return slug


def render(results: str) -> str:
    """The markdown table of every figure's targets in RESULTS.md, in its order."""
    lines = [
        "| target | measured | limit | met | figure, measured on |",
        "|---|---:|---:|---|---|",
    ]
    for name, section in SECTION.findall(results):
        found = NOTE.search(section)
        if found is None:
            continue
        payload = json.loads(found.group(1))
        others = payload.get("others_cpu")
        load = (
            f"{100 * others:.0f}% of the CPU used by other processes"
            if others is not None
            else "machine load not measured"
        )
        where = (
            f"[`{name}`](../bench/RESULTS.md#{_heading_anchor(section)}), {payload['date']} "
            f"at {payload['commit']}, {load}"
        )
        for t in payload["targets"]:
            met = "yes" if t["met"] else "**no**"
            lines.append(f"| {t['what']} | {t['measured']} | {t['limit']} | {met} | {where} |")
    return "\n".join(lines) + "\n"


def update(page: Path, results: str) -> bool:
    """Replace the quote in `page` (between BEGIN and END); False when the page has none."""
    text = page.read_text(encoding="utf-8")
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return False
    page.write_text(
        text[: start + len(BEGIN)] + "\n\n" + render(results) + "\n" + text[end:], encoding="utf-8"
    )
    return True


def quoted(page_text: str) -> str | None:
    """The table the page holds now, as `render` writes it."""
    start, end = page_text.find(BEGIN), page_text.find(END)
    if start < 0 or end < start:
        return None
    return page_text[start + len(BEGIN) : end].strip("\n") + "\n"
