"""Gather the per-checkpoint metrics into one ranked result with a recommendation."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from ckpt_eval.analysis.ranking import bands, recommend, score_checkpoints
from ckpt_eval.analysis.sample_size import sample_size_advice
from ckpt_eval.analysis.significance import (
    compare,
    holm,
    reversed_comparison,
    same_pairs,
    tiers,
)
from ckpt_eval.atomic import atomic_write
from ckpt_eval.inputs.steps import BASELINE, parse_position
from ckpt_eval.metrics.registry import Notice, anchor, lookup, quantities
from ckpt_eval.provenance import group_made_by
from ckpt_eval.report.prose import notice_text, overfitting_text, reasons

IDENTITY_COLUMNS = ["rank", "name", "step", "epoch", "n_images"]
# with generate.lora_scales, after `epoch`: which checkpoint and scale a candidate is
SWEEP_COLUMNS = ["lora_checkpoint", "lora_scale"]


def is_sweep(rows: list[dict[str, Any]]) -> bool:
    """Whether the rows are candidates of a LoRA strength sweep (some row has a scale)."""
    return any(r.get("lora_scale") is not None for r in rows)


def csv_columns(sweep: bool = False) -> list[tuple[str, str]]:
    """(column, dotted path in a row): the main table's metrics, score and tier, their
    intervals, the other metrics, the quality bands; all from the registry. A strength sweep
    adds its candidates' checkpoint and scale (and only a sweep: other runs keep their CSV)."""
    main = [q for q in quantities() if q.table == "main"]
    rest = [q for q in quantities() if q.table != "main"]
    identity = list(IDENTITY_COLUMNS)
    if sweep:
        at = identity.index("epoch") + 1
        identity[at:at] = SWEEP_COLUMNS
    columns = [(c, c) for c in identity]
    columns += [c for q in main for c in q.csv_columns()]
    columns += [("score", "score"), ("tier", "tier")]
    columns += [
        (f"{q.key}_ci_{end}", f"{q.interval}.{end}")
        for q in quantities()
        if q.interval
        for end in ("low", "high")
    ]
    columns += [c for q in rest for c in q.csv_columns()]
    columns += [(f"{q.key}_band", f"{q.key}_band") for q in quantities() if q.band]
    return columns


def comparisons(
    rows: list[dict[str, Any]],
    replicates: dict[str, dict[str, np.ndarray]],
    used: dict[str, Any],
    settings: dict[str, Any],
    reference: str | None = None,
) -> tuple[list[list[str]] | None, dict[str, Any]]:
    """Add each row's differences to the top-ranked, the best-FID and the previous checkpoint,
    and to the `reference` (the base model alone) when there is one; every difference comes
    from one Holm-corrected family of all pairs of ranked checkpoints.

    Returns the significance tiers on the ranking's metrics (None when some ranked checkpoint
    has no replicates: too few images, and the margin rule decides) and facts about the family.
    """
    level = settings["bootstrap"]["level"]
    ranked_rows = [r for r in rows if r["rank"] is not None]
    # every compared metric that all ranked checkpoints have, and every metric the ranking used
    shown = [
        q.key
        for q in quantities()
        if (q.compare and ranked_rows and all(q.value(r) is not None for r in ranked_rows))
        or q.key in used["metrics"]
    ]
    ranking_metrics = list(used["metrics"])
    by_name = {r["name"]: r for r in rows}
    # the family: every pair of ranked checkpoints with replicates, on every shown metric,
    # computed up front so that Holm's correction sees all of it
    tested = [
        r["name"] for r in sorted(ranked_rows, key=lambda r: r["rank"]) if r["name"] in replicates
    ]
    cache: dict[tuple[str, str], Any] = {}
    family = []
    for i, a in enumerate(tested):
        for b in tested[i + 1 :]:
            found = compare(
                by_name[a],
                by_name[b],
                replicates,
                shown,
                settings["bootstrap"]["resamples"],
                level,
                settings["seed"],
            )
            cache[(a, b)] = found
            family.extend((a, b, metric, c) for metric, c in (found or {}).items())
    holm(family, 1.0 - level)
    facts = {
        "correction": "holm",
        "comparisons": len(family),
        "checkpoints": len(tested),
        "metrics": shown,
        "paired": sum(1 for (a, b), c in cache.items() if c and same_pairs(by_name[a], by_name[b])),
        "pairs_compared": len(cache),
    }

    def comparison(a: str, b: str) -> dict[str, Any] | None:
        if (a, b) in cache:
            return cache[(a, b)]
        return reversed_comparison(cache.get((b, a)))

    ranked = sorted((r for r in rows if r["rank"] is not None), key=lambda r: r["rank"])
    first = anchor()
    with_fid = [r for r in rows if first.value(r) is not None]
    pick = min if first.better == "lower" else max
    best_fid = pick(with_fid, key=first.value) if with_fid else None
    # the previous checkpoint at the same LoRA scale (a sweep's training trajectory at one
    # strength); the rows without a scale (all of them outside a sweep, the baseline in one)
    # come before every scale's first checkpoint
    last: dict[float | None, dict[str, Any]] = {}
    for row in rows:
        has_fid = first.value(row) is not None
        top = ranked[0] if ranked else None
        row["vs_top"] = comparison(row["name"], top["name"]) if has_fid and row is not top else None
        row["vs_best_fid"] = (
            comparison(row["name"], best_fid["name"]) if has_fid and row is not best_fid else None
        )
        scale = row.get("lora_scale")
        previous = last.get(scale, last.get(None))
        row["vs_previous"] = (
            comparison(row["name"], previous["name"]) if has_fid and previous else None
        )
        row["vs_reference"] = (
            comparison(row["name"], reference)
            if has_fid and reference is not None and row["name"] != reference
            else None
        )
        if has_fid:
            last[scale] = row
    candidates = [r for r in ranked if r["name"] != reference]
    facts["sample_size"] = None
    if len(candidates) >= 2:
        best, runner_up = candidates[:2]
        facts["sample_size"] = sample_size_advice(
            best,
            runner_up,
            comparison(runner_up["name"], best["name"]),
            ranking_metrics,
            level,
            len(family),
        )
    if not ranked or any(r["name"] not in replicates for r in ranked):
        return None, facts

    def on_ranking_metrics(a: str, b: str) -> dict[str, Any] | None:
        full = comparison(a, b)
        return None if full is None else {m: full[m] for m in ranking_metrics}

    return tiers([r["name"] for r in ranked], on_ranking_metrics), facts


def shared_images(manifests: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """For each checkpoint, how many of its files are byte-identical to files of each other one.

    Two checkpoints never render the same bytes by chance: a shared file means a folder was
    copied or mixed up, and both checkpoints' numbers are then partly the same measurement.
    """
    owners: dict[str, set[str]] = {}
    for manifest in manifests:
        for image in manifest["images"]:
            owners.setdefault(image["sha256"], set()).add(manifest["name"])
    shared: dict[str, dict[str, int]] = {m["name"]: {} for m in manifests}
    for manifest in manifests:
        mine = shared[manifest["name"]]
        for image in manifest["images"]:
            for other in sorted(owners[image["sha256"]] - {manifest["name"]}):
                mine[other] = mine.get(other, 0) + 1
    return shared


def consolidate(
    metrics: list[dict[str, Any]],
    config: dict[str, Any],
    provenance: dict[str, Any],
    replicates: dict[str, dict[str, np.ndarray]] | None = None,
    shared: dict[str, dict[str, int]] | None = None,
) -> dict[str, Any]:
    rows = sorted(
        (dict(m) for m in metrics), key=lambda r: (parse_position(r["name"]).sort_key, r["name"])
    )
    # each checkpoint's `made_by` goes into the provenance once per distinct block, not per row
    made_by = group_made_by(rows)
    for row in rows:
        row.pop("made_by", None)
    if made_by:
        provenance = {**provenance, "metrics_made_by": made_by}
    for row in rows:
        row["shared_with"] = (shared or {}).get(row["name"], {})
        if row["shared_with"]:
            notice = Notice("input.shared_files", {"files": dict(row["shared_with"])})
            row["notices"] = [*row.get("notices", []), notice.as_dict()]
            row["warnings"] = [*row.get("warnings", []), notice_text(notice)]
    used = score_checkpoints(rows, config["ranking"]["weights"])
    for row in rows:
        row.update(bands(row, config["report"]))
    # with `generate:`, the base model rendered alone (if among the rows): a reference, not a
    # candidate
    baseline = bool(config.get("generate") and config["generate"].get("baseline"))
    reference = BASELINE if baseline and any(r["name"] == BASELINE for r in rows) else None
    groups, family = comparisons(rows, replicates or {}, used, config, reference)
    level = config["bootstrap"]["level"]
    for number, group in enumerate(groups or [], 1):
        for name in group:
            next(r for r in rows if r["name"] == name)["tier"] = number
    for row in rows:
        row.setdefault("tier", None)
    recommendation = recommend(
        rows,
        config["ranking"]["margin"],
        config["ranking"]["overfit_share"],
        used,
        groups,
        level,
        reference,
        config["ranking"].get("prefer", "best"),
    )
    recommendation["family"] = family["comparisons"]
    recommendation["reasons"] = reasons(recommendation, rows)
    if recommendation["overfitting"] is not None:
        recommendation["overfitting"]["text"] = overfitting_text(recommendation["overfitting"])
    clip_reasons = sorted(
        {r["clip_reason"] for r in rows if not r["clip_available"] and r.get("clip_reason")}
    )
    return {
        "run": config["run"],
        "checkpoints": rows,
        "ranking": {
            "weights_used": used,
            "margin": config["ranking"]["margin"],
            "prefer": config["ranking"].get("prefer", "best"),
            "preset": config["ranking"].get("preset"),
        },
        "significance": {
            "level": level,
            "resamples": config["bootstrap"]["resamples"],
            "tiers": groups,
            "family": family,
        },
        "recommendation": recommendation,
        "clip": {
            "model": config["clip"]["model"],
            "computed": all(r["clip_available"] for r in rows),
            "reasons_not_computed": clip_reasons,
        },
        "provenance": provenance,
    }


def model_provenance(status: dict[str, Any]) -> dict[str, Any]:
    """What a model extractor's status file says about the weights its numbers came from."""
    keys = ("available", "model", "revision", "weights_sha256", "processor", "reason")
    return {key: status.get(key) for key in keys}


def flat_row(row: dict[str, Any], sweep: bool = False) -> dict[str, Any]:
    """One checkpoint as the CSV's columns: nested intervals and analyses as plain numbers."""
    return {column: lookup(row, path) for column, path in csv_columns(sweep)}


def write_csv(result: dict[str, Any], path: str | Path) -> None:
    sweep = is_sweep(result["checkpoints"])
    names = [column for column, _ in csv_columns(sweep)]
    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        for row in (flat_row(r, sweep) for r in result["checkpoints"]):
            writer.writerow({k: ("" if row[k] is None else row[k]) for k in names})


def consolidate_files(
    metric_paths: list[str],
    replicate_paths: list[str],
    manifest_paths: list[str],
    inception_real: str,
    clip_status: str,
    config: dict[str, Any],
    out_json: str,
    out_csv: str,
    workflow_dir: str | None = None,
    model_statuses: list[str] | None = None,
) -> None:
    from ckpt_eval.config import config_hash
    from ckpt_eval.features.cache import load_features, load_meta
    from ckpt_eval.inputs.manifest import read_manifest
    from ckpt_eval.jsonio import read_json, write_json
    from ckpt_eval.provenance import clip_source, provenance
    from ckpt_eval.results_schema import validate_results

    real_meta = load_meta(inception_real)
    status = read_json(clip_status)
    if not status["available"]:
        clip_text = f"not computed: {status['reason']}"
    elif status.get("revision"):
        clip_text = f"{status['model']} (revision {status['revision']})"
    elif status.get("weights_sha256"):
        clip_text = f"{status['model']} (local folder, weights sha256 {status['weights_sha256']})"
    else:
        clip_text = f"{status['model']} (revision unknown)"
    prov = provenance(
        config,
        config_hash(config),
        {
            "device": real_meta["device"],
            "inception_extractor": real_meta["extractor"],
            "inception_weights_sha256": real_meta["weights_sha256"],
            "preprocessing": real_meta["preprocessing"],
            "clip": clip_text,
            **clip_source(status),
            # every model extractor's model as loaded (or why not): model, revision, weights
            "models": {
                Path(path).parent.name: model_provenance(read_json(path))
                for path in model_statuses or []
            },
        },
        workflow_dir,
    )
    metrics = [read_json(p) for p in metric_paths]
    replicates = {}
    for row, path in zip(metrics, replicate_paths, strict=True):
        arrays, _ = load_features(path)
        if arrays:
            replicates[row["name"]] = arrays
    shared = shared_images([read_manifest(p) for p in manifest_paths])
    result = consolidate(metrics, config, prov, replicates, shared)
    validate_results(result)
    write_json(result, out_json)
    write_csv(result, out_csv)
