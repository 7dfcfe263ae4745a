"""Provenance: package versions as installed, timestamp, config hash, seed and the job's extras."""

from __future__ import annotations

import datetime as dt
import sys
from importlib import metadata

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
