"""Rank checkpoints, pick one to ship, and say why: the reasons are part of the answer."""

from __future__ import annotations

from typing import Any

from ckpt_eval.steps import parse_position

BAND_NAMES = ["Excellent", "Very good", "Good", "Fair", "Poor"]


def fid_band(fid: float | None, bounds: list[float]) -> str | None:
    """The original report's FID bands: below 10 Excellent, ..., 100 and above Poor."""
    if fid is None:
        return None
    for name, bound in zip(BAND_NAMES, bounds, strict=False):
        if fid < bound:
            return name
    return BAND_NAMES[-1]


def clip_band(score: float | None, bounds: list[float]) -> str | None:
    """The original report's CLIP bands: above 30 Excellent, ..., 20 and below Poor."""
    if score is None:
        return None
    for name, bound in zip(BAND_NAMES, bounds, strict=False):
        if score > bound:
            return name
    return BAND_NAMES[-1]


def _normalise(values: list[float], higher_is_better: bool) -> list[float]:
    """Min-max to [0, 1], 1 = best; all equal gives 1 for all (nothing to tell apart)."""
    lo, hi = min(values), max(values)
    if hi == lo:
        return [1.0] * len(values)
    return [(v - lo) / (hi - lo) if higher_is_better else (hi - v) / (hi - lo) for v in values]


def score_checkpoints(rows: list[dict[str, Any]], weights: dict[str, float]) -> dict[str, Any]:
    """Add `score` and `rank` to every row with an FID; returns which metrics were used.

    CLIP joins the score only when every ranked checkpoint has it, so that no checkpoint is
    compared on a metric the others lack.
    """
    ranked = [r for r in rows if r.get("fid") is not None]
    use_clip = bool(ranked) and all(r.get("clip_score_mean") is not None for r in ranked)
    w_fid = weights.get("fid", 0.6)
    w_clip = weights.get("clip", 0.4) if use_clip else 0.0
    if w_fid + w_clip == 0:
        w_fid = 1.0
    total = w_fid + w_clip
    if ranked:
        fid_part = _normalise([r["fid"] for r in ranked], higher_is_better=False)
        clip_part = (
            _normalise([r["clip_score_mean"] for r in ranked], higher_is_better=True)
            if use_clip
            else [0.0] * len(ranked)
        )
        for row, f, c in zip(ranked, fid_part, clip_part, strict=True):
            row["score"] = (w_fid * f + w_clip * c) / total
    order = sorted(ranked, key=lambda r: (-r["score"], parse_position(r["name"]).sort_key))
    for rank, row in enumerate(order, 1):
        row["rank"] = rank
    for row in rows:
        row.setdefault("score", None)
        row.setdefault("rank", None)
    return {"fid": w_fid / total, "clip": w_clip / total, "clip_used": use_clip}


def recommend(
    rows: list[dict[str, Any]], margin: float, overfit_share: float, used: dict[str, Any]
) -> dict[str, Any]:
    """The best score, unless an earlier checkpoint is within `margin`: then the earliest such."""
    ranked = sorted((r for r in rows if r["rank"] is not None), key=lambda r: r["rank"])
    if not ranked:
        return {
            "checkpoint": None,
            "step": None,
            "reasons": ["No checkpoint could be ranked."],
            "overfitting": None,
        }
    best = ranked[0]
    key = lambda r: parse_position(r["name"]).sort_key  # noqa: E731
    close = [r for r in ranked if best["score"] - r["score"] <= margin]
    chosen = min(close, key=key)
    reasons = []
    metric_text = (
        f"weighted score {used['fid']:.2f} x FID + {used['clip']:.2f} x CLIP score "
        "(each min-max normalised over the checkpoints, 1 = best)"
        if used["clip_used"]
        else "FID alone (CLIP score was not available for every checkpoint)"
    )
    if chosen is best:
        reasons.append(f"{best['name']} ranks first by {metric_text}: score {best['score']:.3f}.")
    else:
        reasons.append(
            f"{best['name']} ranks first by {metric_text} (score {best['score']:.3f}), but the "
            f"earlier {chosen['name']} is within the margin of {margin} "
            f"({chosen['score']:.3f}), so the earlier checkpoint is preferred: less training for "
            "a result that is as good."
        )
    reasons.append(
        f"FID {chosen['fid']:.2f}"
        + (
            f", KID {chosen['kid_mean']:.4f} ± {chosen['kid_std']:.4f}"
            if chosen.get("kid_mean") is not None
            else ""
        )
        + (
            f", CLIP score {chosen['clip_score_mean']:.2f}"
            if chosen.get("clip_score_mean") is not None
            else ""
        )
        + f" on {chosen['n_images']} images."
    )
    overfit = overfitting(rows, overfit_share)
    if overfit["flagged"]:
        reasons.append(overfit["text"])
    return {
        "checkpoint": chosen["name"],
        "step": chosen["step"],
        "epoch": chosen.get("epoch"),
        "reasons": reasons,
        "overfitting": overfit,
    }


def overfitting(rows: list[dict[str, Any]], share: float) -> dict[str, Any]:
    """Flag when a checkpoint after the best-FID one has an FID worse by more than `share`."""
    with_fid = sorted(
        (r for r in rows if r.get("fid") is not None),
        key=lambda r: parse_position(r["name"]).sort_key,
    )
    if len(with_fid) < 2:
        return {"flagged": False, "best_fid_checkpoint": None, "worse_after": [], "text": ""}
    best_index = min(range(len(with_fid)), key=lambda i: with_fid[i]["fid"])
    best = with_fid[best_index]
    worse = [
        {
            "checkpoint": r["name"],
            "fid": r["fid"],
            "increase": r["fid"] / best["fid"] - 1.0 if best["fid"] > 0 else None,
        }
        for r in with_fid[best_index + 1 :]
        if r["fid"] > best["fid"] * (1.0 + share)
    ]
    text = ""
    if worse:
        listed = ", ".join(
            f"{w['checkpoint']} "
            + (
                f"(+{100 * w['increase']:.0f}%)"
                if w["increase"] is not None
                else f"({w['fid']:.2f})"
            )
            for w in worse
        )
        text = (
            f"Possible overfitting: FID is best at {best['name']} ({best['fid']:.2f}) and worse "
            f"by more than {100 * share:.0f}% later: {listed}."
        )
    return {
        "flagged": bool(worse),
        "best_fid_checkpoint": best["name"],
        "worse_after": worse,
        "text": text,
    }
