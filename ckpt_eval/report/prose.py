"""Every sentence of the report, rendered from facts: notices, the recommendation's reasons, the
overfitting finding, the methodology and the insights. The HTML and the Markdown both read
these, and so do the JSON's `warnings` and `reasons`, so the wording cannot drift apart and no
number is restated here: each comes from the facts, the config or the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ckpt_eval.analysis.bootstrap import MIN_IMAGES
from ckpt_eval.analysis.ranking import PRESETS
from ckpt_eval.analysis.sample_size import POWER
from ckpt_eval.features.inception_id import DIM
from ckpt_eval.inputs.steps import scale_text
from ckpt_eval.metrics.registry import (
    Notice,
    anchor,
    lookup,
    measures,
    notice_templates,
    quantities,
    quantity,
)

# notices that are not a metric's own (those are declared with their metric)
NOTICES = {
    "input.fallback_prompt": "{count} image(s) had no prompt and were scored against the "
    "fallback prompt.",
    "input.skipped": "{count} unreadable image(s) were skipped.",
    "input.duplicates": "{count} images are byte-identical copies of one another ({groups} "
    "group(s)); all are counted, as the generator made them.",
    "input.real_subset": "The real set has {count} images: FID uses all of them (mean and "
    "covariance accumulated in float64 while extracting), while KID, its bootstrap interval, "
    "precision/recall/density/coverage and the Inception memorization screen use a random "
    "subset of {kept} (max_real_features), drawn with seed {seed}.",
    "input.shared_files": "Some files are byte-identical to files of other checkpoints: "
    "{listed}. Check that the folders were not copied or mixed up.",
    "bootstrap.too_few": "No confidence intervals: {n} images, the bootstrap needs at least "
    "{min}; this checkpoint cannot be tested against the others.",
}


def _pct(share: float) -> str:
    return f"{100 * share:.0f}%"


def notice_text(notice: Notice | Mapping[str, Any]) -> str:
    """The sentence of one notice (a Notice or its JSON form)."""
    if isinstance(notice, Notice):
        code, params = notice.code, dict(notice.params)
    else:
        params = dict(notice)
        code = params.pop("code")
    templates = {**NOTICES, **notice_templates()}
    if code == "input.shared_files":
        params["listed"] = ", ".join(f"{n} ({c})" for n, c in sorted(params["files"].items()))
    return templates[code].format(**params)


# --- the recommendation --------------------------------------------------------------------------


def ranking_text(weights: Mapping[str, float], dropped: list[str]) -> str:
    """How the ranking scored, e.g. `weighted score 0.60 x FID + 0.40 x CLIP score (...)`;
    `dropped`: weighted metrics that some checkpoint lacked."""
    why = (
        f" ({_names(dropped)} {'was' if len(dropped) == 1 else 'were'} not available for every "
        "checkpoint)"
        if dropped
        else ""
    )
    if len(weights) == 1:
        (only,) = weights
        return f"{quantity(only).label} alone{why}"
    terms = " + ".join(f"{w:.2f} x {quantity(k).label}" for k, w in weights.items())
    return f"weighted score {terms} (each min-max normalised over the checkpoints, 1 = best){why}"


def _with_interval(value: float, ci: Mapping[str, float] | None, digits: int) -> str:
    text = f"{value:.{digits}f}"
    if ci:
        text += f" [{ci['low']:.{digits}f}, {ci['high']:.{digits}f}]"
    return text


def metric_parts(row: Mapping[str, Any]) -> list[str]:
    """A checkpoint's main-table metrics, each `label value [low, high]` (or `± spread`)."""
    parts = []
    for q in quantities():
        value = q.value(row)
        if q.table != "main" or value is None:
            continue
        spread = lookup(row, q.spread)
        if q.ci(row) or spread is None:
            parts.append(f"{q.label} {_with_interval(value, q.ci(row), q.digits)}")
        else:
            parts.append(f"{q.label} {value:.{q.digits}f} ± {spread:.{q.digits}f}")
    return parts


def evidence(row: Mapping[str, Any]) -> list[str]:
    """The chosen checkpoint's numbers, with their intervals, as sentences of the reasons."""
    parts = metric_parts(row)
    level = (anchor().ci(row) or {}).get("level")
    brackets = f" ({_pct(level)} bootstrap intervals in brackets)" if level else ""
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
            f"Memorization screen: {_pct(mem['share_flagged'])} of the samples have a real "
            f"image with Inception cosine similarity >= {mem['threshold']} (closest "
            f"{mem['max_similarity']:.3f})."
        )
    return lines


def recommendation_summary(result: Mapping[str, Any]) -> str:
    """The recommendation in one sentence, e.g. `Recommended: step-200 (rank 1 of 3, score
    0.812).`: the watch command's lines and the trackers' exports end with it."""
    rec = result["recommendation"]
    rows = {r["name"]: r for r in result["checkpoints"]}
    chosen = rows.get(rec.get("checkpoint") or "")
    if chosen is None:
        return "No checkpoint could be ranked."
    ranked = sum(r.get("rank") is not None for r in rows.values())
    return (
        f"Recommended: {chosen['name']} (rank {chosen['rank']} of {ranked}, score "
        f"{chosen['score']:.3f})."
    )


def watch_line(row: Mapping[str, Any], result: Mapping[str, Any]) -> str:
    """One evaluated checkpoint as the watch command prints it: where it is in training, its
    images, its main metrics, and the recommendation over every checkpoint so far."""
    where = next(
        (f"{kind} {row[kind]}, " for kind in ("step", "epoch") if row.get(kind) is not None), ""
    )
    metrics = ", ".join(metric_parts(row)) or "no metrics"
    return f"{row['name']} ({where}{row['n_images']} images): {metrics}. " + (
        recommendation_summary(result)
    )


def _names(keys: list[str]) -> str:
    labels = [quantity(k).label for k in keys]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def reasons(facts: Mapping[str, Any], rows: list[Mapping[str, Any]]) -> list[str]:
    """The recommendation's reasons, from `ckpt_eval.analysis.ranking.recommend`'s facts."""
    rule = facts["rule"]
    if rule == "nothing_ranked":
        return ["No checkpoint could be ranked."]
    by_name = {r["name"]: r for r in rows}
    best, chosen = by_name[facts["best"]], by_name[facts["checkpoint"]]
    how = ranking_text(facts["weights"], facts.get("dropped", []))
    level = facts["level"]
    out = []
    if rule == "reference_best":
        out.append(
            f"The base model alone ({facts['reference']}) ranks first by {how} and every LoRA "
            "checkpoint is significantly worse than it: on these samples no checkpoint improves "
            f"on the base model. Of the checkpoints, {best['name']} ranks highest "
            f"(score {best['score']:.3f})."
        )
    elif rule in ("alone_in_tier", "tier"):
        compared = _names(facts["metrics"])
        holm = (
            f"after Holm's correction over {facts['family']} comparisons"
            if facts.get("family")
            else "uncorrected"
        )
        out.append(f"{best['name']} ranks first by {how}: score {best['score']:.3f}.")
        if rule == "alone_in_tier":
            out.append(
                f"Every other checkpoint differs from it significantly in {compared} "
                f"({_pct(level)} level, {holm})."
            )
        else:
            others = ", ".join(n for n in facts["tier"] if n != best["name"])
            n_images = best["n_images"]
            out.append(
                f"{others} cannot be told apart from it with {n_images} images per checkpoint: "
                f"no difference in {compared} is significant at the {_pct(level)} level "
                f"({holm})."
            )
            out.append(_choice(facts, chosen, best))
    else:
        out.append(f"{best['name']} ranks first by {how}: score {best['score']:.3f}.")
        close = [n for n in facts["within_margin"] if n != best["name"]]
        if close:
            listed = ", ".join(f"{n} ({by_name[n]['score']:.3f})" for n in close)
            out.append(
                f"{listed} score within the margin of {facts['margin']} of it (ranking.margin)."
            )
            out.append(_choice(facts, chosen, best))
        if facts["untested"]:
            out.append(
                f"No significance test: {', '.join(facts['untested'])} had too few images for a "
                f"bootstrap interval (at least {MIN_IMAGES}), so the margin rule "
                f"(ranking.margin = {facts['margin']}) decided."
            )
    if facts.get("lora_scale") is not None:
        out.append(sweep_text(facts))
    out.extend(evidence(chosen))
    if facts.get("reference") is not None:
        out.append(versus_reference_text(facts["reference"], facts.get("versus_reference")))
    overfit = facts.get("overfitting")
    if overfit and overfit["flagged"]:
        out.append(overfitting_text(overfit))
    return out


def _choice(facts: Mapping[str, Any], chosen: Mapping[str, Any], best: Mapping[str, Any]) -> str:
    """Which of the indistinguishable candidates is recommended, by ranking.prefer."""
    alternative = facts.get("alternative")
    if facts["prefer"] == "earliest":
        if chosen is best:
            return f"{chosen['name']} is also the earliest of them (ranking.prefer: earliest)."
        return (
            f"The earliest of them, {chosen['name']}, is recommended (ranking.prefer: earliest): "
            "less training for a result these samples cannot tell from the best; "
            f"{alternative} has the best point estimate."
        )
    if alternative is None:
        return f"{chosen['name']} is also the earliest of them."
    return (
        f"{chosen['name']} is recommended: the best point estimate (ranking.prefer: best). "
        f"{alternative}, the earliest of them, is the cheaper alternative: less training for a "
        "result these samples cannot tell from the best."
    )


def sweep_text(facts: Mapping[str, Any]) -> str:
    """The recommended checkpoint and LoRA scale of a strength sweep, and where the same
    checkpoint's other scales stand."""
    scale = scale_text(facts["lora_scale"])
    text = (
        f"Ship {facts['lora_checkpoint']} at LoRA scale {scale} (candidate "
        f"{facts['checkpoint']} of the strength sweep, generate.lora_scales)."
    )
    others = facts.get("other_scales") or []
    if others:
        listed = ", ".join(
            f"{scale_text(o['lora_scale'])} (rank {o['rank']}"
            + (", also among those that cannot be told from the best)" if o["with_best"] else ")")
            for o in others
        )
        text += f" Its other scales: {listed}."
    return text


def versus_reference_text(reference: str, verdicts: list[Mapping[str, Any]] | None) -> str:
    if not verdicts:
        return (
            f"Against the base model alone ({reference}): not tested (too few images for "
            "bootstrap intervals); compare the two rows of the table."
        )
    words = {
        "same": "no significant difference",
        "better": "significantly better",
        "worse": "significantly worse",
    }
    parts = [
        f"{quantity(v['metric']).label} {words[v['verdict']]} (difference {v['difference']:+.4g})"
        for v in verdicts
    ]
    return f"Against the base model alone ({reference}): " + "; ".join(parts) + "."


def overfitting_text(facts: Mapping[str, Any]) -> str:
    """The overfitting finding of `ckpt_eval.analysis.ranking.overfitting`, '' when none."""
    if not facts.get("flagged"):
        return ""
    q = quantity(facts["metric"])
    worse, memorized = facts["worse_after"], facts["memorized_after"]
    best = facts["best_fid_checkpoint"]
    texts = []
    if worse:
        listed = ", ".join(
            f"{w['checkpoint']} "
            + (
                f"(+{100 * w['increase']:.0f}%)"
                if w["increase"] is not None
                else f"({w[q.key]:.{q.digits}f})"
            )
            for w in worse
        )
        tested = " and significantly" if all(w["significant"] for w in worse) else ""
        texts.append(
            f"Possible overfitting: {q.label} is best at {best} "
            f"({facts['best_fid']:.{q.digits}f}) and worse by more than "
            f"{_pct(facts['share'])}{tested} later: {listed}."
        )
    if memorized:
        listed = ", ".join(f"{m['checkpoint']} ({_pct(m['share'])} near copies)" for m in memorized)
        texts.append(
            f"{'Also' if worse else 'Possible overfitting'}: after {best} the "
            f"memorization screen flags {listed}."
        )
    return " ".join(texts)


# --- significance ---------------------------------------------------------------------------


def significance_notes(result: Mapping[str, Any], generating: bool) -> list[str]:
    """How the comparisons were made (paired or not, corrected how), and the sample-size advice."""
    sig = result.get("significance") or {}
    family = sig.get("family")
    if not family or not family.get("pairs_compared"):
        return []
    rows = {r["name"]: r for r in result["checkpoints"]}
    alpha = 1.0 - sig["level"]
    bys = sorted({(r.get("pairing") or {}).get("by") for r in rows.values()} - {None})
    paired, total = family["paired"], family["pairs_compared"]
    if paired == total:
        how = f"All {total} pairs of checkpoints were compared paired (by {' / '.join(bys)})"
    elif paired:
        how = (
            f"{paired} of {total} pairs of checkpoints were compared paired (by "
            f"{' / '.join(bys)}); the others, whose samples do not share prompts and seeds, "
            "independently"
        )
    else:
        how = (
            f"The {total} pairs of checkpoints were compared independently: their samples do "
            "not share the same prompts and seeds (or positions)"
        )
    notes = [
        f"{how}. {family['comparisons']} comparisons ({_names(family['metrics'])}) are "
        f"corrected together with Holm's method: a difference is significant when its adjusted "
        f"p is below {alpha:.2f}."
    ]
    advice = family.get("sample_size")
    if advice:
        notes.append(sample_size_text(advice, generating))
    return notes


def sample_size_text(advice: Mapping[str, Any], generating: bool) -> str:
    best, second, n = advice["best"], advice["runner_up"], advice["n_images"]
    if advice["separated"]:
        return f"With {n} images per checkpoint {second} is already told apart from {best}."
    if advice["n_needed"] is None:
        return (
            f"{second} and {best} show no difference to extrapolate from: more images per "
            "checkpoint would not be expected to separate them."
        )
    metric = quantity(advice["metric"]).label
    text = (
        f"Sample size: at the observed {metric} difference between {best} and {second}, "
        f"about {advice['n_needed']} images per checkpoint (now {n}) would separate them with "
        f"{_pct(advice['power'])} power at the corrected level {advice['alpha']:.2g} (bootstrap "
        "standard error scaled as 1/sqrt(n); a rough figure for FID, whose bias also changes "
        "with n)."
    )
    if generating and advice["images_per_prompt"]:
        text += (
            f" With {advice['prompts']} prompts that is generate.images_per_prompt: "
            f"{advice['images_per_prompt']}."
        )
    return text


def preset_hint(config: Mapping[str, Any], rows: list[Mapping[str, Any]]) -> str | None:
    """The small-sample preset, suggested when FID's dimensions dwarf the image counts."""
    if (config.get("ranking") or {}).get("preset") or not rows:
        return None
    n = min(r["n_images"] for r in rows)
    if n >= DIM:
        return None
    return (
        f"With {n} images per checkpoint FID is biased and weak at telling checkpoints apart; "
        "`ranking: {preset: small-sample}` ranks on "
        + _names(list(PRESETS["small-sample"]))
        + ", those whose models are set up (see docs/decisions.md)."
    )


# --- the grid ---------------------------------------------------------------------------------


def grid_text(
    rows: int, shown: int, columns: int, limit: int, seed: int, by: list[str], sheets: list[str]
) -> str:
    """How the prompt × checkpoint grid was made: its size, which rows the page shows, where the
    full grid is."""
    if not rows:
        return (
            "No prompt and seed (or position) is shared by every checkpoint, so there is no "
            "grid: the images are listed below."
        )
    keys = " / ".join(by) or "prompt and position"
    text = (
        f"One row per {keys} that every checkpoint has (the pairs of the paired comparisons), "
        f"one column per checkpoint: {rows} rows × {columns} checkpoints."
    )
    if shown < rows:
        text += (
            f" {shown} rows are shown, drawn at random with seed {seed} (report.grid_rows: "
            f"{limit}) and kept in order."
        )
    if sheets:
        span = sheets[0] if len(sheets) == 1 else f"{sheets[0]} to {sheets[-1]}"
        text += f" Every row is in the contact sheets {span}."
    return text


def unmatched_text(count: int) -> str:
    return (
        f"{count} image(s) have no image with the same prompt and seed (or position) in every "
        "other checkpoint, so they are not in the grid:"
    )


# --- methodology and insights --------------------------------------------------------------------


def methodology(config: Mapping[str, Any], result: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(term, definition) pairs: every metric's own, then how they are compared and ranked."""
    boot = config["bootstrap"]
    level = _pct(boot["level"])
    weights = {k: result["ranking"]["weights_used"][k] for k in ranking_metrics(result)}
    items = [entry for m in measures() for entry in m.describe(config)]
    # the metrics this run has (an optional model that is off is not described)
    present = [
        q for q in quantities() if any(q.value(r) is not None for r in result["checkpoints"])
    ]
    with_interval = _names([q.key for q in present if q.interval] or ["fid"])
    paired = _names([q.key for q in present if q.per_image and q.compare] or ["clip"])
    bands = [q for q in quantities() if q.band]
    scales = (config.get("generate") or {}).get("lora_scales")
    if scales:
        items.append(
            (
                "LoRA strength sweep",
                "every checkpoint was rendered at each LoRA scale "
                + ", ".join(scale_text(s) for s in sorted(scales))
                + " with the same prompts and seeds; each checkpoint at one scale is a "
                "candidate, `<checkpoint>@<scale>`, measured, compared (paired: the same "
                "prompts and seeds) and ranked like a checkpoint, and the recommendation names "
                "the checkpoint and its scale. The change against the previous checkpoint and "
                "the overfitting check follow training at one scale.",
            )
        )
    items += [
        (
            "Intervals",
            f"[low, high] is a {level} bootstrap interval: each checkpoint's samples are "
            f"resampled with replacement {boot['resamples']} times (seed {config['seed']}; the "
            f"same resamples for {with_interval}), the real set held fixed as the common "
            "reference. The percentile interval of the replicates is shifted by their mean "
            "minus the estimate, since FID on a resample (about 63% distinct images) is biased "
            "upward; the interval says how far the number could move with another set of N "
            f"samples. Checkpoints with fewer than {MIN_IMAGES} images get none.",
        ),
        (
            "Pairing",
            "a sample's key is its prompt and seed (when the trainer's file names or the "
            "generate stage give the seed) or its prompt and its position among that prompt's "
            "images. Each checkpoint's bootstrap resamples its keys with a seed drawn from the "
            "set of keys, so checkpoints with the same keys draw the same resamples: their "
            "differences are paired (what the prompts and seeds share cancels out). "
            "Checkpoints whose keys differ are compared independently; per-image metrics "
            f"({paired}) are then compared on the images both have.",
        ),
        (
            "Significance",
            f"the difference of two checkpoints in a metric has a {level} bootstrap interval "
            "(of the replicates' differences) and a two-sided p from the bootstrap standard "
            "error. All pairs of ranked checkpoints on every compared metric form one family, "
            "corrected with Holm's step-down method; a difference is significant when its "
            f"adjusted p is below {1 - boot['level']:.2f}, so among truly equal checkpoints "
            f"the chance of any false finding in the family is at most {_pct(1 - boot['level'])}. "
            "A tier is the best remaining checkpoint with every checkpoint that does not differ "
            "from it significantly in any ranking metric. The sample-size advice scales the "
            "standard error of the difference between the top two as 1/sqrt(n) and asks for "
            f"{_pct(POWER)} power at Holm's first threshold.",
        ),
        (
            "Ranking",
            "score = "
            + " + ".join(f"{w:.2f} · {quantity(k).label}" for k, w in weights.items())
            + ", each min-max normalised over the checkpoints (1 = best). Among the first "
            "significance tier (the checkpoints these samples cannot tell from the best) "
            f"ranking.prefer = {config['ranking'].get('prefer', 'best')} picks the one to ship: "
            "best, the best point estimate, with the earliest named as the cheaper alternative; "
            "earliest, the earliest of the tier. When some checkpoint has no interval, the "
            f"candidates are those within {config['ranking']['margin']} of the best score.",
        ),
        (
            "Overfitting",
            f"flagged when a checkpoint after the best-{anchor().label} one has an "
            f"{anchor().label} worse by more than {_pct(config['ranking']['overfit_share'])} and "
            "significantly so (where intervals exist), or when the memorization screen flags a "
            "checkpoint after it that also has significantly more near copies than the best "
            "one (one-sided Fisher exact test; a flag alone can come from chance near copies).",
        ),
        (
            "Quality bands",
            "; ".join(
                f"{q.label} {'below' if q.better == 'lower' else 'above'} "
                f"{' / '.join(str(b) for b in config['report'][q.band])} = Excellent / Very "
                "good / Good / Fair, else Poor"
                for q in bands
            )
            + " (the thresholds of the hand-made report).",
        ),
    ]
    if any(r.get(q.per_prompt) for q in present if q.per_prompt for r in result["checkpoints"]):
        items.append(
            (
                "Per-prompt intervals",
                f"each prompt's mean per-image score with a {level} Student's t interval "
                "(sample std, n - 1 degrees of freedom): a prompt has a handful of images, too "
                "few for a bootstrap interval.",
            )
        )
    return items


def ranking_metrics(result: Mapping[str, Any]) -> list[str]:
    """The metrics the ranking used, from the result (older results lack `metrics`)."""
    used = result["ranking"]["weights_used"]
    if "metrics" in used:
        return list(used["metrics"])
    return ["fid", "clip"] if used.get("clip_used") else ["fid"]


def insights(config: Mapping[str, Any], result: Mapping[str, Any]) -> list[str]:
    """What the numbers say beyond the ranking: overfitting, memorization, small N, tiers."""
    rows = result["checkpoints"]
    rec = result["recommendation"]
    out = []
    overfit = rec.get("overfitting")
    if overfit and overfit["flagged"]:
        out.append(overfitting_text(overfit))
    elif overfit:
        out.append(
            f"No checkpoint after the best-{anchor().label} one "
            f"({overfit['best_fid_checkpoint']}) is significantly worse by more than "
            f"{_pct(config['ranking']['overfit_share'])} in {anchor().label}, and none after it "
            "is flagged by the memorization screen: no sign of overfitting."
        )
    flagged = [r for r in rows if (r.get("memorization") or {}).get("flagged")]
    if flagged:
        out.append(
            "The memorization screen flags "
            + ", ".join(
                f"{r['name']} ({_pct(r['memorization']['inception']['share_flagged'])})"
                for r in flagged
            )
            + ": look at the closest pairs in their sections before shipping them."
        )
    tiers = (result.get("significance") or {}).get("tiers")
    if tiers:
        out.append(
            f"{len(tiers)} significance tier(s): "
            + "; ".join(f"{i}: {', '.join(t)}" for i, t in enumerate(tiers, 1))
            + ". Checkpoints in one tier cannot be told apart with these samples."
        )
    hint = preset_hint(config, rows)
    if hint:
        out.append(hint)
    small = [r["name"] for r in rows if r["n_images"] < DIM]
    if small:
        out.append(
            f"{len(small)} checkpoint(s) have fewer than {DIM} images: their FID is biased "
            "upward (more so the fewer the images), so KID and the intervals are the better "
            "guide."
        )
    return out
