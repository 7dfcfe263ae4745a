"""`snakemake --report` carries the evaluation: the metrics table, the charts, the ckpt-eval
report with its provenance and the consolidated results, with captions, under one category."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, snakemake

pytestmark = pytest.mark.workflow


def embedded(html: str, script_id: str) -> Any:
    """The JSON value the report page defines in `<script id=...>` as `var x = ...` (one line)."""
    match = re.search(rf'<script id="{script_id}">\s*var \w+ = (.*)$', html, re.MULTILINE)
    assert match, f"no script {script_id} in the report"
    return json.JSONDecoder().raw_decode(match.group(1))[0]


def data_of(entry: dict[str, Any]) -> bytes:
    uri = entry["data_uri"]
    assert uri.startswith(f"data:{entry['mime_type']}"), uri[:40]
    return base64.b64decode(uri.split(",", 1)[1])


@pytest.fixture(scope="module")
def report(finished: Path) -> str:
    path = finished / "results" / "t" / "snakemake-report.html"
    snakemake(finished, finished / "config.yaml", "--report", str(path))
    return path.read_text(encoding="utf-8")


def test_the_report_holds_the_metrics_table_charts_and_evaluation(
    finished: Path, report: str
) -> None:
    out = finished / "results" / "t"
    results = embedded(report, "results")
    by_file = {Path(path).relative_to("results/t").as_posix(): e for path, e in results.items()}
    charts = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert {"fid.png", "kid.png"} <= set(charts)
    sheets = sorted(p.name for p in (out / "grids").glob("*.jpg"))
    assert sheets == ["grid-001.jpg"]  # the 5 prompt positions all three checkpoints have
    assert set(by_file) == {
        "consolidated_results.json",
        "metrics.csv",
        "report.html",
        *(f"plots/{name}" for name in charts),
        *(f"grids/{name}" for name in sheets),
    }
    # each as the workflow wrote it, byte for byte
    for name, entry in by_file.items():
        assert data_of(entry) == (out / name).read_bytes(), name
    table = data_of(by_file["metrics.csv"]).decode().splitlines()
    assert table[0].startswith("rank,name,step") and len(table) == 4  # three checkpoints
    assert by_file["metrics.csv"]["mime_type"] == "text/csv"
    assert all(by_file[f"plots/{c}"]["mime_type"] == "image/png" for c in charts)
    assert all(by_file[f"grids/{s}"]["mime_type"] == "image/jpeg" for s in sheets)
    # captions from ckpt_eval/report/captions/ (package data), rendered with this run's config
    # and chart names
    assert "One row per checkpoint" in by_file["metrics.csv"]["caption"]
    assert "FID (lower is better)" in by_file["plots/fid.png"]["caption"]
    assert "KID (lower is better)" in by_file["plots/kid.png"]["caption"]
    assert "run <strong>t</strong>" in by_file["report.html"]["caption"]
    assert by_file["plots/fid.png"]["labels"] == {"chart": "fid"}
    assert "contact sheet grid-001" in by_file["grids/grid-001.jpg"]["caption"]
    assert by_file["grids/grid-001.jpg"]["labels"] == {"sheet": "grid-001"}
    categories = embedded(report, "categories")
    assert set(categories) == {"Evaluation"}
    assert set(categories["Evaluation"]) == {"Report", "Metrics", "Charts", "Results", "Grids"}
    assert "run <strong>t</strong>" in embedded(report, "workflow-desc")


def test_the_report_shows_the_provenance(finished: Path, report: str) -> None:
    result = json.loads((finished / "results" / "t" / "consolidated_results.json").read_text())
    provenance = result["provenance"]
    entries = embedded(report, "results")
    html = data_of(entries["results/t/report.html"]).decode()
    assert "Provenance" in html
    for value in (
        provenance["config_sha256"],
        provenance["inception_weights_sha256"],
        provenance["workflow_commit"] or "not a git checkout",
        provenance["metrics_made_by"][0]["settings_sha256"],
        f"torch {provenance['packages']['torch']}",
        f"Python {provenance['python']}",
    ):
        assert value in html, value


def test_the_jobs_record_the_commit_of_the_workflow_that_ran_them(finished: Path) -> None:
    """The workflow (this checkout's Snakefile) hands its folder to the metrics and consolidate
    jobs; the library itself looks for no checkout. The checkout may have local changes, or a
    new commit, by the time this runs, so the commit is checked for its form, not its value."""
    result = json.loads((finished / "results" / "t" / "consolidated_results.json").read_text())
    provenance = result["provenance"]
    commits = [provenance["workflow_commit"], provenance["metrics_made_by"][0]["workflow_commit"]]
    if (REPO / ".git").exists():
        assert all(re.fullmatch(r"[0-9a-f]{40}(-dirty)?", c or "") for c in commits), commits
    else:
        assert commits == [None, None]
