"""Every result file says how it was made, and a rerun from scratch on the same inputs writes the
same bytes, the one timestamp (`provenance.generated_at`) apart."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import snakemake

from ckpt_eval.provenance import package_versions

pytestmark = pytest.mark.workflow

INPUTS = ("real", "samples", "prompts.csv", "config.yaml")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")
MADE_BY = {
    "settings_sha256",
    "seed",
    "device",
    "inception_weights_sha256",
    "clip_model",
    "clip_revision",
    "clip_weights_sha256",
    "python",
    "packages",
    "workflow_commit",
}


def test_every_result_json_says_how_it_was_made(finished: Path) -> None:
    out = finished / "results" / "t"
    result = json.loads((out / "consolidated_results.json").read_text())
    provenance = result["provenance"]
    for key in ("config_sha256", "seed", "device", "inception_weights_sha256", "clip_model"):
        assert key in provenance, key
    assert provenance["packages"] == package_versions()
    names = [row["name"] for row in result["checkpoints"]]
    blocks = []
    for name in names:
        text = (out / f"metrics_checkpoint_{name}.json").read_text()
        block = json.loads(text)["made_by"]
        assert set(block) == MADE_BY
        assert block["inception_weights_sha256"] == provenance["inception_weights_sha256"]
        assert block["seed"] == provenance["seed"] and block["device"] == provenance["device"]
        assert len(json.dumps(block)) < 1500  # small beside the file's own content
        blocks.append(block)
    # computed alike: one block in the consolidated provenance, naming every checkpoint; the
    # rows do not repeat it
    assert provenance["metrics_made_by"] == [{**blocks[0], "checkpoints": names}]
    assert all("made_by" not in row for row in result["checkpoints"])


def without_timestamp(text: str) -> str:
    return re.sub(r'"generated_at": "[^"]*"', '"generated_at": "-"', text)


def test_a_rerun_from_scratch_writes_the_same_bytes(finished: Path, tmp_path: Path) -> None:
    for name in INPUTS:
        source = finished / name
        copy = shutil.copytree if source.is_dir() else shutil.copy2
        copy(source, tmp_path / name)
    snakemake(tmp_path, tmp_path / "config.yaml")
    first, again = finished / "results" / "t", tmp_path / "results" / "t"
    consolidated = (first / "consolidated_results.json").read_text()
    assert len(TIMESTAMP.findall(consolidated)) == 1  # generated_at is the only timestamp
    rerun = (again / "consolidated_results.json").read_text()
    assert without_timestamp(rerun) == without_timestamp(consolidated)
    names = [p.name for p in first.glob("metrics_checkpoint_*.json")]
    assert len(names) == 3
    for name in [*names, "metrics.csv"]:
        assert (again / name).read_bytes() == (first / name).read_bytes(), name
