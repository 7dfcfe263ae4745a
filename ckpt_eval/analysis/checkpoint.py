"""All metrics of one checkpoint, from its cached features only."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from ckpt_eval.analysis import bootstrap
from ckpt_eval.features.cache import check_matches, inception_set, load_features
from ckpt_eval.features.inception_id import DIM
from ckpt_eval.features.inception_id import fingerprint as inception_fingerprint
from ckpt_eval.features.moments import StreamedSet
from ckpt_eval.inputs.steps import parse_position
from ckpt_eval.jsonio import read_json
from ckpt_eval.metrics.clip_score import clip_scores, per_prompt, summarise
from ckpt_eval.metrics.fid import frechet_distance_to_rows, statistics
from ckpt_eval.metrics.fid_infinity import fid_infinity
from ckpt_eval.metrics.kid import kid
from ckpt_eval.metrics.memorization import memorization
from ckpt_eval.metrics.prdc import prdc
from ckpt_eval.provenance import made_by


def small_n_warning(n: int) -> str | None:
    if n >= DIM:
        return None
    return (
        f"FID from {n} images: the sample covariance has rank at most {n - 1}, far below the "
        f"{DIM} feature dimensions, so FID is biased upward and only comparable between "
        "checkpoints with the same number of images; KID (unbiased) is the better guide here."
    )


def evaluate_checkpoint(
    manifest: dict[str, Any],
    pairs: dict[str, Any],
    real_features: np.ndarray,
    fake_features: np.ndarray,
    clip: dict[str, Any],
    kid_subsets: int,
    kid_subset_size: int,
    seed: int,
    real_stats: tuple[np.ndarray, np.ndarray] | None = None,
    n_real: int | None = None,
) -> dict[str, Any]:
    """`clip` holds `available`, `reason`, and when available `image`/`text` embeddings.

    `real_stats` (mean, covariance) and `n_real` describe the whole real set when
    `real_features` holds only a subset of its rows (see `ckpt_eval.features.moments`); None =
    the rows are the whole set.
    """
    name = manifest["name"]
    position = parse_position(name)
    n = len(manifest["images"])
    warnings: list[str] = []
    result: dict[str, Any] = {
        "name": name,
        "step": position.step,
        "epoch": position.epoch,
        "n_images": n,
        "n_real": int(len(real_features) if n_real is None else n_real),
    }
    if n >= 2:
        if real_stats is None:
            real_stats = statistics(real_features)
        result["fid"] = frechet_distance_to_rows(*real_stats, fake_features)
        k = kid(real_features, fake_features, kid_subsets, kid_subset_size, seed)
        result.update(
            kid_mean=k.mean, kid_std=k.std, kid_subsets=k.subsets, kid_subset_size=k.subset_size
        )
        if k.capped:
            warnings.append(
                f"KID subsets hold {k.subset_size} images, fewer than kid.subset_size="
                f"{kid_subset_size}, because the smaller set has only that many."
            )
        if note := small_n_warning(n):
            warnings.append(note)
    else:
        result.update(fid=None, kid_mean=None, kid_std=None, kid_subsets=0, kid_subset_size=0)
        warnings.append(
            "FID and KID need at least 2 images; this checkpoint has 1 and is unranked."
        )

    prompts = [p["prompt"] for p in pairs["pairs"]]
    per_image = [
        {"file": p["file"], "prompt": p["prompt"], "fallback": p["fallback"], "clip_score": None}
        for p in pairs["pairs"]
    ]
    result["clip_available"] = bool(clip["available"])
    result["clip_reason"] = clip.get("reason")
    if clip["available"]:
        scores = clip_scores(clip["image"], clip["text"])
        stats = summarise(scores)
        result.update(clip_score_mean=stats["mean"], clip_score_std=stats["std"])
        result["clip_per_prompt"] = per_prompt(scores, prompts)
        for row, score in zip(per_image, scores, strict=True):
            row["clip_score"] = float(score)
        result["truncated_prompts"] = clip.get("truncated", [])
    else:
        result.update(
            clip_score_mean=None, clip_score_std=None, clip_per_prompt=[], truncated_prompts=[]
        )
    result["fallback_count"] = pairs["fallback_count"]
    if pairs["fallback_count"]:
        warnings.append(
            f"{pairs['fallback_count']} image(s) had no prompt and were scored against the "
            "fallback prompt."
        )
    result["prompts_without_image"] = pairs["prompts_without_image"]
    result["skipped_images"] = manifest.get("skipped", [])
    if result["skipped_images"]:
        warnings.append(f"{len(result['skipped_images'])} unreadable image(s) were skipped.")
    sizes = Counter(f"{i['width']}x{i['height']}" for i in manifest["images"])
    result["image_sizes"] = dict(sorted(sizes.items(), key=lambda kv: -kv[1]))
    notes = Counter(i["note"] for i in manifest["images"] if i.get("note"))
    result["conversions"] = [{"note": k, "count": v} for k, v in sorted(notes.items())]
    result["per_image"] = per_image
    result["duplicates"] = manifest.get("duplicates", [])
    if result["duplicates"]:
        count = sum(len(group) for group in result["duplicates"])
        warnings.append(
            f"{count} images are byte-identical copies of one another "
            f"({len(result['duplicates'])} group(s)); all are counted, as the generator made them."
        )
    result["warnings"] = warnings
    return result


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


def real_subset_note(real: StreamedSet, seed: int) -> str:
    return (
        f"The real set has {real.count} images: FID uses all of them (mean and covariance "
        "accumulated in float64 while extracting), while KID, its bootstrap interval, "
        "precision/recall/density/coverage and the Inception memorization screen use a random "
        f"subset of {len(real.rows)} (max_real_features), drawn with seed {seed}."
    )


def exact_real_copies(manifest: dict[str, Any], real_manifest: dict[str, Any]) -> list[str]:
    """Samples whose file is byte-identical to a real image: memorization at its plainest, or a
    real image put among the samples by mistake. Either way the report must say so."""
    real = {image["sha256"] for image in real_manifest["images"]}
    return [image["file"] for image in manifest["images"] if image["sha256"] in real]


ANALYSIS_KEYS = ("kid", "seed", "bootstrap", "prdc", "memorization", "fid_infinity")
# what checkpoint_metrics adds to evaluate_checkpoint's result
ANALYSIS_FIELDS = (
    "fid_ci",
    "kid_ci",
    "clip_ci",
    "prdc",
    "fid_infinity",
    "memorization",
    "exact_real_copies",
)


def analysis_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a validated config that the metrics jobs use (their Snakemake params), with
    the Inception fingerprint every feature file must carry."""
    settings = {key: config[key] for key in ANALYSIS_KEYS}
    settings["inception"] = inception_fingerprint(config["fid"]["inception_weights"])
    return settings


def uncertainty(
    result: dict[str, Any],
    real: np.ndarray,
    fake: np.ndarray,
    clip_per_image: np.ndarray | None,
    settings: dict[str, Any],
    real_stats: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Add bootstrap intervals to `result`; return the replicates for the comparisons."""
    boot = settings["bootstrap"]
    if len(fake) < bootstrap.MIN_IMAGES:
        result.update(fid_ci=None, kid_ci=None, clip_ci=None)
        result["warnings"].append(
            f"No confidence intervals: {len(fake)} images, the bootstrap needs at least "
            f"{bootstrap.MIN_IMAGES}; this checkpoint cannot be tested against the others."
        )
        return {}
    reps = bootstrap.checkpoint_replicates(
        result["name"],
        real,
        fake,
        clip_per_image,
        boot["resamples"],
        settings["seed"],
        real_stats=real_stats,
    )
    points = {"fid": result["fid"], "kid": result["kid_mean"], "clip": result["clip_score_mean"]}
    for metric, values in reps.items():
        interval = bootstrap.shifted_interval(points[metric], values, boot["level"])
        result[f"{metric}_ci"] = interval.as_dict()
    result.setdefault("clip_ci", None)
    return reps


def fidelity_diversity(
    result: dict[str, Any], real: np.ndarray, fake: np.ndarray, settings: dict[str, Any]
) -> None:
    k = settings["prdc"]["k"]
    if min(len(fake), len(real)) <= k:
        result["prdc"] = None
        result["warnings"].append(
            f"Precision/recall/density/coverage need more than k={k} images in both sets."
        )
        return
    r = prdc(real, fake, k, max_real=settings["prdc"]["max_real"], seed=settings["seed"])
    result["prdc"] = {
        "precision": r.precision,
        "recall": r.recall,
        "density": r.density,
        "coverage": r.coverage,
        "k": r.k,
        "n_real": r.n_real,
        "n_real_total": r.n_real_total,
        "real_subsample_seed": r.real_subsample_seed,
    }


def nearest_real_images(
    fake: np.ndarray,
    real: np.ndarray,
    threshold: float,
    pairs: int,
    sample_images: list[dict[str, Any]],
    real_images: list[dict[str, Any]],
) -> dict[str, Any]:
    """The memorization screen in one feature space, with the closest pairs as files."""
    m = memorization(fake, real, threshold, pairs)
    return {
        "threshold": m.threshold,
        "n_flagged": m.n_flagged,
        "share_flagged": m.share_flagged,
        "max_similarity": float(m.nearest_similarity.max()),
        "median_similarity": float(np.median(m.nearest_similarity)),
        "pairs": [
            {
                "sample": sample_images[p.sample]["file"],
                "sample_path": sample_images[p.sample]["path"],
                "real": real_images[p.real]["file"],
                "real_path": real_images[p.real]["path"],
                "similarity": p.similarity,
            }
            for p in m.top_pairs
        ],
    }


def memorization_screen(
    result: dict[str, Any],
    spaces: dict[str, tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]],
    manifest: dict[str, Any],
    settings: dict[str, Any],
) -> None:
    """Nearest real image per sample in each feature space given as (fake, real, the real
    manifest's images of the `real` rows)."""
    cfg = settings["memorization"]
    thresholds = {"inception": cfg["threshold"], "clip": cfg["clip_threshold"]}
    found = {
        space: nearest_real_images(
            fake,
            real,
            thresholds[space],
            cfg["pairs"],
            manifest["images"],
            real_images,
        )
        for space, (fake, real, real_images) in spaces.items()
    }
    flagged = [s for s, f in found.items() if f["share_flagged"] > cfg["flag_share"]]
    result["memorization"] = {**found, "flag_share": cfg["flag_share"], "flagged": flagged}
    for space in flagged:
        f = found[space]
        result["warnings"].append(
            f"Possible memorization: {100 * f['share_flagged']:.0f}% of the samples have a real "
            f"image with {space} cosine similarity >= {f['threshold']} (more than "
            f"{100 * cfg['flag_share']:.0f}%); see the closest pairs."
        )


def extrapolated_fid(
    result: dict[str, Any],
    real_stats: tuple[np.ndarray, np.ndarray],
    fake: np.ndarray,
    settings: dict[str, Any],
) -> None:
    cfg = settings["fid_infinity"]
    result["fid_infinity"] = None
    if not cfg["enabled"]:
        return
    if len(fake) < cfg["min_images"]:
        result["warnings"].append(
            f"FID-infinity not computed: {len(fake)} images, fid_infinity.min_images is "
            f"{cfg['min_images']}."
        )
        return
    r = fid_infinity(
        *real_stats,
        fake,
        cfg["points"],
        cfg["min_fraction"],
        settings["seed"],
        result["name"],
    )
    result["fid_infinity"] = {"value": r.value, "slope": r.slope, "sizes": r.sizes, "fids": r.fids}


def checkpoint_metrics(inputs: Any, settings: dict[str, Any]) -> tuple[dict[str, Any], dict]:
    """Load and check the cached files of one checkpoint, then evaluate it.

    `inputs` has manifest, real_manifest, pairs, real, fake, clip and real_clip paths (the
    Snakemake rule's input); `settings` is `analysis_settings(config)`. Returns the metrics and
    the bootstrap replicates (saved beside them for the pairwise comparisons).
    """
    manifest = read_json(inputs.manifest)
    real_manifest = read_json(inputs.real_manifest)
    real_arrays, real_meta = load_features(inputs.real)
    check_matches(real_meta, real_manifest, inputs.real, settings["inception"])
    real_set = inception_set(real_arrays)
    real = real_set.rows  # all real rows, or a seeded subset of a large real set
    fake, fake_meta = load_features(inputs.fake)
    check_matches(fake_meta, manifest, inputs.fake, settings["inception"])
    clip_arrays, clip_meta = load_features(inputs.clip)
    check_matches(clip_meta, manifest, inputs.clip)
    real_clip, real_clip_meta = load_features(inputs.real_clip)
    check_matches(real_clip_meta, real_manifest, inputs.real_clip)
    clip = {
        "available": clip_meta["available"],
        "reason": clip_meta.get("reason"),
        "truncated": clip_meta.get("truncated", []),
        **clip_arrays,
    }
    # the real set's mean and covariance once for FID, its bootstrap and FID-infinity
    real_stats = real_statistics(real_set) if len(manifest["images"]) >= 2 else None
    result = evaluate_checkpoint(
        manifest,
        read_json(inputs.pairs),
        real,
        fake["inception"],
        clip,
        settings["kid"]["subsets"],
        settings["kid"]["subset_size"],
        settings["seed"],
        real_stats=real_stats,
        n_real=real_set.count,
    )
    if real_set.index is not None:
        result["warnings"].append(real_subset_note(real_set, settings["seed"]))
    replicates: dict[str, np.ndarray] = {}
    if result["fid"] is not None:
        scores = (
            np.array([row["clip_score"] for row in result["per_image"]])
            if clip["available"]
            else None
        )
        replicates = uncertainty(result, real, fake["inception"], scores, settings, real_stats)
        fidelity_diversity(result, real, fake["inception"], settings)
        extrapolated_fid(result, real_stats, fake["inception"], settings)
    else:
        result.update(fid_ci=None, kid_ci=None, clip_ci=None, prdc=None, fid_infinity=None)
    result["exact_real_copies"] = exact_real_copies(manifest, real_manifest)
    if result["exact_real_copies"]:
        result["warnings"].append(
            f"{len(result['exact_real_copies'])} sample file(s) are byte-identical to real "
            "images (listed in the results JSON): a copied training image, or a real image put "
            "among the samples."
        )
    spaces = {"inception": (fake["inception"], real, kept_images(real_set, real_manifest))}
    if clip["available"] and "image" in real_clip:
        spaces["clip"] = (clip_arrays["image"], real_clip["image"], real_manifest["images"])
    memorization_screen(result, spaces, manifest, settings)
    result["made_by"] = made_by(settings, fake_meta, clip_meta)
    return result, replicates
