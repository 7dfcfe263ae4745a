"""Rank checkpoints, pick one to ship, and say why: the reasons are part of the answer."""

from __future__ import annotations

from typing import Any

from ckpt_eval.inputs.steps import parse_position

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


def _metric_text(used: dict[str, Any]) -> str:
    if used["clip_used"]:
        return (
            f"weighted score {used['fid']:.2f} x FID + {used['clip']:.2f} x CLIP score "
            "(each min-max normalised over the checkpoints, 1 = best)"
        )
    return "FID alone (CLIP score was not available for every checkpoint)"


def _with_interval(value: float, ci: dict[str, float] | None, digits: int) -> str:
    text = f"{value:.{digits}f}"
    if ci:
        text += f" [{ci['low']:.{digits}f}, {ci['high']:.{digits}f}]"
    return text


def evidence(row: dict[str, Any]) -> list[str]:
    """The chosen checkpoint's numbers, with their intervals, as sentences of the reasons."""
    parts = [f"FID {_with_interval(row['fid'], row.get('fid_ci'), 2)}"]
    if row.get("kid_ci"):
        parts.append(f"KID {_with_interval(row['kid_mean'], row['kid_ci'], 4)}")
    elif row.get("kid_mean") is not None:
        parts.append(f"KID {row['kid_mean']:.4f} ± {row['kid_std']:.4f}")
    if row.get("clip_score_mean") is not None:
        parts.append(f"CLIP score {_with_interval(row['clip_score_mean'], row.get('clip_ci'), 2)}")
    level = (row.get("fid_ci") or {}).get("level")
    brackets = f" ({100 * level:.0f}% bootstrap intervals in brackets)" if level else ""
    lines = [", ".join(parts) + f" on {row['n_images']} images{brackets}."]
    if row.get("prdc"):
        p = row["prdc"]
        lines.append(
            f"Precision {p['precision']:.2f} (fidelity), recall {p['recall']:.2f} (diversity), "
            f"density {p['density']:.2f}, coverage {p['coverage']:.2f} (k = {p['k']})."
        )
    mem = (row.get("memorization") or {}).get("inception")
    if mem:
        lines.append(
            f"Memorization screen: {100 * mem['share_flagged']:.0f}% of the samples have a real "
            f"image with Inception cosine similarity >= {mem['threshold']} (closest "
            f"{mem['max_similarity']:.3f})."
        )
    return lines


def recommend(
    rows: list[dict[str, Any]],
    margin: float,
    overfit_share: float,
    used: dict[str, Any],
    groups: list[list[str]] | None = None,
    level: float | None = None,
    reference: str | None = None,
) -> dict[str, Any]:
    """The earliest checkpoint that cannot be told apart from the best one.

    With `groups` (the significance tiers, best first, at `level`) that is the earliest of the
    first tier. Without them (some ranked checkpoint has no interval) the margin rule stands in:
    the earliest checkpoint whose score is within `margin` of the best.

    `reference` (the base model rendered alone, with `generate:`) is ranked and tiered like the
    others, so the table shows where it stands, but it is not a checkpoint one can ship: the
    recommendation is among the others, and the reasons say how it compares with the reference.
    """
    everything = sorted((r for r in rows if r["rank"] is not None), key=lambda r: r["rank"])
    ranked = [r for r in everything if r["name"] != reference]
    if not ranked:
        return {
            "checkpoint": None,
            "step": None,
            "reasons": ["No checkpoint could be ranked."],
            "overfitting": None,
            "method": None,
        }
    best = ranked[0]
    key = lambda r: parse_position(r["name"]).sort_key  # noqa: E731
    by_name = {r["name"]: r for r in ranked}
    metric_text = _metric_text(used)
    reasons = []
    if groups and reference in groups[0] and groups[0] != [reference]:
        groups = [[n for n in groups[0] if n != reference], *groups[1:]]
    if groups and groups[0] == [reference]:
        chosen = best
        reasons.append(
            f"The base model alone ({reference}) ranks first by {metric_text} and every LoRA "
            "checkpoint is significantly worse than it: on these samples no checkpoint improves "
            f"on the base model. Of the checkpoints, {best['name']} ranks highest "
            f"(score {best['score']:.3f})."
        )
        method = "significance"
    elif groups:
        tier = [by_name[name] for name in groups[0]]
        chosen = min(tier, key=key)
        compared = "FID and CLIP score" if used["clip_used"] else "FID"
        reasons.append(f"{best['name']} ranks first by {metric_text}: score {best['score']:.3f}.")
        if len(tier) == 1:
            reasons.append(
                f"Every other checkpoint differs from it significantly in {compared} "
                f"({100 * level:.0f}% bootstrap interval of the difference excludes 0)."
            )
        else:
            others = ", ".join(r["name"] for r in tier if r is not best)
            reasons.append(
                f"{others} cannot be told apart from it in {compared} at {100 * level:.0f}% "
                "confidence (every bootstrap interval of the difference contains 0)"
                + (
                    f"; the earliest of them, {chosen['name']}, is recommended: less training "
                    "for a result that is as good as these samples can show."
                    if chosen is not best
                    else "; it is also the earliest of them."
                )
            )
        method = "significance"
    else:
        close = [r for r in ranked if best["score"] - r["score"] <= margin]
        chosen = min(close, key=key)
        if chosen is best:
            reasons.append(
                f"{best['name']} ranks first by {metric_text}: score {best['score']:.3f}."
            )
        else:
            reasons.append(
                f"{best['name']} ranks first by {metric_text} (score {best['score']:.3f}), but "
                f"the earlier {chosen['name']} is within the margin of {margin} "
                f"({chosen['score']:.3f}), so the earlier checkpoint is preferred: less training "
                "for a result that is as good."
            )
        missing = [r["name"] for r in ranked if not r.get("fid_ci")]
        if missing:
            reasons.append(
                f"No significance test: {', '.join(missing)} had too few images for a bootstrap "
                f"interval, so the margin rule (ranking.margin = {margin}) decided."
            )
        method = "margin"
    reasons.extend(evidence(chosen))
    if reference is not None:
        reasons.append(versus_reference(chosen, reference))
    overfit = overfitting(rows, overfit_share)
    if overfit["flagged"]:
        reasons.append(overfit["text"])
    return {
        "checkpoint": chosen["name"],
        "step": chosen["step"],
        "epoch": chosen.get("epoch"),
        "reasons": reasons,
        "overfitting": overfit,
        "method": method,
    }


def versus_reference(row: dict[str, Any], reference: str) -> str:
    """How the chosen checkpoint compares with the base model alone (`vs_reference`)."""
    comparison = row.get("vs_reference")
    if not comparison:
        return (
            f"Against the base model alone ({reference}): not tested (too few images for "
            "bootstrap intervals); compare the two rows of the table."
        )
    names = {"fid": "FID", "kid": "KID", "clip": "CLIP score"}
    parts = []
    for metric, c in comparison.items():
        if not c["significant"]:
            verdict = "no significant difference"
        elif c["better"] == row["name"]:
            verdict = "significantly better"
        else:
            verdict = "significantly worse"
        parts.append(f"{names.get(metric, metric)} {verdict} (difference {c['difference']:+.4g})")
    return f"Against the base model alone ({reference}): " + "; ".join(parts) + "."


def _fid_significantly_worse(row: dict[str, Any], best: dict[str, Any]) -> bool | None:
    """From the row's comparison with the best-FID checkpoint, if it was made."""
    comparison = (row.get("vs_best_fid") or {}).get("fid")
    if comparison is None:
        return None
    return bool(comparison["significant"] and comparison["better"] == best["name"])


def overfitting(rows: list[dict[str, Any]], share: float) -> dict[str, Any]:
    """Flag FID worsening after the best-FID checkpoint, and memorization after it.

    FID: worse by more than `share`, and significantly worse where the rows carry the
    comparison (`vs_best_fid`). Memorization: a later checkpoint whose screen flagged it.
    """
    with_fid = sorted(
        (r for r in rows if r.get("fid") is not None),
        key=lambda r: parse_position(r["name"]).sort_key,
    )
    if len(with_fid) < 2:
        return {
            "flagged": False,
            "best_fid_checkpoint": None,
            "worse_after": [],
            "memorized_after": [],
            "text": "",
        }
    best_index = min(range(len(with_fid)), key=lambda i: with_fid[i]["fid"])
    best = with_fid[best_index]
    later = with_fid[best_index + 1 :]
    worse = [
        {
            "checkpoint": r["name"],
            "fid": r["fid"],
            "increase": r["fid"] / best["fid"] - 1.0 if best["fid"] > 0 else None,
            "significant": _fid_significantly_worse(r, best),
        }
        for r in later
        if r["fid"] > best["fid"] * (1.0 + share) and _fid_significantly_worse(r, best) is not False
    ]
    memorized = [
        {
            "checkpoint": r["name"],
            "share": r["memorization"]["inception"]["share_flagged"],
            "spaces": r["memorization"]["flagged"],
        }
        for r in later
        if (r.get("memorization") or {}).get("flagged")
    ]
    texts = []
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
        tested = " and significantly" if all(w["significant"] for w in worse) else ""
        texts.append(
            f"Possible overfitting: FID is best at {best['name']} ({best['fid']:.2f}) and worse "
            f"by more than {100 * share:.0f}%{tested} later: {listed}."
        )
    if memorized:
        listed = ", ".join(
            f"{m['checkpoint']} ({100 * m['share']:.0f}% near copies)" for m in memorized
        )
        texts.append(
            f"{'Also' if worse else 'Possible overfitting'}: after {best['name']} the "
            f"memorization screen flags {listed}."
        )
    return {
        "flagged": bool(worse or memorized),
        "best_fid_checkpoint": best["name"],
        "worse_after": worse,
        "memorized_after": memorized,
        "text": " ".join(texts),
    }
