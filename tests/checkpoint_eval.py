"""One checkpoint's full evaluation from in-memory features, as `checkpoint_metrics` does it from
files: the tests' way to evaluate arrays directly (what `evaluate_checkpoint` used to be).

`evaluate_features` builds the settings from a validated minimal config, the CheckpointData and
the base result (with the input notices) exactly as `checkpoint_metrics` does, runs every
registered metric and the bootstrap through `evaluate`, and returns the result JSON; so its
output equals `checkpoint_metrics`'s on the same features, less `made_by` (which needs the files).

For the metric modules' tests: `evaluate_arrays` evaluates one checkpoint of Inception rows and
any extractor's arrays (manifests, pairs and settings made up), and `through_every_output` takes
the results of several checkpoints through what the workflow's later rules do with them:
consolidation, the CSV, the charts and both renderings of the report.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from ckpt_eval.analysis.checkpoint import (
    CheckpointResult,
    analysis_settings,
    base_result,
    evaluate,
    input_notices,
)
from ckpt_eval.analysis.consolidate import consolidate, write_csv
from ckpt_eval.config import validate_config
from ckpt_eval.metrics.registry import CheckpointData, Notice
from ckpt_eval.report.render import charts, render

NO_CLIP = {"available": False, "reason": "off"}
PROVENANCE = {
    "packages": {"numpy": "2"},
    "python": "3.11",
    "config_sha256": "x",
    "seed": 0,
    "generated_at": "now",
    "device": "cpu",
    "inception_weights_sha256": "w",
    "clip": "not computed",
    "workflow_commit": None,
}


def config(**sections: Any) -> dict[str, Any]:
    """A validated minimal config with these further sections (`kid`, `bootstrap`, ...)."""
    return validate_config(
        {"run": "t", "real_images": "r", "samples": {"root": "s"}, "prompts": "p.csv", **sections}
    )


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
    sections = {"kid": {"subsets": kid_subsets, "subset_size": kid_subset_size}, "seed": seed}
    out = analysis_settings(config(**{**sections, **overrides}))
    if resamples is not None:
        out["bootstrap"] = {**out["bootstrap"], "resamples": resamples}
    return out


def manifest_for(
    name: str, n: int, image: str | Path | None = None, root: str = "/samples"
) -> dict[str, Any]:
    """A manifest of n 64 x 64 PNGs `<name>/img_0000.png`, ..., their hashes unique to `name`.

    Every path is `image` when given (a file the report can make thumbnails of), else the file
    below `root` (which does not exist).
    """
    files = [f"{name}/img_{i:04d}.png" for i in range(n)]
    return {
        "name": name,
        "root": root,
        "images": [
            {
                "path": str(image or f"{root}/{file}"),
                "file": file,
                "sha256": f"{name}-{i:04d}".encode().hex().ljust(64, "0")[:64],
                "width": 64,
                "height": 64,
                "mode": "RGB",
                "note": None,
            }
            for i, file in enumerate(files)
        ],
        "skipped": [],
    }


def real_manifest_for(n: int, image: str | Path | None = None) -> dict[str, Any]:
    """A real set's manifest of n images whose hashes no sample of the tests' manifests has."""
    return manifest_for("real", n, image)


def pairs_for(manifest: dict[str, Any], prompts: Sequence[str] | None = None) -> dict[str, Any]:
    """The prompt stage's pairs: image i's prompt is `prompts[i]` ("a photo" for every image
    when not given); no seeds, no fallbacks."""
    images = manifest["images"]
    prompts = ["a photo"] * len(images) if prompts is None else prompts
    return {
        "name": manifest["name"],
        "pairs": [
            {"file": image["file"], "prompt": prompt, "fallback": False}
            for image, prompt in zip(images, prompts, strict=True)
        ],
        "fallback_count": 0,
        "prompts_without_image": [],
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
    *,
    features: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    real_features: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    status: Mapping[str, Mapping[str, Any]] | None = None,
) -> CheckpointData:
    """What `checkpoint_metrics` hands the metrics, from arrays.

    `real` holds the real rows kept; `real_kept` their indices in `real_manifest` when they are
    a subset of a larger real set (then `real_stats` and `n_real` describe the whole set).
    `real_manifest` defaults to one image per real row (or per `n_real`), sharing no hash with
    the samples; `real_clip` to no real CLIP embeddings (no CLIP memorization screen).
    `features` and `real_features` are the model extractors' arrays by extractor key (the
    Inception rows are added under `inception`, as `checkpoint_metrics` has them), `status`
    their models' ({available, reason, truncated}); by default none (every extractor off).
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
        features={"inception": {"inception": fake}, **(features or {})},
        real_features={"inception": {"inception": real}, **(real_features or {})},
        status=dict(status or {}),
    )


def result_for(
    manifest: dict[str, Any], pairs: dict[str, Any], data: CheckpointData, subset: bool = False
) -> CheckpointResult:
    """The base result with the input stage's notices, as `checkpoint_metrics` starts it;
    `subset`: the real rows are a seeded subset of the real set (said in a notice)."""
    result = base_result(manifest, pairs, data.n_real, data.clip)
    result.notices = input_notices(manifest, pairs)
    if subset:
        params = {"count": data.n_real, "kept": len(data.real), "seed": data.seed}
        result.notices.append(Notice("input.real_subset", params))
    return result


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
    result, replicates = evaluate(data, result_for(manifest, pairs, data, real_kept is not None))
    return result.to_json(), replicates


def evaluate_features(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """The result JSON of one checkpoint (`evaluate_features_and_replicates` without the
    replicates)."""
    return evaluate_features_and_replicates(*args, **kwargs)[0]


def checkpoint_from_arrays(
    name: str,
    fake: np.ndarray,
    real: np.ndarray,
    run_settings: dict[str, Any],
    *,
    image: str | Path | None = None,
    prompts: Sequence[str] | None = None,
    features: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    real_features: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    status: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[CheckpointData, CheckpointResult]:
    """The CheckpointData and base result of checkpoint `name`: Inception rows `fake` against
    `real`, no CLIP, the extractors' `features`, `real_features` and `status` (see
    `checkpoint_data`). Its manifests are `manifest_for`'s (every path `image` when given),
    its pairs `pairs_for(prompts)`'s."""
    manifest = manifest_for(name, len(fake), image)
    pairs = pairs_for(manifest, prompts)
    data = checkpoint_data(
        manifest,
        pairs,
        real,
        fake,
        NO_CLIP,
        run_settings,
        real_manifest=real_manifest_for(len(real), image),
        features=features,
        real_features=real_features,
        status=status,
    )
    return data, result_for(manifest, pairs, data)


def evaluate_arrays(*args: Any, **kwargs: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The result JSON and bootstrap replicates of `checkpoint_from_arrays(...)`."""
    result, replicates = evaluate(*checkpoint_from_arrays(*args, **kwargs))
    return result.to_json(), replicates


def evaluate_small(
    run_settings: dict[str, Any], seed: int = 0, **extractors: Any
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """`evaluate_arrays` of checkpoint `step-1`: 12 random Inception rows against 20 (drawn
    from `seed`), with the extractors' `features`, `real_features` and `status`: for what an
    extractor's arrays or model status do to its metrics."""
    rng = np.random.default_rng(seed)
    real, fake = rng.normal(size=(20, 6)), rng.normal(size=(12, 6))
    return evaluate_arrays("step-1", fake, real, run_settings, **extractors)


def write_png(folder: Path) -> Path:
    """A small PNG in `folder`, for `image`: the report makes thumbnails of the closest pairs."""
    png = Path(folder) / "img.png"
    Image.new("RGB", (8, 8), (90, 120, 150)).save(png)
    return png


class Outputs(NamedTuple):
    """What the workflow makes of the checkpoints' results (see `through_every_output`)."""

    result: dict[str, Any]  # consolidate's
    table: list[dict[str, str]]  # the CSV's rows, read back
    pngs: dict[str, bytes]  # the charts, by metric key
    markdown: str
    html: str

    @property
    def by_name(self) -> dict[str, dict[str, Any]]:
        """The consolidated checkpoints by name."""
        return {row["name"]: row for row in self.result["checkpoints"]}


def through_every_output(
    rows: list[dict[str, Any]],
    replicates: dict[str, dict[str, np.ndarray]],
    run_config: dict[str, Any],
    folder: Path,
) -> Outputs:
    """Consolidate the checkpoints' result JSONs and replicates (by name) under `run_config`,
    write the CSV to `folder` and read it back, draw the charts, render both reports."""
    result = consolidate(rows, run_config, PROVENANCE, replicates)
    path = Path(folder) / "metrics.csv"
    write_csv(result, path)
    with open(path, encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    pngs = charts(result)
    markdown, html = render(result, run_config, {}, pngs, {})
    return Outputs(result, table, pngs, markdown, html)


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
