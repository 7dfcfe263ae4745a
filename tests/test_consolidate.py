"""consolidate() and write_csv() on hand-made per-checkpoint metrics, checked by hand."""

from __future__ import annotations

import copy
import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ckpt_eval.analysis.consolidate import consolidate, csv_columns, write_csv
from ckpt_eval.config import validate_config
from ckpt_eval.generate.plan import BASELINE

PROVENANCE = {"tool": "ckpt-eval", "marker": 12345}

# Written out here rather than imported, so a changed column set is noticed.
EXPECTED_COLUMNS = [
    "rank",
    "name",
    "step",
    "epoch",
    "n_images",
    "fid",
    "kid_mean",
    "kid_std",
    "clip_score_mean",
    "clip_score_std",
    "score",
    "tier",
    "fid_ci_low",
    "fid_ci_high",
    "kid_ci_low",
    "kid_ci_high",
    "clip_ci_low",
    "clip_ci_high",
    "precision",
    "recall",
    "density",
    "coverage",
    "memorization_share",
    "fid_infinity",
    "fid_band",
    "clip_band",
]


def _config(**overrides: Any) -> dict[str, Any]:
    config = {
        "run": "unit-run",
        "real_images": "real",
        "samples": {"root": "s"},
        "prompts": "p.csv",
    }
    config.update(overrides)
    return validate_config(config)


def _metric(
    name: str,
    step: int | None,
    fid: float | None,
    clip: float | None,
    *,
    n_images: int = 40,
    clip_reason: str | None = None,
    epoch: int | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "step": step,
        "epoch": epoch,
        "n_images": n_images,
        "n_real": 100,
        "fid": fid,
        "kid_mean": None if fid is None else fid / 1000.0,
        "kid_std": None if fid is None else 0.001,
        "clip_score_mean": clip,
        "clip_score_std": None if clip is None else 1.5,
        "clip_available": clip is not None or clip_reason is None,
        "clip_reason": clip_reason,
        "warnings": [],
    }


def _metrics_with_clip() -> list[dict[str, Any]]:
    # Deliberately out of order; "final" has no step and only one image (no FID).
    return [
        _metric("step-1000", 1000, 45.0, 26.0),
        _metric("final", None, None, 29.0, n_images=1),
        _metric("step-500", 500, 8.0, 28.0),
        _metric("step-200", 200, 15.0, 31.0),
    ]


def test_consolidate_with_clip() -> None:
    metrics = _metrics_with_clip()
    original = copy.deepcopy(metrics)
    result = consolidate(metrics, _config(), PROVENANCE)

    assert metrics == original  # inputs are not modified
    assert result["run"] == "unit-run"
    assert result["provenance"] == PROVENANCE

    rows = result["checkpoints"]
    # sorted by training step numerically (200 < 500 < 1000), unknown position last
    assert [r["name"] for r in rows] == ["step-200", "step-500", "step-1000", "final"]

    # FID min-max over 8..45: (45 - fid) / 37; CLIP min-max over 26..31: (clip - 26) / 5
    # step-200: 0.6 * 30/37 + 0.4 * 1.0; step-500: 0.6 * 1 + 0.4 * 0.4; step-1000: 0
    expected_scores = [0.6 * 30.0 / 37.0 + 0.4, 0.6 + 0.4 * 0.4, 0.0, None]
    for row, expected in zip(rows, expected_scores, strict=True):
        if expected is None:
            assert row["score"] is None
        else:
            assert row["score"] == pytest.approx(expected)
    assert [r["rank"] for r in rows] == [1, 2, 3, None]

    assert [r["fid_band"] for r in rows] == ["Very good", "Excellent", "Good", None]
    assert [r["clip_band"] for r in rows] == ["Excellent", "Very good", "Good", "Very good"]

    used = result["ranking"]["weights_used"]
    assert {k: used[k] for k in ("fid", "clip", "clip_used")} == {
        "fid": pytest.approx(0.6),
        "clip": pytest.approx(0.4),
        "clip_used": True,
    }
    assert used["metrics"] == ["fid", "clip"] and used["dropped"] == []
    assert result["ranking"]["margin"] == 0.02

    rec = result["recommendation"]
    assert rec["checkpoint"] == "step-200" and rec["step"] == 200
    # FID is best at step-500 (8.0) and step-1000 is far worse afterwards
    assert rec["overfitting"]["flagged"] is True
    assert rec["overfitting"]["best_fid_checkpoint"] == "step-500"
    assert [w["checkpoint"] for w in rec["overfitting"]["worse_after"]] == ["step-1000"]
    assert rec["reasons"][-1].startswith("Possible overfitting")

    assert result["clip"] == {
        "model": "openai/clip-vit-large-patch14",
        "computed": True,
        "reasons_not_computed": [],
    }


def test_consolidate_without_clip() -> None:
    reason_a = "CLIP model could not be loaded: no such folder"
    reason_b = "transformers is not installed"
    metrics = [
        _metric("step-300", 300, 30.0, None, clip_reason=reason_a),
        _metric("step-100", 100, 40.0, None, clip_reason=reason_b),
        _metric("step-200", 200, 20.0, None, clip_reason=reason_a),
    ]
    config = _config(ranking={"weights": {"fid": 0.6, "clip": 0.4}, "margin": 0.1})
    result = consolidate(metrics, config, PROVENANCE)
    rows = result["checkpoints"]
    assert [r["name"] for r in rows] == ["step-100", "step-200", "step-300"]
    # FID alone over 20..40: (40 - fid) / 20
    assert [r["score"] for r in rows] == [
        pytest.approx(0.0),
        pytest.approx(1.0),
        pytest.approx(0.5),
    ]
    assert [r["rank"] for r in rows] == [3, 1, 2]
    assert [r["fid_band"] for r in rows] == ["Good", "Good", "Good"]
    assert [r["clip_band"] for r in rows] == [None, None, None]
    used = result["ranking"]["weights_used"]
    assert {k: used[k] for k in ("fid", "clip", "clip_used")} == {
        "fid": 1.0,
        "clip": 0.0,
        "clip_used": False,
    }
    assert used["metrics"] == ["fid"] and used["dropped"] == ["clip"]
    assert result["ranking"]["margin"] == 0.1
    rec = result["recommendation"]
    assert rec["checkpoint"] == "step-200"
    assert "FID alone" in rec["reasons"][0]
    # 30 after a best of 20 is +50%
    assert rec["overfitting"]["flagged"] is True
    assert result["clip"]["computed"] is False
    assert result["clip"]["reasons_not_computed"] == sorted([reason_a, reason_b])


def test_consolidate_clip_missing_for_some_checkpoints() -> None:
    metrics = [
        _metric("step-100", 100, 40.0, 30.0),
        _metric("step-200", 200, 20.0, None, clip_reason="no embeddings for step-200"),
    ]
    result = consolidate(metrics, _config(), PROVENANCE)
    assert result["clip"]["computed"] is False
    assert result["clip"]["reasons_not_computed"] == ["no embeddings for step-200"]
    # one ranked checkpoint lacks CLIP, so the score is FID alone
    assert result["ranking"]["weights_used"]["clip_used"] is False
    assert result["recommendation"]["checkpoint"] == "step-200"


def test_consolidate_margin_prefers_earlier_checkpoint() -> None:
    metrics = [
        _metric("step-100", 100, 20.4, None, clip_reason="off"),
        _metric("step-200", 200, 20.0, None, clip_reason="off"),
        _metric("step-300", 300, 40.0, None, clip_reason="off"),
    ]
    # scores: step-100 0.98, step-200 1.0, step-300 0.0
    earliest = _config(ranking={"margin": 0.05})
    earliest["ranking"]["prefer"] = "earliest"
    wide = consolidate(metrics, earliest, PROVENANCE)
    assert wide["recommendation"]["checkpoint"] == "step-100"
    # by default the best point estimate is recommended, the earlier one named as alternative
    best = consolidate(metrics, _config(ranking={"margin": 0.05}), PROVENANCE)["recommendation"]
    assert best["checkpoint"] == "step-200" and best["alternative"] == "step-100"
    assert best["prefer"] == "best" and best["within_margin"] == ["step-200", "step-100"]
    narrow = consolidate(metrics, _config(ranking={"margin": 0.0}), PROVENANCE)
    assert narrow["recommendation"]["checkpoint"] == "step-200"
    assert narrow["recommendation"]["alternative"] is None


def test_consolidate_uses_configured_bands() -> None:
    metrics = [_metric("step-1", 1, 15.0, 22.0), _metric("step-2", 2, 5.0, 24.0)]
    config = _config(report={"fid_bands": [1, 2, 3, 4], "clip_bands": [21, 20, 19, 18]})
    rows = consolidate(metrics, config, PROVENANCE)["checkpoints"]
    assert [r["fid_band"] for r in rows] == ["Poor", "Poor"]
    assert [r["clip_band"] for r in rows] == ["Excellent", "Excellent"]


def test_write_csv(tmp_path: Path) -> None:
    result = consolidate(_metrics_with_clip(), _config(), PROVENANCE)
    path = tmp_path / "ranking.csv"
    write_csv(result, path)

    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        # the columns of every registry metric; the documented ones keep their order (new
        # metrics add columns, none is renamed or moved relative to the others)
        assert reader.fieldnames == [column for column, _ in csv_columns()]
        assert [c for c in reader.fieldnames if c in EXPECTED_COLUMNS] == EXPECTED_COLUMNS
        lines = list(reader)

    assert [line["name"] for line in lines] == ["step-200", "step-500", "step-1000", "final"]
    first = lines[0]
    assert first["rank"] == "1"
    assert first["step"] == "200"
    assert first["epoch"] == ""  # None -> empty cell
    assert first["n_images"] == "40"
    assert float(first["fid"]) == 15.0
    assert float(first["kid_mean"]) == pytest.approx(0.015)
    assert float(first["clip_score_mean"]) == 31.0
    assert float(first["score"]) == pytest.approx(0.6 * 30.0 / 37.0 + 0.4)
    assert first["fid_band"] == "Very good" and first["clip_band"] == "Excellent"

    final = lines[3]
    for column in ("rank", "step", "epoch", "fid", "kid_mean", "kid_std", "score", "fid_band"):
        assert final[column] == "", column
    assert float(final["clip_score_mean"]) == 29.0
    assert final["clip_band"] == "Very good"
    assert final["n_images"] == "1"

    # keys outside the column list (warnings, clip_available, ...) are not written
    text = path.read_text(encoding="utf-8")
    assert "clip_available" not in text and "warnings" not in text
    assert len(text.splitlines()) == 5


def test_write_csv_keeps_zero_values(tmp_path: Path) -> None:
    """0 and 0.0 are values, not missing: only None becomes an empty cell."""
    result = {"checkpoints": [{"name": "step-0", "step": 0, "score": 0.0, "rank": 1}]}
    path = tmp_path / "zero.csv"
    write_csv(result, path)
    with open(path, newline="", encoding="utf-8") as handle:
        (line,) = list(csv.DictReader(handle))
    assert line["step"] == "0"
    assert line["score"] == "0.0"
    assert line["rank"] == "1"
    assert line["fid"] == ""


# ---------------------------------------------------------------- significance


def _replicates(rng: np.random.Generator, fid: float, spread: float) -> dict[str, np.ndarray]:
    return {
        "fid": rng.normal(fid, spread, 1000),
        "kid": rng.normal(fid / 1000.0, spread / 1000.0, 1000),
    }


def _with_interval(metric: dict[str, Any]) -> dict[str, Any]:
    metric = dict(metric, fid_ci={"low": 0.0, "high": 1.0, "level": 0.95, "bias": 0.0})
    return metric


def test_the_first_tier_is_said_and_prefer_picks_among_it() -> None:
    """step-300 has the best FID, but step-200 cannot be told apart from it (spread 2 vs a gap of
    1): by default step-300 is recommended and step-200 named as the cheaper alternative; with
    ranking.prefer: earliest, step-200. step-100 and step-400 are clearly worse."""
    rng = np.random.default_rng(0)
    fids = {"step-100": 40.0, "step-200": 21.0, "step-300": 20.0, "step-400": 35.0}
    metrics = [_with_interval(_metric(n, int(n[5:]), f, None)) for n, f in fids.items()]
    replicates = {n: _replicates(rng, f, 2.0) for n, f in fids.items()}
    result = consolidate(metrics, _config(), PROVENANCE, replicates)
    tiers = result["significance"]["tiers"]
    assert tiers[0] == ["step-300", "step-200"]
    rec = result["recommendation"]
    assert rec["checkpoint"] == "step-300" and rec["method"] == "significance"
    assert rec["rule"] == "tier" and rec["tier"] == ["step-300", "step-200"]
    assert rec["alternative"] == "step-200" and rec["prefer"] == "best"
    # 4 checkpoints: 6 pairs on FID and KID (no CLIP): a family of 12 comparisons
    assert result["significance"]["family"]["comparisons"] == 12 and rec["family"] == 12
    assert (
        "step-200 cannot be told apart from it with 40 images per checkpoint" in rec["reasons"][1]
    )
    assert "Holm's correction over 12 comparisons" in rec["reasons"][1]
    assert "step-200, the earliest of them, is the cheaper alternative" in rec["reasons"][2]
    earliest = _config()
    earliest["ranking"]["prefer"] = "earliest"
    again = consolidate(metrics, earliest, PROVENANCE, replicates)["recommendation"]
    assert again["checkpoint"] == "step-200" and again["alternative"] == "step-300"
    rows = {r["name"]: r for r in result["checkpoints"]}
    assert rows["step-200"]["tier"] == 1 and rows["step-100"]["tier"] > 1
    assert rows["step-300"]["vs_top"] is None
    assert not rows["step-200"]["vs_top"]["fid"]["significant"]
    assert rows["step-400"]["vs_previous"]["fid"]["significant"]  # 35 vs 20
    assert rows["step-400"]["vs_previous"]["fid"]["better"] == "step-300"
    # step-400 is worse than the best FID by more than 10% and significantly: overfitting
    assert rec["overfitting"]["flagged"]
    assert rec["overfitting"]["worse_after"][0]["significant"] is True


def test_a_gap_within_noise_is_not_overfitting() -> None:
    """FID 20 -> 23 is more than 10% worse, but with a spread of 5 it is not significant."""
    rng = np.random.default_rng(1)
    fids = {"step-100": 20.0, "step-200": 23.0}
    metrics = [_with_interval(_metric(n, int(n[5:]), f, None)) for n, f in fids.items()]
    replicates = {n: _replicates(rng, f, 5.0) for n, f in fids.items()}
    result = consolidate(metrics, _config(), PROVENANCE, replicates)
    assert result["recommendation"]["overfitting"]["flagged"] is False
    assert result["significance"]["tiers"] == [["step-100", "step-200"]]


def test_memorization_after_the_best_checkpoint_is_overfitting() -> None:
    rng = np.random.default_rng(2)
    fids = {"step-100": 20.0, "step-200": 20.5}
    metrics = [_with_interval(_metric(n, int(n[5:]), f, None)) for n, f in fids.items()]
    metrics[1]["memorization"] = {"inception": {"share_flagged": 0.3}, "flagged": ["inception"]}
    replicates = {n: _replicates(rng, f, 3.0) for n, f in fids.items()}
    rec = consolidate(metrics, _config(), PROVENANCE, replicates)["recommendation"]
    assert rec["overfitting"]["flagged"] and rec["overfitting"]["worse_after"] == []
    assert rec["overfitting"]["memorized_after"][0]["checkpoint"] == "step-200"
    assert "memorization screen flags step-200 (30% near copies)" in rec["overfitting"]["text"]


def _with_baseline(fids: dict[str, float], spread: float) -> dict[str, Any]:
    """consolidate() of a generate run: the base model alone as BASELINE (step 0), then LoRAs."""
    rng = np.random.default_rng(3)
    steps = {BASELINE: 0} | {n: int(n[5:]) for n in fids if n != BASELINE}
    metrics = [_with_interval(_metric(n, steps[n], f, None)) for n, f in fids.items()]
    replicates = {n: _replicates(rng, f, spread) for n, f in fids.items()}
    config = _config(generate={"base_model": "base", "prompts": ["p"]})
    return consolidate(metrics, config, PROVENANCE, replicates)


def test_the_base_model_is_a_reference_never_the_recommendation() -> None:
    """The baseline (step 0) ties with the best LoRA: without the reference rule it would be the
    earliest of the first tier. The recommendation is the LoRA, compared with the base model."""
    result = _with_baseline({BASELINE: 20.5, "step-100": 20.0, "step-200": 40.0}, 2.0)
    assert result["significance"]["tiers"][0] == ["step-100", BASELINE]
    rec = result["recommendation"]
    assert rec["checkpoint"] == "step-100" and rec["method"] == "significance"
    rows = {r["name"]: r for r in result["checkpoints"]}
    assert rows[BASELINE]["rank"] == 2 and rows[BASELINE]["vs_reference"] is None
    assert not rows["step-100"]["vs_reference"]["fid"]["significant"]
    assert rows["step-200"]["vs_reference"]["fid"]["better"] == BASELINE
    said = " ".join(rec["reasons"])
    assert f"Against the base model alone ({BASELINE}): FID no significant difference" in said


def test_a_base_model_better_than_every_lora_is_said_plainly() -> None:
    result = _with_baseline({BASELINE: 10.0, "step-100": 30.0, "step-200": 25.0}, 1.0)
    assert result["significance"]["tiers"][0] == [BASELINE]
    rec = result["recommendation"]
    assert rec["checkpoint"] == "step-200"
    assert "no checkpoint improves on the base model" in rec["reasons"][0]
    assert f"({BASELINE}): FID significantly worse" in " ".join(rec["reasons"])


def test_a_lora_better_than_the_base_model_says_so() -> None:
    result = _with_baseline({BASELINE: 60.0, "step-100": 30.0, "step-200": 20.0}, 1.0)
    rec = result["recommendation"]
    assert rec["checkpoint"] == "step-200"
    assert f"({BASELINE}): FID significantly better (difference -40" in " ".join(rec["reasons"])


def test_without_generate_a_checkpoint_at_step_0_is_a_candidate() -> None:
    rng = np.random.default_rng(4)
    fids = {"step-0": 20.5, "step-100": 20.0}
    metrics = [_with_interval(_metric(n, int(n[5:]), f, None)) for n, f in fids.items()]
    replicates = {n: _replicates(rng, f, 2.0) for n, f in fids.items()}
    result = consolidate(metrics, _config(), PROVENANCE, replicates)
    # step-0 is a candidate like any other: in the first tier, and the alternative to step-100
    assert result["significance"]["tiers"][0] == ["step-100", "step-0"]
    assert result["recommendation"]["alternative"] == "step-0"
    assert all(r["vs_reference"] is None for r in result["checkpoints"])


def test_without_replicates_the_margin_rule_decides() -> None:
    result = consolidate(_metrics_with_clip(), _config(), PROVENANCE, {})
    assert result["significance"]["tiers"] is None
    assert result["recommendation"]["method"] == "margin"


def test_made_by_moves_from_the_rows_into_the_provenance_once() -> None:
    """Hundreds of checkpoints computed alike add one block to the provenance, not one each."""
    metrics = _metrics_with_clip()
    block = {"settings_sha256": "s", "seed": 0, "packages": {"numpy": "2"}}
    for metric in metrics:
        metric["made_by"] = dict(block)
    result = consolidate(metrics, _config(), PROVENANCE)
    assert all("made_by" not in row for row in result["checkpoints"])
    assert all("made_by" in m for m in metrics)  # inputs are not modified
    names = [r["name"] for r in result["checkpoints"]]
    assert result["provenance"] == {
        **PROVENANCE,
        "metrics_made_by": [{**block, "checkpoints": names}],
    }


def test_a_sweep_compares_each_candidate_with_the_previous_checkpoint_at_its_scale(
    tmp_path: Path,
) -> None:
    """Candidates `<checkpoint>@<scale>` (as CheckpointResult names them, with their checkpoint
    and scale): "previous" is the previous checkpoint at the same scale, the baseline for each
    scale's first; the CSV gains lora_checkpoint and lora_scale after epoch."""
    rng = np.random.default_rng(5)
    fids = {
        BASELINE: 50.0,
        "step-100@0.5": 40.0,
        "step-100@1.0": 30.0,
        "step-200@0.5": 35.0,
        "step-200@1.0": 20.0,
    }
    metrics = []
    for name, fid in fids.items():
        metric = _with_interval(_metric(name, 0 if name == BASELINE else int(name[5:8]), fid, None))
        if name != BASELINE:
            checkpoint, scale = name.split("@")
            metric.update(lora_checkpoint=checkpoint, lora_scale=float(scale))
        metrics.append(metric)
    replicates = {n: _replicates(rng, f, 1.0) for n, f in fids.items()}
    config = _config(generate={"base_model": "b", "prompts": ["p"], "lora_scales": [0.5, 1.0]})
    result = consolidate(metrics, config, PROVENANCE, replicates)
    rows = {r["name"]: r for r in result["checkpoints"]}
    previous = {n: (r["vs_previous"] or {}).get("fid") for n, r in rows.items()}
    assert previous[BASELINE] is None
    # each scale's first checkpoint against the baseline; step-200 against step-100 at its scale
    assert previous["step-100@0.5"]["better"] == "step-100@0.5"  # 40 vs the baseline's 50
    assert previous["step-100@1.0"]["better"] == "step-100@1.0"  # 30 vs 50
    assert previous["step-200@0.5"]["better"] == "step-200@0.5"  # 35 vs step-100@0.5's 40
    assert previous["step-200@1.0"]["better"] == "step-200@1.0"  # 20 vs step-100@1.0's 30
    # (the candidate before step-200@0.5 in the table is step-100@1.0, 30: better than 35)
    assert rows["step-200@0.5"]["vs_top"]["fid"]["better"] == "step-200@1.0"
    rec = result["recommendation"]
    assert (rec["checkpoint"], rec["lora_checkpoint"], rec["lora_scale"]) == (
        "step-200@1.0",
        "step-200",
        1.0,
    )
    write_csv(result, tmp_path / "metrics.csv")
    with open(tmp_path / "metrics.csv", newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        lines = {line["name"]: line for line in reader}
        header = reader.fieldnames or []
    assert header[header.index("epoch") + 1 : header.index("epoch") + 3] == [
        "lora_checkpoint",
        "lora_scale",
    ]
    assert (lines["step-100@0.5"]["lora_checkpoint"], lines["step-100@0.5"]["lora_scale"]) == (
        "step-100",
        "0.5",
    )
    assert lines[BASELINE]["lora_scale"] == ""
    plain = consolidate(
        [_with_interval(_metric("step-100", 100, 30.0, None))], _config(), PROVENANCE, {}
    )
    write_csv(plain, tmp_path / "plain.csv")
    assert "lora_scale" not in (tmp_path / "plain.csv").read_text(encoding="utf-8").split("\n")[0]
