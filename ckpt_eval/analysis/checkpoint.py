"""All metrics of one checkpoint, from its cached features only: every registered metric, its
bootstrap interval, and what was noticed on the way, as one typed result."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ckpt_eval.analysis import bootstrap
from ckpt_eval.analysis.pairing import counts_by_key, key_set, pairing_keys, pairing_kind
from ckpt_eval.features.cache import check_matches, inception_set, load_features
from ckpt_eval.features.extractors import enabled_extractors, fingerprints
from ckpt_eval.features.moments import StreamedSet
from ckpt_eval.inputs.manifest import read_manifest
from ckpt_eval.inputs.prompts import pair_prompts
from ckpt_eval.inputs.steps import parse_position, split_candidate
from ckpt_eval.metrics.fid import statistics
from ckpt_eval.metrics.registry import CheckpointData, Notice, measures, settings_keys
from ckpt_eval.provenance import made_by
from ckpt_eval.seeding import stream
from ckpt_eval.timing import phase

# What the metrics jobs read besides the metrics' own config sections
ANALYSIS_KEYS = ("seed", "bootstrap")


@dataclass
class CheckpointResult:
    """One checkpoint's result, built once by `evaluate`; `to_json` is the documented file.

    `values` holds every metric's fields under the keys the results JSON has always had (`fid`,
    `kid_mean`, `prdc`, ...); `notices` the facts the report turns into warnings.
    """

    name: str
    n_images: int
    n_real: int
    clip_available: bool
    clip_reason: str | None
    per_image: list[dict[str, Any]]
    fallback_count: int = 0
    prompts_without_image: list[str] = field(default_factory=list)
    skipped_images: list[dict[str, Any]] = field(default_factory=list)
    image_sizes: dict[str, int] = field(default_factory=dict)
    conversions: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[list[str]] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    notices: list[Notice] = field(default_factory=list)
    made_by: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        from ckpt_eval.report.prose import notice_text

        position = parse_position(self.name)
        # a strength-sweep candidate (`<checkpoint>@<scale>`) says which checkpoint and scale
        sweep = (
            {"lora_checkpoint": split_candidate(self.name)[0], "lora_scale": position.scale}
            if position.scale is not None
            else {}
        )
        out: dict[str, Any] = {
            "name": self.name,
            "step": position.step,
            "epoch": position.epoch,
            **sweep,
            "n_images": self.n_images,
            "n_real": self.n_real,
            "clip_available": self.clip_available,
            "clip_reason": self.clip_reason,
            **self.values,
            "fallback_count": self.fallback_count,
            "prompts_without_image": self.prompts_without_image,
            "skipped_images": self.skipped_images,
            "image_sizes": self.image_sizes,
            "conversions": self.conversions,
            "per_image": self.per_image,
            "duplicates": self.duplicates,
            "notices": [n.as_dict() for n in self.notices],
            "warnings": [notice_text(n) for n in self.notices],
        }
        if self.made_by is not None:
            out["made_by"] = self.made_by
        return out


def input_notices(manifest: dict[str, Any], pairs: dict[str, Any]) -> list[Notice]:
    """What the organize and prompt stages set aside or filled in for this checkpoint."""
    notices = []
    if pairs["fallback_count"]:
        notices.append(Notice("input.fallback_prompt", {"count": pairs["fallback_count"]}))
    if manifest.get("skipped"):
        notices.append(Notice("input.skipped", {"count": len(manifest["skipped"])}))
    if manifest.get("duplicates"):
        groups = manifest["duplicates"]
        notices.append(
            Notice(
                "input.duplicates",
                {"count": sum(len(g) for g in groups), "groups": len(groups)},
            )
        )
    return notices


def base_result(manifest: dict[str, Any], pairs: dict[str, Any], n_real: int, clip: Any):
    sizes = Counter(f"{i['width']}x{i['height']}" for i in manifest["images"])
    notes = Counter(i["note"] for i in manifest["images"] if i.get("note"))
    return CheckpointResult(
        name=manifest["name"],
        n_images=len(manifest["images"]),
        n_real=int(n_real),
        clip_available=bool(clip["available"]),
        clip_reason=clip.get("reason"),
        per_image=[
            {
                "file": p["file"],
                "prompt": p["prompt"],
                "seed": p.get("seed"),
                "fallback": p["fallback"],
            }
            for p in pairs["pairs"]
        ],
        fallback_count=pairs["fallback_count"],
        prompts_without_image=pairs["prompts_without_image"],
        skipped_images=manifest.get("skipped", []),
        image_sizes=dict(sorted(sizes.items(), key=lambda kv: -kv[1])),
        conversions=[{"note": k, "count": v} for k, v in sorted(notes.items())],
        duplicates=manifest.get("duplicates", []),
    )


def evaluate(
    data: CheckpointData, result: CheckpointResult
) -> tuple[CheckpointResult, dict[str, np.ndarray]]:
    """Every registered metric on `data`, then the bootstrap intervals of those that have
    replicates. Returns the result and the replicates (saved for the comparisons)."""
    metric_notices: list[Notice] = []
    for measure in measures():
        with phase(f"metric {measure.key}"):
            outcome = measure.compute(data)
        result.values.update(outcome.fields)
        for column, values in outcome.per_image.items():
            for row, value in zip(result.per_image, values, strict=True):
                row[column] = value
        metric_notices.extend(outcome.notices)
    keys = pairing_keys(result.per_image)
    result.values["pairing"] = {
        "key_set": key_set(keys),
        "by": pairing_kind(result.per_image),
        "n": len(keys),
    }
    with phase("bootstrap"):
        replicates = intervals(data, result, metric_notices)
    # the input stage's notices first, as a reader meets them; then the metrics', in order
    result.notices = [*result.notices, *metric_notices]
    return result, replicates


def intervals(
    data: CheckpointData, result: CheckpointResult, notices: list[Notice]
) -> dict[str, np.ndarray]:
    """Bootstrap intervals of every quantity with replicates, from one set of resamples shared
    by all metrics (so their replicates are paired), keyed by the checkpoint's name."""
    with_interval = [q for m in measures() if m.replicates for q in m.quantities if q.interval]
    for q in with_interval:
        result.values[q.interval] = None
    if data.n < 2 or result.values.get("fid") is None:
        return {}
    if data.n < bootstrap.MIN_IMAGES:
        notices.append(Notice("bootstrap.too_few", {"n": data.n, "min": bootstrap.MIN_IMAGES}))
        return {}
    boot = data.settings["bootstrap"]
    # resamples of the pairing keys, the same for every checkpoint with the same keys: the
    # comparisons of such checkpoints are then paired (`ckpt_eval.analysis.pairing`)
    keys = pairing_keys(result.per_image)
    drawn = bootstrap.resample_counts(
        data.n, boot["resamples"], stream(data.seed, "bootstrap", key_set(keys))
    )
    counts = counts_by_key(keys, drawn)
    replicates: dict[str, np.ndarray] = {}
    for measure in measures():
        if measure.replicates:
            replicates.update(measure.replicates(data, counts))
    for q in with_interval:
        point = q.value(result.values)
        if q.key in replicates and point is not None:
            interval = bootstrap.shifted_interval(point, replicates[q.key], boot["level"])
            result.values[q.interval] = interval.as_dict()
    return replicates


def analysis_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a validated config that the metrics jobs use (their Snakemake params), with
    the fingerprints their feature files must carry."""
    settings = {key: config[key] for key in (*ANALYSIS_KEYS, *settings_keys())}
    settings["inception"] = fingerprints(config)["inception"]
    # which feature files the job reads: extractor key -> whether it has the real set's
    settings["extractors"] = {e.key: e.real(config) for e in enabled_extractors(config)}
    return settings


def real_statistics(real: StreamedSet) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the whole real set: accumulated during extraction when only a
    subset of the rows was kept, else from the rows (the numbers of an unstreamed run)."""
    if real.mean is not None and real.covariance is not None:
        return real.mean, real.covariance
    return statistics(real.rows)


def kept_images(real: StreamedSet, real_manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The real manifest's images that the kept rows are, in row order."""
    images = real_manifest["images"]
    return images if real.index is None else [images[int(i)] for i in real.index]


def load_extracted(
    inputs: Any,
    settings: dict[str, Any],
    manifest: dict[str, Any],
    real_manifest: dict[str, Any],
) -> tuple[dict, dict, dict, dict]:
    """Every extractor's feature files of this checkpoint and the real set, each checked against
    its manifest (and the Inception fingerprint) before a number is read from it.

    Returns arrays by extractor for the samples and the real set, each extractor's status
    ({available, reason, truncated, ...} from its file's metadata) and the samples' metadata.
    """
    features, real_features, status, metas = {}, {}, {}, {}
    expected = {"inception": settings["inception"]}
    for key, has_real in settings["extractors"].items():
        path = getattr(inputs, key)
        arrays, meta = load_features(path)
        check_matches(meta, manifest, path, expected.get(key))
        features[key], metas[key] = arrays, meta
        status[key] = {
            "available": meta.get("available", True),
            "reason": meta.get("reason"),
            "truncated": meta.get("truncated", []),
        }
        if has_real:
            path = getattr(inputs, f"{key}_real")
            arrays, meta = load_features(path)
            check_matches(meta, real_manifest, path, expected.get(key))
            real_features[key] = arrays
    return features, real_features, status, metas


def checkpoint_metrics(
    inputs: Any,
    settings: dict[str, Any],
    pairing: dict[str, Any],
    workflow_dir: str | None = None,
    processes: int = 1,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Load and check the cached files of one checkpoint, then evaluate it.

    `inputs` maps manifest, real_manifest and each extractor's `<key>` / `<key>_real` feature
    files to paths (the Snakemake rule's input, `feature_paths`); `settings` is
    `analysis_settings(config)`; `pairing` how its images meet their prompts (the keyword
    arguments of `pair_prompts`: the rule's `pairing` parameter); `workflow_dir` the workflow's
    folder, whose commit `made_by` records; `processes` the CPUs the job was given (config
    `metrics_threads`). Returns the result as the documented JSON and the bootstrap replicates.

    Linear algebra runs on one thread whatever the job's CPUs: the numbers are then the bits
    of a one-CPU job, and the CPUs go to processes that split the bootstrap (`ckpt_eval.forked`)
    rather than to BLAS threads, which on these small matrices cost more than they give.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _checkpoint_metrics(inputs, settings, pairing, workflow_dir, processes)


def _checkpoint_metrics(
    inputs: Any,
    settings: dict[str, Any],
    pairing: dict[str, Any],
    workflow_dir: str | None,
    processes: int,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    with phase("read"):
        manifest = read_manifest(inputs.manifest)
        real_manifest = read_manifest(inputs.real_manifest)
        pairs = pair_prompts(manifest, **pairing)
        features, real_features, status, metas = load_extracted(
            inputs, settings, manifest, real_manifest
        )
    real_set = inception_set(real_features["inception"])
    clip = {**status["clip"], **features["clip"]}
    result = base_result(manifest, pairs, real_set.count, clip)
    result.notices = input_notices(manifest, pairs)
    if real_set.index is not None:
        result.notices.append(
            Notice(
                "input.real_subset",
                {"count": real_set.count, "kept": len(real_set.rows), "seed": settings["seed"]},
            )
        )
    data = CheckpointData(
        name=manifest["name"],
        real=real_set.rows,
        # the real set's mean and covariance once for FID, its bootstrap and FID-infinity
        real_stats=real_statistics(real_set) if len(manifest["images"]) >= 2 else None,
        n_real=real_set.count,
        fake=features["inception"]["inception"],
        clip=clip,
        real_clip=real_features.get("clip", {}),
        per_image=pairs["pairs"],
        sample_images=manifest["images"],
        real_images=kept_images(real_set, real_manifest),
        all_real_images=real_manifest["images"],
        settings=settings,
        features=features,
        real_features=real_features,
        status=status,
        processes=processes,
    )
    result, replicates = evaluate(data, result)
    result.made_by = made_by(settings, metas["inception"], metas["clip"], workflow_dir)
    return result.to_json(), replicates
