"""Where a workflow run's time goes, per job, from the timing line every job writes to its log
(`ckpt_eval.timing`): process start, imports, the named phases of its work, the rest; and
Snakemake's own share of the wall time (planning before the first job, moments with no job
running, the end after the last one).

Used by the `fresh` and `incremental` figures; `tests/test_bench.py` checks the arithmetic.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from ckpt_eval.timing import read_timing

# phases of the jobs' work, grouped into the table's columns (a `metric <key>` phase counts in
# "metrics"); anything else a job times goes to "other work"
COLUMNS = (
    "start",
    "imports",
    "organize",
    "import torch",
    "weights",
    "load model",
    "extract",
    "metrics",
    "bootstrap",
    "charts",
    "render",
    "grids",
    "write",
    "other work",
)
COLUMN_NOTES = {
    "start": "process created to the script's first line: shell, interpreter, Snakemake's "
    "job object unpickled",
    "imports": "the script's own imports (ckpt_eval modules)",
    "organize": "the set's images decoded whole and hashed (the first step of each feature job; "
    "the Inception job writes them as the manifest)",
    "import torch": "torch and the extraction modules, imported by the job",
    "weights": "the Inception network loaded and ready",
    "load model": "a model extractor's model loaded (or found missing)",
    "extract": "images read, decoded, resized and through the network",
    "metrics": "every registered metric",
    "bootstrap": "the bootstrap intervals",
    "charts": "the report's charts drawn",
    "render": "the report's Markdown and HTML, thumbnails included",
    "grids": "the grid's contact sheets drawn (their own job, `contact_sheets`, runs beside "
    "the report's)",
    "write": "feature files written",
    "other work": "the rest of the job's work (reading inputs, writing its outputs)",
}


def job_records(out_dir: Path) -> list[dict[str, Any]]:
    """The timing record of every job log under `out_dir`/logs (jobs of this run and earlier
    ones: filter by time with `since`)."""
    records = []
    for path in sorted((out_dir / "logs").rglob("*.log")):
        record = read_timing(path.read_text(encoding="utf-8", errors="replace"))
        if record is not None:
            records.append(record)
    return records


def since(records: list[dict[str, Any]], launched: float) -> list[dict[str, Any]]:
    """The records of jobs that started after `launched` (the jobs of the run launched then)."""
    return [r for r in records if (r["process_start"] or r["body_start"]) >= launched]


def _column(name: str) -> str:
    if name.startswith("metric "):
        return "metrics"
    return name if name in COLUMNS else "other work"


def job_columns(record: dict[str, Any]) -> dict[str, float]:
    """One job's seconds by column; they add up to its whole time (process start to end)."""
    start = record["process_start"]
    script = record["script_start"]
    body, end = record["body_start"], record["end"]
    out = dict.fromkeys(COLUMNS, 0.0)
    if start is not None and script is not None:
        out["start"] = max(script - start, 0.0)
        out["imports"] = max(body - script, 0.0)
    elif start is not None:  # no script start noted: the imports count as start
        out["start"] = max(body - start, 0.0)
    timed = 0.0
    for name, seconds in record["phases"].items():
        out[_column(name)] += seconds
        timed += seconds
    out["other work"] += max(end - body - timed, 0.0)
    return out


def _union(intervals: list[tuple[float, float]]) -> float:
    total, reach = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= reach:
            continue
        total += b - max(a, reach)
        reach = b
    return total


def breakdown(records: list[dict[str, Any]], launched: float, ended: float) -> dict[str, Any]:
    """Per rule: jobs, seconds by column (summed over its jobs); the run's time line: Snakemake
    before the first job, with no job running between jobs, after the last job."""
    rules: dict[str, dict[str, Any]] = {}
    spans = []
    for record in records:
        begin = record["process_start"] or record["body_start"]
        spans.append((begin, record["end"]))
        row = rules.setdefault(record["rule"], {"jobs": 0, **dict.fromkeys(COLUMNS, 0.0)})
        row["jobs"] += 1
        for name, seconds in job_columns(record).items():
            row[name] += seconds
    for row in rules.values():
        row["total"] = sum(row[c] for c in COLUMNS)
    first = min((a for a, _ in spans), default=ended)
    last = max((b for _, b in spans), default=launched)
    busy = _union(spans)
    return {
        "rules": rules,
        "wall": ended - launched,
        "before_first_job": max(first - launched, 0.0),
        "between_jobs": max(last - first - busy, 0.0),
        "after_last_job": max(ended - last, 0.0),
        "jobs_seconds": sum(row["total"] for row in rules.values()),
    }


def median_breakdown(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each number over several runs' breakdowns (rules seen in every run)."""
    names = set.intersection(*(set(r["rules"]) for r in runs))
    order = [name for name in runs[0]["rules"] if name in names]
    rules = {
        name: {
            key: statistics.median(r["rules"][name][key] for r in runs)
            for key in ("jobs", "total", *COLUMNS)
        }
        for name in order
    }
    scalars = ("wall", "before_first_job", "between_jobs", "after_last_job", "jobs_seconds")
    return {"rules": rules, **{k: statistics.median(r[k] for r in runs) for k in scalars}}


def table(b: dict[str, Any]) -> list[str]:
    """The per-rule table (seconds summed over each rule's jobs) and the time line, Markdown."""
    used = [c for c in COLUMNS if any(row[c] >= 0.005 for row in b["rules"].values())]
    lines = [
        "| rule | jobs | seconds | " + " | ".join(used) + " |",
        "|---|---:|---:|" + "---:|" * len(used),
    ]
    for name, row in sorted(b["rules"].items(), key=lambda kv: -kv[1]["total"]):
        cells = " | ".join(f"{row[c]:.2f}" for c in used)
        lines.append(f"| {name} | {row['jobs']:.0f} | {row['total']:.2f} | {cells} |")
    totals = " | ".join(f"{sum(row[c] for row in b['rules'].values()):.2f}" for c in used)
    jobs = sum(row["jobs"] for row in b["rules"].values())
    lines.append(f"| **all jobs** | {jobs:.0f} | {b['jobs_seconds']:.2f} | {totals} |")
    lines += [
        "",
        f"Wall {b['wall']:.2f} s: Snakemake alone before the first job {b['before_first_job']:.2f}"
        f" s (start, planning), with no job running between jobs {b['between_jobs']:.2f} s, "
        f"after the last job {b['after_last_job']:.2f} s; jobs ran {b['jobs_seconds']:.2f} s "
        "in all (two may run at once on 2 cores).",
        "",
        "Columns: "
        + "; ".join(f"**{c}** {COLUMN_NOTES[c]}" for c in used)
        + ". Each job's columns add up to its whole time, from its process's creation "
        "(`/proc`, to 10 ms) to its outputs written.",
    ]
    return lines
