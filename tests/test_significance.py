"""Pairwise differences of checkpoints, the paired CLIP comparison, and significance tiers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ckpt_eval.analysis import significance as sig
from ckpt_eval.analysis.bootstrap import resample_counts
from ckpt_eval.analysis.pairing import pairing_keys
from ckpt_eval.seeding import stream


def _row(name: str, fid: float, clip: float | None, scores: list[tuple[str, float]]):
    return {
        "name": name,
        "fid": fid,
        "kid_mean": fid / 1000,
        "clip_score_mean": clip,
        "per_image": [{"prompt": p, "clip_score": s} for p, s in scores],
    }


def test_difference_of_independent_replicates() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(10.0, 1.0, 2000), rng.normal(7.0, 1.0, 2000)
    interval, reps = sig.difference(10.0, 7.0, a, b, 0.95)
    assert interval.point == 3.0
    np.testing.assert_array_equal(reps, a - b)
    # the difference of two independent N(., 1) has sd sqrt(2): 95% half-width 1.96 * 1.414
    assert interval.high - interval.low == pytest.approx(2 * 1.96 * np.sqrt(2), rel=0.08)
    assert interval.low > 0  # significant


def test_p_value_is_the_normal_tail_of_the_bootstrap_standard_error() -> None:
    reps = np.array([1.0, 3.0, 2.0, 4.0, 0.0])  # sd (ddof 1) = sqrt(2.5)
    z = 2.0 / np.sqrt(2.5)
    from scipy.stats import norm

    assert sig.p_value(2.0, reps) == pytest.approx(2 * norm.sf(z), rel=1e-12)
    assert sig.p_value(0.0, np.zeros(4)) == 1.0 and sig.p_value(1.0, np.zeros(4)) == 0.0


def test_holm_adjusts_in_step_down_order() -> None:
    """p = 0.01, 0.04, 0.03, 0.2 in a family of 4: Holm's adjusted p are 0.04, 0.09, 0.09, 0.2
    (sorted: 4 x 0.01, 3 x 0.03, max(0.09, 2 x 0.04), max(0.09, 1 x 0.2))."""
    family = [
        ("A", "B", "fid", {"p": 0.01, "difference": -1.0}),
        ("A", "C", "fid", {"p": 0.04, "difference": 2.0}),
        ("B", "C", "fid", {"p": 0.03, "difference": -3.0}),
        ("A", "B", "kid", {"p": 0.2, "difference": 1.0}),
    ]
    sig.holm(family, 0.05)
    assert [c["p_adjusted"] for *_, c in family] == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert [c["significant"] for *_, c in family] == [True, False, False, False]
    assert family[0][3]["better"] == "A" and family[1][3]["better"] is None


def test_reversed_comparison_turns_the_signs() -> None:
    c = {"fid": {"difference": 2.0, "low": 1.0, "high": 3.0, "bias": 0.5, "better": "B"}}
    r = sig.reversed_comparison(c)["fid"]
    assert (r["difference"], r["low"], r["high"], r["bias"]) == (-2.0, -3.0, -1.0, -0.5)
    assert r["better"] == "B" and sig.reversed_comparison(None) is None


def test_paired_clip_difference_cancels_what_the_prompts_share() -> None:
    """Prompt difficulty varies a lot, the checkpoints differ by a small constant: the paired
    interval is narrow and finds it; images are paired by prompt and position, not file order."""
    rng = np.random.default_rng(1)
    prompts = [f"p{i % 20}" for i in range(60)]
    base = {p: rng.normal(25.0, 5.0) for p in set(prompts)}
    a_scores = [(p, base[p] + 0.5 + rng.normal(0, 0.2)) for p in prompts]
    b_scores = [(p, base[p] + rng.normal(0, 0.2)) for p in prompts]
    b_scores.reverse()  # another file order: pairing must not depend on it within a prompt
    b_scores = sorted(b_scores, key=lambda ps: ps[0])
    a, b = _row("A", 1.0, 25.5, a_scores), _row("B", 1.0, 25.0, b_scores)
    interval, _, pairs = sig.paired_difference(
        a["per_image"], b["per_image"], "clip_score", 1000, 0.95, 0, ("A", "B")
    )
    assert pairs == 60
    # direct: the mean of the paired differences, pairs formed by (prompt, k-th occurrence)
    b_by_key = dict(zip(pairing_keys(b["per_image"]), [s for _, s in b_scores], strict=True))
    diffs = [
        s - b_by_key[key]
        for key, (_, s) in zip(pairing_keys(a["per_image"]), a_scores, strict=True)
    ]
    assert interval.point == pytest.approx(np.mean(diffs))
    assert interval.low > 0.3 and interval.high < 0.7
    # the same seed reproduces it; the interval is that of the seeded resamples
    counts = resample_counts(60, 1000, stream(0, "clip-pair", "A", "B"))
    reps = counts @ np.array(diffs) / 60
    bias = reps.mean() - np.mean(diffs)
    assert interval.low == pytest.approx(np.quantile(reps, 0.025) - bias)


def test_paired_clip_needs_ten_pairs() -> None:
    a = _row("A", 1, 20, [(f"p{i}", 20.0) for i in range(12)])
    b = _row("B", 1, 20, [(f"q{i}", 20.0) for i in range(12)])  # no prompt in common
    assert (
        sig.paired_difference(a["per_image"], b["per_image"], "clip_score", 100, 0.9, 0, ("A", "B"))
        is None
    )


def _replicates(rng: np.random.Generator, fid: float, spread: float, n: int = 500):
    return {"fid": rng.normal(fid, spread, n), "kid": rng.normal(fid / 1000, spread / 1000, n)}


def test_compare_and_verdicts() -> None:
    rng = np.random.default_rng(2)
    rows = {
        "A": _row("A", 20.0, None, []),
        "B": _row("B", 20.5, None, []),
        "C": _row("C", 40.0, None, []),
    }
    reps = {name: _replicates(rng, r["fid"], 1.0) for name, r in rows.items()}
    ab = sig.compare(rows["A"], rows["B"], reps, ["fid", "kid"], 500, 0.95, 0)
    assert not ab["fid"]["significant"] and ab["fid"]["better"] is None
    assert sig.indistinguishable(ab)
    ac = sig.compare(rows["A"], rows["C"], reps, ["fid", "kid"], 500, 0.95, 0)
    assert ac["fid"]["significant"] and ac["fid"]["better"] == "A"  # lower FID is better
    assert ac["fid"]["difference"] == -20.0 and ac["fid"]["pairing"] == "independent"
    assert not sig.indistinguishable(ac)
    assert sig.compare(rows["A"], rows["C"], {"A": reps["A"]}, ["fid"], 500, 0.95, 0) is None
    assert not sig.indistinguishable(None)


def test_clip_comparison_is_paired_when_prompts_are_shared() -> None:
    rng = np.random.default_rng(3)
    scores = [(f"p{i}", 25.0 + rng.normal()) for i in range(30)]
    a = _row("A", 20.0, 27.0, [(p, s + 2.0) for p, s in scores])
    b = _row("B", 20.0, 25.0, scores)
    reps: dict[str, Any] = {
        name: {**_replicates(rng, 20.0, 1.0), "clip": rng.normal(25.0, 3.0, 500)} for name in "AB"
    }
    result = sig.compare(a, b, reps, ["clip"], 500, 0.95, 0)["clip"]
    assert result["pairing"] == "paired" and result["significant"] and result["better"] == "A"
    assert result["difference"] == pytest.approx(2.0)
    # unpaired (no shared prompts), the wide independent replicates cannot tell them apart
    c = _row("C", 20.0, 25.0, [(f"q{i}", s) for i, (_, s) in enumerate(scores)])
    reps["C"] = reps["B"]
    result = sig.compare(a, c, reps, ["clip"], 500, 0.95, 0)["clip"]
    assert result["pairing"] == "independent" and not result["significant"]


def test_tiers_group_what_the_leader_cannot_be_told_apart_from() -> None:
    verdicts = {
        ("A", "B"): False,  # A ~ B
        ("A", "C"): True,
        ("A", "D"): True,
        ("C", "D"): False,  # C ~ D
    }

    def comparison(a: str, b: str):
        return {"fid": {"significant": verdicts[(a, b)]}}

    assert sig.tiers(["A", "B", "C", "D"], comparison) == [["A", "B"], ["C", "D"]]
    # a checkpoint without a comparison (no replicates) stands alone
    assert sig.tiers(["A", "B"], lambda a, b: None) == [["A"], ["B"]]
