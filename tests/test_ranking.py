"""Bands, min-max scores, ranks, the recommendation and the overfitting flag, by hand."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from ckpt_eval.analysis.ranking import overfitting, quality_band, recommend, score_checkpoints
from ckpt_eval.config import validate_config
from ckpt_eval.metrics.registry import quantity
from ckpt_eval.report.prose import overfitting_text, reasons


def fid_band(value: float | None, bounds: list[float]) -> str | None:
    return quality_band(quantity("fid"), value, bounds)


def clip_band(value: float | None, bounds: list[float]) -> str | None:
    return quality_band(quantity("clip"), value, bounds)


# The original report's bands.
FID_BOUNDS = [10, 20, 50, 100]
CLIP_BOUNDS = [30, 27, 25, 20]


def _row(name: str, fid: float | None, clip: float | None = None, **extra: Any) -> dict[str, Any]:
    step = int(name.split("-")[1]) if name.startswith("step-") else None
    row = {
        "name": name,
        "step": step,
        "epoch": None,
        "n_images": 50,
        "fid": fid,
        "kid_mean": None,
        "kid_std": None,
        "clip_score_mean": clip,
    }
    row.update(extra)
    return row


def _recommend(rows: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    """The recommendation's facts, and the reasons rendered from them as consolidate does."""
    facts = recommend(rows, **kwargs)
    return {**facts, "reasons": reasons(facts, rows)}


def _by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in rows}


# ---------------------------------------------------------------- bands


@pytest.mark.parametrize(
    ("fid", "band"),
    [
        (0.0, "Excellent"),
        (9.99, "Excellent"),
        (10.0, "Very good"),
        (19.99, "Very good"),
        (20.0, "Good"),
        (49.99, "Good"),
        (50.0, "Fair"),
        (99.99, "Fair"),
        (100.0, "Poor"),
        (1000.0, "Poor"),
        (None, None),
    ],
)
def test_fid_band_boundaries(fid: float | None, band: str | None) -> None:
    assert fid_band(fid, FID_BOUNDS) == band


@pytest.mark.parametrize(
    ("score", "band"),
    [
        (35.0, "Excellent"),
        (30.01, "Excellent"),
        (30.0, "Very good"),
        (27.01, "Very good"),
        (27.0, "Good"),
        (25.01, "Good"),
        (25.0, "Fair"),
        (20.01, "Fair"),
        (20.0, "Poor"),
        (0.0, "Poor"),
        (None, None),
    ],
)
def test_clip_band_boundaries(score: float | None, band: str | None) -> None:
    assert clip_band(score, CLIP_BOUNDS) == band


def test_config_defaults_are_the_original_report_bands() -> None:
    config = validate_config(
        {"run": "r", "real_images": "real", "samples": {"root": "s"}, "prompts": "p.csv"}
    )
    assert config["report"]["fid_bands"] == FID_BOUNDS
    assert config["report"]["clip_bands"] == CLIP_BOUNDS


# ---------------------------------------------------------------- scores and ranks


def _three_rows() -> list[dict[str, Any]]:
    # FID min-max (lo 20, hi 40, lower is better): 100 -> 0.5, 200 -> 1.0, 300 -> 0.0
    # CLIP min-max (lo 25, hi 30, higher is better): 100 -> 1.0, 200 -> 0.0, 300 -> 0.4
    return [
        _row("step-300", 40.0, 27.0),
        _row("step-100", 30.0, 30.0),
        _row("step-200", 20.0, 25.0),
    ]


def test_scores_with_clip_hand_computed() -> None:
    rows = _three_rows()
    used = score_checkpoints(rows, {"fid": 0.6, "clip": 0.4})
    assert {k: used[k] for k in ("fid", "clip", "clip_used")} == {
        "fid": pytest.approx(0.6),
        "clip": pytest.approx(0.4),
        "clip_used": True,
    }
    by = _by_name(rows)
    # 0.6 * 0.5 + 0.4 * 1.0 = 0.70; 0.6 * 1.0 + 0.4 * 0.0 = 0.60; 0.6 * 0 + 0.4 * 0.4 = 0.16
    assert by["step-100"]["score"] == pytest.approx(0.70)
    assert by["step-200"]["score"] == pytest.approx(0.60)
    assert by["step-300"]["score"] == pytest.approx(0.16)
    assert [by[n]["rank"] for n in ("step-100", "step-200", "step-300")] == [1, 2, 3]


def test_weights_are_normalised_to_sum_one() -> None:
    rows = _three_rows()
    used = score_checkpoints(rows, {"fid": 3.0, "clip": 1.0})
    assert {k: used[k] for k in ("fid", "clip", "clip_used")} == {
        "fid": pytest.approx(0.75),
        "clip": pytest.approx(0.25),
        "clip_used": True,
    }
    by = _by_name(rows)
    # 0.75 * 0.5 + 0.25 * 1 = 0.625; 0.75 * 1 + 0 = 0.75; 0 + 0.25 * 0.4 = 0.1
    assert by["step-100"]["score"] == pytest.approx(0.625)
    assert by["step-200"]["score"] == pytest.approx(0.75)
    assert by["step-300"]["score"] == pytest.approx(0.10)
    assert [by[n]["rank"] for n in ("step-200", "step-100", "step-300")] == [1, 2, 3]


def test_default_weights_when_none_given() -> None:
    rows = _three_rows()
    used = score_checkpoints(rows, {})
    assert {k: used[k] for k in ("fid", "clip", "clip_used")} == {
        "fid": pytest.approx(0.6),
        "clip": pytest.approx(0.4),
        "clip_used": True,
    }
    assert _by_name(rows)["step-100"]["score"] == pytest.approx(0.70)


def test_clip_dropped_when_any_ranked_row_lacks_it() -> None:
    rows = _three_rows()
    rows[0]["clip_score_mean"] = None  # step-300
    used = score_checkpoints(rows, {"fid": 0.6, "clip": 0.4})
    assert {k: used[k] for k in ("fid", "clip", "clip_used")} == {
        "fid": 1.0,
        "clip": 0.0,
        "clip_used": False,
    }
    by = _by_name(rows)
    # FID alone: 100 -> 0.5, 200 -> 1.0, 300 -> 0.0
    assert by["step-100"]["score"] == pytest.approx(0.5)
    assert by["step-200"]["score"] == pytest.approx(1.0)
    assert by["step-300"]["score"] == pytest.approx(0.0)
    assert [by[n]["rank"] for n in ("step-200", "step-100", "step-300")] == [1, 2, 3]


def test_fid_weight_zero_without_clip_falls_back_to_fid() -> None:
    rows = [_row("step-1", 10.0), _row("step-2", 30.0)]
    used = score_checkpoints(rows, {"fid": 0.0, "clip": 1.0})
    assert {k: used[k] for k in ("fid", "clip", "clip_used")} == {
        "fid": 1.0,
        "clip": 0.0,
        "clip_used": False,
    }
    assert [r["score"] for r in rows] == [pytest.approx(1.0), pytest.approx(0.0)]


def test_rows_without_fid_are_unranked_and_do_not_affect_normalisation() -> None:
    rows = _three_rows() + [
        _row("step-50", None, 40.0),  # would raise the CLIP maximum if it counted
        _row("step-400", None, None),  # lacks CLIP, but is unranked so CLIP stays in use
    ]
    used = score_checkpoints(rows, {"fid": 0.6, "clip": 0.4})
    assert used["clip_used"] is True
    by = _by_name(rows)
    for name in ("step-50", "step-400"):
        assert by[name]["score"] is None
        assert by[name]["rank"] is None
    assert by["step-100"]["score"] == pytest.approx(0.70)
    assert by["step-300"]["score"] == pytest.approx(0.16)
    assert sorted(r["rank"] for r in rows if r["rank"] is not None) == [1, 2, 3]


def test_no_row_with_fid() -> None:
    rows = [_row("step-1", None, 30.0)]
    used = score_checkpoints(rows, {"fid": 0.6, "clip": 0.4})
    assert used["clip_used"] is False
    assert rows[0]["score"] is None and rows[0]["rank"] is None


def test_equal_fids_score_one_and_ties_rank_by_training_position() -> None:
    rows = [_row("step-300", 25.0), _row("step-20", 25.0), _row("step-100", 25.0)]
    score_checkpoints(rows, {})
    assert all(r["score"] == 1.0 for r in rows)
    by = _by_name(rows)
    # numeric step order (20 < 100 < 300), not string order
    assert [by[n]["rank"] for n in ("step-20", "step-100", "step-300")] == [1, 2, 3]


# ---------------------------------------------------------------- recommendation


def _fid_only(fids: dict[str, float]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows = [_row(name, fid) for name, fid in fids.items()]
    used = score_checkpoints(rows, {})
    return rows, used


# FID alone, lo 20, hi 40: scores (40 - fid) / 20
NEAR_TIE = {"step-100": 30.0, "step-150": 20.5, "step-200": 20.0, "step-300": 40.0}
# scores: step-100 0.5, step-150 0.975, step-200 1.0, step-300 0.0


def test_best_wins_when_no_earlier_checkpoint_is_within_margin() -> None:
    rows, used = _fid_only(NEAR_TIE)
    result = _recommend(rows, margin=0.01, overfit_share=0.1, used=used)
    assert result["checkpoint"] == "step-200"
    assert result["step"] == 200
    assert result["rule"] == "margin" and result["within_margin"] == ["step-200"]
    assert result["reasons"][0].startswith("step-200 ranks first by FID alone")
    assert "within the margin" not in " ".join(result["reasons"])


def test_earlier_checkpoint_within_margin_is_preferred_when_asked() -> None:
    rows, used = _fid_only(NEAR_TIE)
    result = _recommend(rows, margin=0.05, overfit_share=0.1, used=used, prefer="earliest")
    assert result["checkpoint"] == "step-150"
    assert result["step"] == 150
    first, margin, choice = result["reasons"][:3]
    assert first.startswith("step-200 ranks first") and "1.000" in first
    assert margin == "step-150 (0.975) score within the margin of 0.05 of it (ranking.margin)."
    assert choice.startswith("The earliest of them, step-150, is recommended")
    # no intervals on these rows: the reasons say that the margin rule decided, and why
    assert result["method"] == "margin"
    assert result["within_margin"] == ["step-200", "step-150"]  # best score first
    assert sorted(result["untested"]) == ["step-100", "step-150", "step-200", "step-300"]
    assert "No significance test" in result["reasons"][3]
    assert "FID 20.50" in result["reasons"][4] and "on 50 images" in result["reasons"][4]


def test_earliest_of_several_within_margin_is_preferred() -> None:
    rows, used = _fid_only(NEAR_TIE)
    # margin 0.6 takes in step-100 (0.5) as well: the earliest one wins
    result = _recommend(rows, margin=0.6, overfit_share=0.1, used=used, prefer="earliest")
    assert result["checkpoint"] == "step-100"
    # by default the best point estimate, whatever is within the margin
    best = _recommend(rows, margin=0.6, overfit_share=0.1, used=used)
    assert best["checkpoint"] == "step-200" and best["alternative"] == "step-100"


def test_earliest_never_picks_a_worse_checkpoint_unless_asked() -> None:
    """Over random point estimates and tiers, the default never recommends a checkpoint whose
    point estimate is worse than the best one's on every ranking metric."""
    rng = np.random.default_rng(5)
    for _ in range(200):
        rows = [
            _row(f"step-{100 * (i + 1)}", float(rng.uniform(10, 50)), float(rng.uniform(20, 30)))
            for i in range(5)
        ]
        used = score_checkpoints(rows, {"fid": 0.6, "clip": 0.4})
        ranked = sorted(rows, key=lambda r: r["rank"])
        tier = [r["name"] for r in ranked[: int(rng.integers(1, 6))]]
        groups = [tier] + [[r["name"]] for r in ranked if r["name"] not in tier]
        facts = recommend(rows, 0.02, 0.1, used, groups, 0.95)
        chosen = _by_name(rows)[facts["checkpoint"]]
        best = ranked[0]
        worse_on_all = (
            chosen["fid"] > best["fid"] and chosen["clip_score_mean"] < (best["clip_score_mean"])
        )
        assert not worse_on_all and facts["checkpoint"] == best["name"]


def test_margin_zero_picks_best() -> None:
    rows, used = _fid_only(NEAR_TIE)
    result = _recommend(rows, margin=0.0, overfit_share=0.1, used=used)
    assert result["checkpoint"] == "step-200"


def test_reasons_name_metrics_of_the_chosen_checkpoint() -> None:
    rows = [
        _row("step-100", 25.0, 28.0, kid_mean=0.0123, kid_std=0.0011),
        _row("step-200", 30.0, 26.0, kid_mean=0.02, kid_std=0.002),
    ]
    used = score_checkpoints(rows, {"fid": 0.6, "clip": 0.4})
    result = _recommend(rows, margin=0.02, overfit_share=0.1, used=used)
    assert result["checkpoint"] == "step-100"
    assert "weighted score 0.60 x FID + 0.40 x CLIP score" in result["reasons"][0]
    assert result["reasons"][2] == (
        "FID 25.00, KID 0.0123 ± 0.0011, CLIP score 28.00 on 50 images."
    )


def test_nothing_ranked() -> None:
    rows = [_row("step-100", None)]
    used = score_checkpoints(rows, {})
    result = _recommend(rows, margin=0.02, overfit_share=0.1, used=used)
    assert result["checkpoint"] is None and result["step"] is None
    assert result["rule"] == "nothing_ranked"
    assert result["reasons"] == ["No checkpoint could be ranked."]


# ---------------------------------------------------------------- overfitting


def test_overfitting_flagged_when_fid_worsens_more_than_share_after_best() -> None:
    # best at step-200 (30); later 32 is +6.7% (not flagged), 34 is +13.3% (flagged)
    rows = [
        _row("step-400", 34.0),
        _row("step-100", 50.0),
        _row("step-300", 32.0),
        _row("step-200", 30.0),
    ]
    result = overfitting(rows, 0.1)
    assert result["flagged"] is True
    assert result["best_fid_checkpoint"] == "step-200"
    assert [w["checkpoint"] for w in result["worse_after"]] == ["step-400"]
    assert result["worse_after"][0]["increase"] == pytest.approx(4.0 / 30.0)
    assert result["best_fid"] == 30.0 and result["worse_after"][0]["fid"] == 34.0
    assert "step-400 (+13%)" in overfitting_text(result)
    assert "step-200 (30.00)" in overfitting_text(result)


def test_overfitting_not_flagged_within_share_or_before_best() -> None:
    # step-100 is much worse, but before the best; later ones are within 10%
    rows = [_row("step-100", 50.0), _row("step-200", 30.0), _row("step-300", 32.9)]
    result = overfitting(rows, 0.1)
    assert result["flagged"] is False
    assert result["best_fid_checkpoint"] == "step-200"
    assert result["worse_after"] == [] and overfitting_text(result) == ""


def test_overfitting_not_flagged_on_improving_trend() -> None:
    rows = [_row("step-100", 50.0), _row("step-200", 40.0), _row("step-300", 35.0)]
    assert overfitting(rows, 0.1)["flagged"] is False


def test_overfitting_needs_two_checkpoints_with_fid() -> None:
    rows = [_row("step-100", 50.0), _row("step-200", None)]
    assert overfitting(rows, 0.1) == {
        "flagged": False,
        "metric": "fid",
        "share": 0.1,
        "best_fid_checkpoint": None,
        "best_fid": None,
        "worse_after": [],
        "memorized_after": [],
    }


def test_recommend_adds_overfitting_reason_only_when_flagged() -> None:
    worsening = {"step-100": 50.0, "step-200": 30.0, "step-300": 40.0}
    rows, used = _fid_only(worsening)
    flagged = _recommend(copy.deepcopy(rows), margin=0.02, overfit_share=0.1, used=used)
    assert flagged["overfitting"]["flagged"] is True
    assert flagged["reasons"][-1].startswith("Possible overfitting")

    steady = {"step-100": 50.0, "step-200": 30.0, "step-300": 31.0}
    rows, used = _fid_only(steady)
    quiet = _recommend(rows, margin=0.02, overfit_share=0.1, used=used)
    assert quiet["overfitting"]["flagged"] is False
    assert not any("overfitting" in r for r in quiet["reasons"])


def test_overfitting_with_best_fid_zero() -> None:
    # frechet_distance clamps to 0.0, e.g. for a checkpoint whose samples equal the real set
    rows = [_row("step-100", 0.0), _row("step-200", 5.0)]
    result = overfitting(rows, 0.1)
    assert result["flagged"] is True
    assert result["best_fid_checkpoint"] == "step-100"


def test_more_near_copies_is_fishers_one_sided_exact_test() -> None:
    from scipy.stats import fisher_exact

    from ckpt_eval.analysis.ranking import more_copies_p

    for later, best in [
        ((5, 32), (1, 32)),
        ((2, 32), (2, 32)),
        ((12, 40), (0, 40)),
        ((0, 8), (3, 8)),
    ]:
        table = [[later[0], later[1] - later[0]], [best[0], best[1] - best[0]]]
        expected = fisher_exact(table, alternative="greater").pvalue
        assert more_copies_p(later, best) == pytest.approx(expected, rel=1e-12)


def test_a_memorization_flag_without_a_rise_is_not_overfitting() -> None:
    """Two checkpoints with 2 near copies of 32 each both pass a 5% flag share; the later one
    has no more than the best: no overfitting. With 9 of 32 it has significantly more."""

    def screen(n_flagged: int) -> dict[str, Any]:
        share = n_flagged / 32
        return {
            "inception": {"share_flagged": share, "n_flagged": n_flagged},
            "flagged": ["inception"],
        }

    rows = [_row("step-100", 30.0, n_images=32), _row("step-200", 31.0, n_images=32)]
    rows[0]["memorization"], rows[1]["memorization"] = screen(2), screen(2)
    assert overfitting(rows, 0.1)["flagged"] is False
    rows[1]["memorization"] = screen(9)
    found = overfitting(rows, 0.1)
    assert found["flagged"] and found["memorized_after"][0]["checkpoint"] == "step-200"
    assert found["memorized_after"][0]["p"] < 0.05


# ---------------------------------------------------------------- LoRA strength sweep


def _candidate(checkpoint: str, scale: float, fid: float) -> dict[str, Any]:
    """A sweep candidate's row as CheckpointResult writes it (name, checkpoint and scale)."""
    row = _row(checkpoint, fid)
    row.update(name=f"{checkpoint}@{scale}", lora_checkpoint=checkpoint, lora_scale=scale)
    return row


def test_a_sweep_recommends_checkpoint_and_scale_and_places_its_other_scales() -> None:
    # FID alone, lo 20, hi 40: scores (40 - fid) / 20 (hand-computed): 0.5, 0.0, 1.0, 0.975
    rows = [
        _row("base-step-000000", 45.0),
        _candidate("step-100", 0.5, 30.0),
        _candidate("step-100", 1.0, 40.0),
        _candidate("step-200", 1.0, 20.5),
        _candidate("step-200", 0.5, 20.0),
    ]
    used = score_checkpoints(rows, {})
    result = _recommend(
        rows, margin=0.05, overfit_share=0.1, used=used, reference="base-step-000000"
    )
    assert result["checkpoint"] == "step-200@0.5"
    assert (result["lora_checkpoint"], result["lora_scale"]) == ("step-200", 0.5)
    # the same checkpoint's other scale: rank 2 after step-200@0.5, within the 0.05 margin
    assert result["other_scales"] == [
        {"candidate": "step-200@1.0", "lora_scale": 1.0, "rank": 2, "with_best": True}
    ]
    assert (
        "Ship step-200 at LoRA scale 0.5 (candidate step-200@0.5 of the strength sweep, "
        "generate.lora_scales). Its other scales: 1.0 (rank 2, also among those that cannot be "
        "told from the best)." in result["reasons"]
    )
    narrow = _recommend(
        rows, margin=0.01, overfit_share=0.1, used=used, reference="base-step-000000"
    )
    assert narrow["other_scales"][0]["with_best"] is False
    assert "Its other scales: 1.0 (rank 2)." in " ".join(narrow["reasons"])
    # a ranked row without a scale (the base model, here not named the reference) is no
    # other scale of the chosen checkpoint
    plain = _recommend(rows, margin=0.05, overfit_share=0.1, used=used)
    assert [o["candidate"] for o in plain["other_scales"]] == ["step-200@1.0"]


def test_plain_checkpoints_get_no_sweep_facts() -> None:
    rows, used = _fid_only(NEAR_TIE)
    result = _recommend(rows, margin=0.01, overfit_share=0.1, used=used)
    assert not {"lora_checkpoint", "lora_scale", "other_scales"} & result.keys()
    assert not any("LoRA scale" in reason for reason in result["reasons"])


def test_sweep_overfitting_follows_training_at_the_best_candidates_scale() -> None:
    # best step-100@1.0 (30); step-200@1.0 is +13% (later training, flagged); step-200@0.5 is
    # far worse but another strength, not more training; step-100@0.5 sorts before the best
    rows = [
        _candidate("step-100", 0.5, 60.0),
        _candidate("step-100", 1.0, 30.0),
        _candidate("step-200", 0.5, 50.0),
        _candidate("step-200", 1.0, 34.0),
    ]
    result = overfitting(rows, 0.1)
    assert result["best_fid_checkpoint"] == "step-100@1.0"
    assert [w["checkpoint"] for w in result["worse_after"]] == ["step-200@1.0"]
    assert result["worse_after"][0]["increase"] == pytest.approx(4.0 / 30.0)
