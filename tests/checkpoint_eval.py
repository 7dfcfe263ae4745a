"""One checkpoint's full evaluation from in-memory features, as `checkpoint_metrics` does it from
files: the tests' way to evaluate arrays directly (what `evaluate_checkpoint` used to be).

`evaluate_features` builds the settings from a validated minimal config, the CheckpointData and
the base result (with the input notices) exactly as `checkpoint_metrics` does, runs every
registered metric and the bootstrap through `evaluate`, and returns the result JSON; so its
output equals `checkpoint_metrics`'s on the same features, less `made_by` (which needs the files).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ckpt_eval.analysis.checkpoint import analysis_settings, base_result, evaluate, input_notices
from ckpt_eval.config import validate_config
from ckpt_eval.metrics.registry import CheckpointData, Notice


def settings(
    kid_subsets: int = 4,
    kid_subset_size: int = 6,
    seed: int = 0,
    resamples: int | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """analysis_settings of a validated minimal config with these KID settings and seed.

    `overrides` are further config sections (`bootstrap`, `prdc`, `memorization`,
    `fid_infinity`, ...), validated like a user's. `resamples` sets the bootstrap's resamples
    after validation, below the schema's minimum of 100: only for tests whose features make a
    replicate expensive (an FID replicate of n images costs an n x n eigendecomposition).
    """
    config = {
        "run": "t",
        "real_images": "r",
        "samples": {"root": "s"},
        "prompts": "p.csv",
        "kid": {"subsets": kid_subsets, "subset_size": kid_subset_size},
        "seed": seed,
        **overrides,
    }
    out = analysis_settings(validate_config(config))
    if resamples is not None:
        out["bootstrap"] = {**out["bootstrap"], "resamples": resamples}
    return out


def real_manifest_for(n: int) -> dict[str, Any]:
    """A real set's manifest of n images whose hashes no sample of the tests' manifests has."""
    return {
        "name": "real",
        "root": "/real",
        "images": [
            {
                "path": f"/real/img_{i:04d}.png",
                "file": f"real/img_{i:04d}.png",
                "sha256": f"real-{i:04d}".encode().hex().ljust(64, "0")[:64],
                "width": 64,
                "height": 64,
                "mode": "RGB",
                "note": None,
            }
            for i in range(n)
        ],
        "skipped": [],
    }


def checkpoint_data(
    manifest: dict[str, Any],
    pairs: dict[str, Any],
    real: np.ndarray,
    fake: np.ndarray,
    clip: Mapping[str, Any],
    run_settings: dict[str, Any],
    real_stats: tuple[np.ndarray, np.ndarray] | None = None,
    n_real: int | None = None,
    real_clip: Mapping[str, np.ndarray] | None = None,
    real_manifest: dict[str, Any] | None = None,
    real_kept: Sequence[int] | None = None,
) -> CheckpointData:
    """What `checkpoint_metrics` hands the metrics, from arrays.

    `real` holds the real rows kept; `real_kept` their indices in `real_manifest` when they are
    a subset of a larger real set (then `real_stats` and `n_real` describe the whole set).
    `real_manifest` defaults to one image per real row (or per `n_real`), sharing no hash with
    the samples; `real_clip` to no real CLIP embeddings (no CLIP memorization screen).
    """
    count = len(real) if n_real is None else int(n_real)
    real_manifest = real_manifest or real_manifest_for(count)
    images = real_manifest["images"]
    kept = images if real_kept is None else [images[int(i)] for i in real_kept]
    return CheckpointData(
        name=manifest["name"],
        real=real,
        real_stats=real_stats,
        n_real=count,
        fake=fake,
        clip=clip,
        real_clip=dict(real_clip or {}),
        per_image=pairs["pairs"],
        sample_images=manifest["images"],
        real_images=kept,
        all_real_images=images,
        settings=run_settings,
    )


def evaluate_features_and_replicates(
    manifest: dict[str, Any],
    pairs: dict[str, Any],
    real: np.ndarray,
    fake: np.ndarray,
    clip: Mapping[str, Any],
    kid_subsets: int = 4,
    kid_subset_size: int = 6,
    seed: int = 0,
    real_stats: tuple[np.ndarray, np.ndarray] | None = None,
    n_real: int | None = None,
    real_clip: Mapping[str, np.ndarray] | None = None,
    real_manifest: dict[str, Any] | None = None,
    real_kept: Sequence[int] | None = None,
    resamples: int | None = None,
    **overrides: Any,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The result JSON of one checkpoint and its bootstrap replicates (see the module doc)."""
    run_settings = settings(kid_subsets, kid_subset_size, seed, resamples, **overrides)
    data = checkpoint_data(
        manifest,
        pairs,
        real,
        fake,
        clip,
        run_settings,
        real_stats,
        n_real,
        real_clip,
        real_manifest,
        real_kept,
    )
    result = base_result(manifest, pairs, data.n_real, clip)
    result.notices = input_notices(manifest, pairs)
    if real_kept is not None:
        params = {"count": data.n_real, "kept": len(real), "seed": run_settings["seed"]}
        result.notices.append(Notice("input.real_subset", params))
    result, replicates = evaluate(data, result)
    return result.to_json(), replicates


def evaluate_features(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """The result JSON of one checkpoint (`evaluate_features_and_replicates` without the
    replicates)."""
    return evaluate_features_and_replicates(*args, **kwargs)[0]


def codes(result: Mapping[str, Any]) -> list[str]:
    """The codes of a result's notices, in order."""
    return [n["code"] for n in result["notices"]]


def notice(result: Mapping[str, Any], code: str) -> dict[str, Any]:
    """The one notice with this code, with its rendered warning as `text`."""
    found = [
        {**n, "text": w}
        for n, w in zip(result["notices"], result["warnings"], strict=True)
        if n["code"] == code
    ]
    assert len(found) == 1, (code, result["notices"])
    return found[0]
