"""The report's methodology states the run's own settings, and FID-infinity only when it is on."""

from __future__ import annotations

from typing import Any

from ckpt_eval.config import validate_config
from ckpt_eval.report.prose import insights, methodology


def _config(**overrides: Any) -> dict[str, Any]:
    base = {"run": "r", "real_images": "x", "samples": {"root": "s"}, "prompts": "p.csv"}
    return validate_config({**base, **overrides})


RESULT = {
    "ranking": {"weights_used": {"fid": 0.6, "clip": 0.4, "clip_used": True}},
    "checkpoints": [
        {"name": "step-1", "n_images": 40, "memorization": {"flagged": []}},
        {
            "name": "step-2",
            "n_images": 4000,
            "memorization": {"flagged": ["inception"], "inception": {"share_flagged": 0.25}},
        },
    ],
    "recommendation": {"overfitting": None},
    "significance": {"tiers": [["step-2"], ["step-1"]]},
}


def test_methodology_uses_the_config() -> None:
    config = _config(bootstrap={"resamples": 321, "level": 0.9}, prdc={"k": 7}, seed=5)
    text = dict(methodology(config, RESULT))
    assert "resampled with replacement 321 times (seed 5" in text["Intervals"]
    assert "90% bootstrap interval" in text["Intervals"]
    assert "adjusted p is below 0.10" in text["Significance"]
    assert "Holm's step-down method" in text["Significance"]
    assert "ranking.prefer = best" in text["Ranking"]
    assert "k = 7" in text["Precision, recall, density, coverage"]
    assert "<= the radius" in text["Precision, recall, density, coverage"]
    assert "score = 0.60 · FID + 0.40 · CLIP score" in text["Ranking"]
    assert "FID∞" not in text
    on = dict(methodology(_config(fid_infinity={"enabled": True, "points": 9}), RESULT))
    assert "9 sizes" in on["FID∞"]


def test_insights_name_memorization_tiers_and_small_n() -> None:
    lines = insights(_config(), RESULT)
    assert any("memorization screen flags step-2 (25%)" in line for line in lines)
    assert any(line.startswith("2 significance tier(s): 1: step-2; 2: step-1") for line in lines)
    assert any(line.startswith("1 checkpoint(s) have fewer than 2048 images") for line in lines)
