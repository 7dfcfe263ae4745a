"""The results JSON schema: what consolidate writes passes it, a file that breaks the contract
does not (the schema is checked on every write, so every workflow test validates its file)."""

from __future__ import annotations

import copy

import jsonschema
import pytest
from test_consolidate import PROVENANCE, _config, _metrics_with_clip

from ckpt_eval.analysis.consolidate import consolidate
from ckpt_eval.results_schema import results_schema, validate_results


def _result() -> dict:
    prov = {
        **PROVENANCE,
        "packages": {},
        "config_sha256": "x",
        "seed": 0,
        "inception_weights_sha256": "w",
        "device": "cpu",
    }
    return consolidate(_metrics_with_clip(), _config(), prov)


def _complete(result: dict) -> dict:
    """consolidate() on hand-made rows lacks the evaluation's own keys; add them as an
    evaluation writes them for a checkpoint without intervals."""
    for row in result["checkpoints"]:
        row.setdefault("fid_ci", None)
        row.setdefault("kid_ci", None)
        row.setdefault("clip_ci", None)
        row.setdefault("prdc", None)
        row.setdefault("fid_infinity", None)
        row.setdefault("exact_real_copies", [])
        row.setdefault("per_image", [])
        row.setdefault("notices", [])
        row.setdefault("memorization", {"inception": {}, "flag_share": 0.05, "flagged": []})
    return result


def test_consolidated_results_pass_the_schema() -> None:
    validate_results(_complete(_result()))


@pytest.mark.parametrize(
    ("breaks", "path"),
    [
        (lambda r: r.pop("recommendation"), "recommendation"),
        (lambda r: r["checkpoints"][0].pop("kid_mean"), "kid_mean"),
        (lambda r: r["checkpoints"][0].update(fid="12"), "fid"),
        (lambda r: r["recommendation"].update(rule="vibes"), "rule"),
        (lambda r: r["ranking"]["weights_used"].pop("metrics"), "metrics"),
    ],
)
def test_a_file_that_breaks_the_contract_is_refused(breaks, path: str) -> None:
    result = _complete(_result())
    broken = copy.deepcopy(result)
    breaks(broken)
    with pytest.raises(jsonschema.ValidationError) as err:
        validate_results(broken)
    assert path in str(err.value)


def test_the_schema_requires_the_documented_keys() -> None:
    """DESIGN.md's contract: these keys stay (more may be added, none renamed)."""
    schema = results_schema()
    row = schema["definitions"]["checkpoint"]["required"]
    for key in ("name", "step", "n_images", "fid", "kid_mean", "kid_std", "clip_score_mean"):
        assert key in row
    assert {"clip_score_std", "rank"} <= set(row)
    assert {"checkpoint", "step", "reasons"} <= set(
        schema["properties"]["recommendation"]["required"]
    )
    assert {"checkpoints", "recommendation", "provenance"} <= set(schema["required"])
