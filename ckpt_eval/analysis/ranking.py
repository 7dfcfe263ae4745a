"""Rank checkpoints and pick one to ship. Every function here decides and returns facts (names,
codes, numbers); `ckpt_eval.report.prose` turns them into the reasons people read."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ckpt_eval.inputs.steps import parse_position
from ckpt_eval.metrics.registry import Quantity, anchor, quantities, quantity

BAND_NAMES = ["Excellent", "Very good", "Good", "Fair", "Poor"]

# ranking.preset: weights for a use case; a metric whose model is not set up drops out (its
# weight with it), as any weighted metric that some checkpoint lacks. small-sample: the unbiased
# kernel distances (KID, KD-DINOv2; FD-DINOv2 is rank-deficient below ~1000 images as FID is
# below 2048), CMMD, and the per-image scores against each image's own prompt
PRESETS = {
    "small-sample": {"kid": 0.3, "cmmd": 0.2, "kd_dinov2": 0.2, "clip": 0.15, "pickscore": 0.15},
}


def preset_weights(name: str) -> dict[str, float]:
    """The preset's weights over the metrics the registry has."""
    known = {q.key for q in quantities() if q.rankable}
    return {key: w for key, w in PRESETS[name].items() if key in known}


def quality_band(q: Quantity, value: float | None, bounds: Sequence[float]) -> str | None:
    """The original report's bands: for FID below 10 Excellent, ..., 100 and above Poor; for
    CLIP score above 30 Excellent, ..., 20 and below Poor (the bounds come from the config)."""
    if value is None:
        return None
    for name, bound in zip(BAND_NAMES, bounds, strict=False):
        if q.better_value(value, bound):
            return name
    return BAND_NAMES[-1]


def bands(row: dict[str, Any], report: Mapping[str, Any]) -> dict[str, str | None]:
    """`<key>_band` of every quantity that has bands, as the row's columns."""
    return {
        f"{q.key}_band": quality_band(q, q.value(row), report[q.band])
        for q in quantities()
        if q.band
    }


def _normalise(values: list[float], higher_is_better: bool) -> list[float]:
    """Min-max to [0, 1], 1 = best; all equal gives 1 for all (nothing to tell apart)."""
    lo, hi = min(values), max(values)
    if hi == lo:
        return [1.0] * len(values)
    return [(v - lo) / (hi - lo) if higher_is_better else (hi - v) / (hi - lo) for v in values]


def default_weights() -> dict[str, float]:
    """ranking.weights as the schema's defaults give them (FID 0.6, CLIP score 0.4)."""
    from ckpt_eval.config import load_schema

    weights = load_schema()["properties"]["ranking"]["properties"]["weights"]["default"]
    return {key: float(w) for key, w in weights.items()}


def score_checkpoints(rows: list[dict[str, Any]], weights: dict[str, float]) -> dict[str, Any]:
    """Add `score` and `rank` to every row with the anchor metric (FID); returns the weights
    used, normalised to sum 1, and which metrics took part (`metrics`).

    A weighted metric joins the score only when every ranked checkpoint has it, so that no
    checkpoint is compared on a metric the others lack; when no weighted metric is left, the
    anchor alone ranks.
    """
    first = anchor()
    ranked = [r for r in rows if first.value(r) is not None]
    weights = dict(weights or default_weights())
    for key in weights:
        if not quantity(key).rankable:
            raise ValueError(f"ranking.weights: {key} is not a metric that can be ranked on")
    used = {
        key: float(w)
        for key, w in weights.items()
        if w > 0 and ranked and all(quantity(key).value(r) is not None for r in ranked)
    }
    if not used:
        used = {first.key: 1.0}
    total = sum(used.values())
    if ranked:
        parts = {
            key: _normalise(
                [quantity(key).value(r) for r in ranked], quantity(key).better == "higher"
            )
            for key in used
        }
        for i, row in enumerate(ranked):
            row["score"] = sum(w * parts[key][i] for key, w in used.items()) / total
    order = sorted(ranked, key=lambda r: (-r["score"], parse_position(r["name"]).sort_key))
    for rank, row in enumerate(order, 1):
        row["rank"] = rank
    for row in rows:
        row.setdefault("score", None)
        row.setdefault("rank", None)
    out: dict[str, Any] = {key: used.get(key, 0.0) / total for key in {first.key, *weights}}
    out = {
        key: out[key] for key in sorted(out, key=lambda k: [q.key for q in quantities()].index(k))
    }
    out["clip_used"] = "clip" in used
    out["metrics"] = list(used)
    out["dropped"] = [k for k, w in weights.items() if w > 0 and k not in used]
    return out


def recommend(
    rows: list[dict[str, Any]],
    margin: float,
    overfit_share: float,
    used: dict[str, Any],
    groups: list[list[str]] | None = None,
    level: float | None = None,
    reference: str | None = None,
    prefer: str = "best",
) -> dict[str, Any]:
    """The checkpoint to ship among those that cannot be told apart from the best one, as facts.

    With `groups` (the significance tiers, best first, at `level`) the candidates are the first
    tier. Without them (some ranked checkpoint has no interval) the margin rule stands in: the
    candidates are the checkpoints whose score is within `margin` of the best. `prefer` picks
    among the candidates: `best`, the best point estimate (the earliest candidate is named as
    the cheaper `alternative`); `earliest`, the earliest candidate (less training for a result
    the samples cannot tell from the best). Only `earliest` ever picks a checkpoint whose point
    estimate is worse than the best one's.

    `reference` (the base model rendered alone, with `generate:`) is ranked and tiered like the
    others, so the table shows where it stands, but it is not a checkpoint one can ship: the
    recommendation is among the others, and the facts say how it compares with the reference.

    `rule` says which case decided: `nothing_ranked`, `reference_best` (every checkpoint is
    significantly worse than the base model), `alone_in_tier`, `tier` (others in the first tier;
    the earliest is chosen), `margin`.
    """
    everything = sorted((r for r in rows if r["rank"] is not None), key=lambda r: r["rank"])
    ranked = [r for r in everything if r["name"] != reference]
    facts: dict[str, Any] = {
        "checkpoint": None,
        "step": None,
        "epoch": None,
        "method": None,
        "rule": "nothing_ranked",
        "metrics": list(used.get("metrics", [])),
        "weights": {k: used[k] for k in used.get("metrics", [])},
        "dropped": list(used.get("dropped", [])),
        "level": level,
        "margin": margin,
        "reference": reference,
        "overfitting": None,
    }
    if not ranked:
        return facts
    best = ranked[0]
    key = lambda r: parse_position(r["name"]).sort_key  # noqa: E731
    by_name = {r["name"]: r for r in ranked}
    facts.update(best=best["name"], best_score=best["score"])
    if groups and reference in groups[0] and groups[0] != [reference]:
        groups = [[n for n in groups[0] if n != reference], *groups[1:]]
    if groups and groups[0] == [reference]:
        chosen = best
        facts.update(method="significance", rule="reference_best", tier=[])
    elif groups:
        tier = [by_name[name] for name in groups[0]]
        chosen = _preferred(tier, best, prefer, key)
        facts.update(
            method="significance",
            rule="alone_in_tier" if len(tier) == 1 else "tier",
            tier=[r["name"] for r in tier],
        )
    else:
        close = [r for r in ranked if best["score"] - r["score"] <= margin]
        chosen = _preferred(close, best, prefer, key)
        facts.update(
            method="margin",
            rule="margin",
            within_margin=[r["name"] for r in close],
            chosen_score=chosen["score"],
            untested=[r["name"] for r in ranked if not r.get("fid_ci")],
        )
    listed = facts.get("tier") or facts.get("within_margin") or []
    candidates = [by_name[n] for n in listed]
    earliest = min(candidates, key=key) if candidates else chosen
    other = earliest if chosen is best else best
    facts.update(
        checkpoint=chosen["name"],
        step=chosen["step"],
        epoch=chosen.get("epoch"),
        prefer=prefer,
        alternative=other["name"] if other is not chosen else None,
    )
    if chosen.get("lora_scale") is not None:
        facts.update(sweep_facts(chosen, ranked, listed))
    if reference is not None:
        facts["versus_reference"] = versus_reference(chosen)
    facts["overfitting"] = overfitting(rows, overfit_share, 1.0 - (level or 0.95))
    return facts


def sweep_facts(
    chosen: dict[str, Any], ranked: list[dict[str, Any]], candidates: list[str]
) -> dict[str, Any]:
    """For a LoRA strength sweep: the chosen candidate's checkpoint and scale, and where its
    checkpoint's other scales stand (rank, and whether they are among the candidates that
    cannot be told from the best: the first tier, or within the margin)."""
    checkpoint = chosen["lora_checkpoint"]
    return {
        "lora_checkpoint": checkpoint,
        "lora_scale": chosen["lora_scale"],
        "other_scales": [
            {
                "candidate": r["name"],
                "lora_scale": r["lora_scale"],
                "rank": r["rank"],
                "with_best": r["name"] in candidates,
            }
            for r in sorted(
                (r for r in ranked if r.get("lora_checkpoint") == checkpoint and r is not chosen),
                key=lambda r: r["lora_scale"],
            )
        ],
    }


def _preferred(candidates: list[dict], best: dict, prefer: str, key: Any) -> dict[str, Any]:
    if prefer == "earliest":
        return min(candidates, key=key)
    if prefer != "best":
        raise ValueError(f"ranking.prefer is best or earliest, got {prefer!r}")
    return best


def versus_reference(row: dict[str, Any]) -> list[dict[str, Any]] | None:
    """How the chosen checkpoint compares with the base model alone (`vs_reference`): per
    metric, `verdict` better / worse / same; None when it was not tested."""
    comparison = row.get("vs_reference")
    if not comparison:
        return None
    out = []
    for metric, c in comparison.items():
        if not c["significant"]:
            verdict = "same"
        elif c["better"] == row["name"]:
            verdict = "better"
        else:
            verdict = "worse"
        out.append({"metric": metric, "verdict": verdict, "difference": c["difference"]})
    return out


def relative_change(value: float, best: float, better: str) -> float | None:
    """How much worse `value` is than `best`, as a share of `best`; None when best is 0."""
    if not best:
        return None
    return value / best - 1.0 if better == "lower" else 1.0 - value / best


def _significantly_worse(row: dict[str, Any], best: dict[str, Any], key: str) -> bool | None:
    """From the row's comparison with the best checkpoint on `key`, if it was made."""
    comparison = (row.get("vs_best_fid") or {}).get(key)
    if comparison is None:
        return None
    return bool(comparison["significant"] and comparison["better"] == best["name"])


def near_copies(row: dict[str, Any]) -> tuple[int, int]:
    """(near copies in Inception space, samples) of a checkpoint; (0, n) without a screen."""
    screen = (row.get("memorization") or {}).get("inception") or {}
    n = int(row.get("n_images") or 0)
    count = screen.get("n_flagged")
    if count is None:
        count = round(float(screen.get("share_flagged") or 0.0) * n)
    return int(count), n


def more_copies_p(later: tuple[int, int], best: tuple[int, int]) -> float:
    """One-sided Fisher exact p that the later checkpoint has more near copies than the best.

    A screen flag alone is no sign of a change: photos of one scene make near copies by chance
    (a few percent of crops do), and two checkpoints of equal quality would be "memorized after
    the best" as often as either passes the flag share. The count has to rise.
    """
    (a, n1), (b, n2) = later, best
    total, copies = n1 + n2, a + b
    if n1 == 0 or n2 == 0:
        return 1.0
    denominator = math.comb(total, n1)
    tail = sum(
        math.comb(copies, k) * math.comb(total - copies, n1 - k)
        for k in range(a, min(copies, n1) + 1)
    )
    return tail / denominator


def overfitting(rows: list[dict[str, Any]], share: float, alpha: float = 0.05) -> dict[str, Any]:
    """Flag the overfitting metric (FID) worsening after its best checkpoint, and memorization
    after it.

    Worse by more than `share`, and significantly worse where the rows carry the comparison
    (`vs_best_fid`). Memorization: a later checkpoint whose screen flagged it and that has
    significantly more near copies than the best checkpoint (`more_copies_p` below `alpha`,
    Bonferroni over the later checkpoints). In a LoRA strength sweep "later" means later
    checkpoints at the best candidate's scale: another strength is not more training.
    """
    q = next(q for q in quantities() if q.overfitting)
    with_value = sorted(
        (r for r in rows if q.value(r) is not None),
        key=lambda r: parse_position(r["name"]).sort_key,
    )
    facts: dict[str, Any] = {
        "flagged": False,
        "metric": q.key,
        "share": share,
        "best_fid_checkpoint": None,
        "best_fid": None,
        "worse_after": [],
        "memorized_after": [],
    }
    if len(with_value) < 2:
        return facts
    pick = min if q.better == "lower" else max
    best_index = pick(range(len(with_value)), key=lambda i: q.value(with_value[i]))
    best = with_value[best_index]
    best_value = q.value(best)
    later = with_value[best_index + 1 :]
    if best.get("lora_scale") is not None:  # a sweep: later in training at the same strength
        later = [r for r in later if r.get("lora_scale") == best["lora_scale"]]

    def worse_by(value: float) -> float:
        return value - best_value if q.better == "lower" else best_value - value

    worse = [
        {
            "checkpoint": r["name"],
            q.key: q.value(r),
            "increase": relative_change(q.value(r), best_value, q.better),
            "significant": _significantly_worse(r, best, q.key),
        }
        for r in later
        if worse_by(q.value(r)) > abs(best_value) * share
        and _significantly_worse(r, best, q.key) is not False
    ]
    before = near_copies(best)
    memorized = []
    for r in later:
        if not (r.get("memorization") or {}).get("flagged"):
            continue
        p = more_copies_p(near_copies(r), before)
        if p < alpha / max(len(later), 1):
            memorized.append(
                {
                    "checkpoint": r["name"],
                    "share": r["memorization"]["inception"]["share_flagged"],
                    "spaces": r["memorization"]["flagged"],
                    "p": p,
                }
            )
    facts.update(
        flagged=bool(worse or memorized),
        best_fid_checkpoint=best["name"],
        best_fid=best_value,
        worse_after=worse,
        memorized_after=memorized,
    )
    return facts
