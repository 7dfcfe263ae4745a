"""Provenance: package versions as installed, timestamp, config hash, seed and the job's extras."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

import ckpt_eval.provenance as prov
from ckpt_eval.config import config_hash, validate_config


def _config(**overrides) -> dict:
    config = {"run": "r", "real_images": "real", "samples": {"root": "s"}, "prompts": "p.csv"}
    config.update(overrides)
    return validate_config(config)


def test_package_versions_match_installed() -> None:
    versions = prov.package_versions()
    assert list(versions) == prov.PACKAGES
    for name in ("torch", "numpy", "scipy", "pillow", "transformers", "snakemake"):
        assert name in versions
        assert versions[name] == metadata.version(name)
    # and against the modules themselves, not only the metadata API
    # (torch's own string may carry a local build tag, e.g. "+cu130", that the metadata lacks)
    assert versions["torch"] == torch.__version__.split("+")[0]
    assert versions["numpy"] == np.__version__
    assert versions["ckpt-eval"] == metadata.version("ckpt-eval")


def test_missing_package_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prov, "PACKAGES", ["numpy", "no-such-package-ckpt-eval-test"])
    assert prov.package_versions() == {
        "numpy": np.__version__,
        "no-such-package-ckpt-eval-test": None,
    }


def test_provenance_fields() -> None:
    config = _config(seed=1234)
    digest = config_hash(config)
    extra = {"device": "cpu", "inception_weights_sha256": "abc", "clip": "not computed: x"}
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    result = prov.provenance(config, digest, extra)
    after = dt.datetime.now(dt.UTC)

    generated = dt.datetime.fromisoformat(result["generated_at"])
    assert generated.utcoffset() == dt.timedelta(0)  # UTC, with the offset written out
    assert before <= generated <= after
    assert generated.microsecond == 0  # seconds precision
    assert result["config_sha256"] == digest and len(digest) == 64
    assert result["seed"] == 1234
    assert result["python"] == ".".join(map(str, sys.version_info[:3]))
    assert result["packages"] == prov.package_versions()
    for key, value in extra.items():
        assert result[key] == value


def test_provenance_seed_default_and_missing() -> None:
    assert prov.provenance(_config(), "h", {})["seed"] == 0  # the schema default
    assert prov.provenance({}, "h", {})["seed"] is None


def _meta() -> tuple[dict, dict]:
    inception_meta = {"device": "cuda:0", "weights_sha256": "7ff4"}
    clip_meta = {"available": True, "model": "org/clip", "revision": "abc123"}
    return inception_meta, clip_meta


def test_made_by_records_settings_sources_and_software_without_a_timestamp() -> None:
    settings = {"seed": 7, "kid": {"subsets": 3}}
    inception_meta, clip_meta = _meta()
    block = prov.made_by(settings, inception_meta, clip_meta)
    assert block["settings_sha256"] == config_hash(settings)
    assert block["seed"] == 7
    assert block["device"] == "cuda:0" and block["inception_weights_sha256"] == "7ff4"
    assert (block["clip_model"], block["clip_revision"]) == ("org/clip", "abc123")
    assert block["packages"] == prov.package_versions()
    assert block["workflow_commit"] is None  # no workflow folder given: see below
    assert "generated_at" not in block
    # another setting is another hash; the same settings in another key order are not
    other = prov.made_by({**settings, "seed": 8}, *_meta())
    assert other["settings_sha256"] != block["settings_sha256"]
    assert prov.made_by({"kid": {"subsets": 3}, "seed": 7}, *_meta()) == block


def test_clip_source_is_empty_when_clip_was_not_computed() -> None:
    status = {"available": False, "model": "org/clip", "revision": None, "reason": "offline"}
    assert prov.clip_source(status) == {
        "clip_model": None,
        "clip_revision": None,
        "clip_weights_sha256": None,
    }
    folder = {"available": True, "model": "/models/clip", "weights_sha256": "beef"}
    assert prov.clip_source(folder)["clip_weights_sha256"] == "beef"


def test_group_made_by_lists_each_distinct_block_once_with_its_checkpoints() -> None:
    a = {"settings_sha256": "s1", "packages": {"torch": "2"}}
    b = {"settings_sha256": "s1", "packages": {"torch": "1"}}  # kept from an older run
    rows = [
        {"name": "step-1", "made_by": a},
        {"name": "step-2", "made_by": b},
        {"name": "step-3", "made_by": dict(a)},
        {"name": "step-4"},  # no block: not listed
    ]
    assert prov.group_made_by(rows) == [
        {**a, "checkpoints": ["step-1", "step-3"]},
        {**b, "checkpoints": ["step-2"]},
    ]
    assert prov.group_made_by([{"name": "x"}]) == []


def _git(folder: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-C", str(folder)]
    return subprocess.run([*command, *args], capture_output=True, text=True, check=True).stdout


def test_workflow_commit_is_the_given_folders_with_dirty_for_its_own_files(tmp_path: Path) -> None:
    workflow = tmp_path / "workflow-checkout"
    (workflow / "scripts").mkdir(parents=True)
    (workflow / "scripts" / "job.py").write_text("print(1)\n")
    (workflow / "notes.txt").write_text("a\n")
    _git(workflow, "init", "-q")
    _git(workflow, "add", ".")
    _git(workflow, "commit", "-q", "-m", "first")
    head = _git(workflow, "rev-parse", "HEAD").strip()
    assert prov.workflow_commit(workflow) == head
    (workflow / "notes.txt").write_text("b\n")  # not a file of the workflow's code
    assert prov.workflow_commit(str(workflow)) == head
    (workflow / "scripts" / "job.py").write_text("print(2)\n")
    assert prov.workflow_commit(workflow) == f"{head}-dirty"
    assert prov.workflow_commit(tmp_path / "not-a-checkout") is None
    assert prov.workflow_commit(None) is None


def test_software_records_the_commit_of_the_workflow_folder_it_is_given(tmp_path: Path) -> None:
    """The library never looks for a checkout of its own (installed, it is in none, and this
    test's ckpt_eval being in one must not matter): only a folder given by a job counts."""
    workflow = tmp_path / "wf"
    workflow.mkdir()
    (workflow / "Snakefile").write_text("\n")
    _git(workflow, "init", "-q")
    _git(workflow, "add", ".")
    _git(workflow, "commit", "-q", "-m", "first")
    head = _git(workflow, "rev-parse", "HEAD").strip()
    assert prov.software()["workflow_commit"] is None
    assert prov.software(workflow)["workflow_commit"] == head
    assert prov.made_by({"seed": 1}, *_meta(), workflow)["workflow_commit"] == head
    assert prov.provenance({}, "h", {}, workflow)["workflow_commit"] == head
    assert prov.made_by({"seed": 1}, *_meta())["workflow_commit"] is None
