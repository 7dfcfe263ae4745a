"""Gather the per-checkpoint metrics into one ranked result with a recommendation."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from ckpt_eval.ranking import clip_band, fid_band, recommend, score_checkpoints
from ckpt_eval.steps import parse_position

CSV_COLUMNS = [
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
    "fid_band",
    "clip_band",
]


def consolidate(
    metrics: list[dict[str, Any]], config: dict[str, Any], provenance: dict[str, Any]
) -> dict[str, Any]:
    rows = sorted(
        (dict(m) for m in metrics), key=lambda r: (parse_position(r["name"]).sort_key, r["name"])
    )
    used = score_checkpoints(rows, config["ranking"]["weights"])
    for row in rows:
        row["fid_band"] = fid_band(row.get("fid"), config["report"]["fid_bands"])
        row["clip_band"] = clip_band(row.get("clip_score_mean"), config["report"]["clip_bands"])
    recommendation = recommend(
        rows, config["ranking"]["margin"], config["ranking"]["overfit_share"], used
    )
    clip_reasons = sorted(
        {r["clip_reason"] for r in rows if not r["clip_available"] and r.get("clip_reason")}
    )
    return {
        "run": config["run"],
        "checkpoints": rows,
        "ranking": {"weights_used": used, "margin": config["ranking"]["margin"]},
        "recommendation": recommendation,
        "clip": {
            "model": config["clip"]["model"],
            "computed": all(r["clip_available"] for r in rows),
            "reasons_not_computed": clip_reasons,
        },
        "provenance": provenance,
    }


def write_csv(result: dict[str, Any], path: str | Path) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in result["checkpoints"]:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_COLUMNS})


def consolidate_files(
    metric_paths: list[str],
    inception_real: str,
    clip_status: str,
    config: dict[str, Any],
    out_json: str,
    out_csv: str,
) -> None:
    from ckpt_eval.config import config_hash
    from ckpt_eval.featurefile import load_features
    from ckpt_eval.manifest import read_json, write_json
    from ckpt_eval.provenance import provenance

    _, real_meta = load_features(inception_real)
    status = read_json(clip_status)
    clip_text = (
        f"{status['model']} (revision {status.get('revision') or 'local/unknown'})"
        if status["available"]
        else f"not computed: {status['reason']}"
    )
    prov = provenance(
        config,
        config_hash(config),
        {
            "device": real_meta["device"],
            "inception_extractor": real_meta["extractor"],
            "inception_weights_sha256": real_meta["weights_sha256"],
            "preprocessing": real_meta["preprocessing"],
            "clip": clip_text,
        },
    )
    result = consolidate([read_json(p) for p in metric_paths], config, prov)
    write_json(result, out_json)
    write_csv(result, out_csv)
