"""How close each generated sample comes to a real (training) image: a memorization screen.

A fine-tuned model that has started to reproduce its training images can score well on FID and
precision precisely because it copies; this module finds, for every sample, the most similar real
image by cosine similarity of their features and reports how many samples are suspiciously close,
with the closest pairs to look at. The same code serves Inception pool3 features and CLIP image
embeddings; only the sensible threshold differs, so it is a parameter.

Definitions, with sample features s_1..s_M and real features r_1..r_N:

- cos(a, b) = a.b / (||a|| ||b||), float64; a zero vector has no direction and is an error.
  Values above 1 - 1e-12 are reported as exactly 1 (rounding leaves the cosine of a vector with
  itself a few ulps either side of 1; an angle of ~1.4e-6 rad is no different from 0 here), so
  an exact or rescaled copy gets similarity 1.0 and copies of one real image tie.
- nearest_index[j] = argmax_i cos(s_j, r_i); among equal similarities the lowest real index.
  Equal means within TIE_WITHIN (1e-12) of the maximum: the matrix product can compute two
  identical real rows (the same image twice) a few ulps apart, depending on the chunk and the
  column, and a rescaled real row is a few ulps off after normalising; without the tolerance
  such ties would go to whichever rounding happened to favour. nearest_similarity[j] is the
  maximum itself.
- share_flagged = (1/M) #{j : nearest_similarity[j] >= threshold}: at the threshold counts as
  flagged (`>=`), so threshold=1.0 flags the samples whose direction equals a real one's.
- top pairs: the samples with the highest nearest_similarity, one pair (sample, its nearest real,
  similarity) per sample so one copied image does not fill the list, sorted by similarity
  descending, ties by sample index ascending.

Default threshold 0.95, for either feature space. On Inception pool3 features (clean-fid
preprocessing, measured for this module on the scikit-image sample photos): unrelated photos
have cosine 0.23-0.62 (nearest other photo at most 0.62); distinct photos of one domain (100 LFW
faces) a median of 0.82 and a maximum of 0.92; an image against its own mild edit (JPEG q75,
flip, +20% brightness) a median of 0.97-0.99, against half resolution 0.98, a 90% centre crop
0.96. 0.95 sits above what distinct same-domain images reach and below what light edits of one
image keep; heavier edits (JPEG q30, quarter resolution, strong noise, a 75% crop) fall to
0.6-0.95 and are missed, so a share of 0 is not proof of no copying. It is stricter than MiFID's
cosine-distance epsilon 0.1 (similarity 0.9), which is applied to an average, not per sample.
CLIP image embeddings are semantic: different photos of the same subject can exceed 0.9, and
near-duplicate filtering with CLIP commonly uses 0.95-0.98; 0.95 is the permissive end of that
range (more pairs to review, fewer missed), not calibrated here. Both are screens that select
pairs for a person to look at, not verdicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ckpt_eval.metrics.checks import as_features, check_pair
from ckpt_eval.metrics.registry import CheckpointData, Measure, Notice, Outcome, Quantity

DEFAULT_THRESHOLD = 0.95
DEFAULT_TOP_K = 16
DEFAULT_CHUNK = 1024
ONE_WITHIN = 1e-12  # similarities above 1 - ONE_WITHIN are taken as exactly 1
TIE_WITHIN = 1e-12  # similarities within this of a sample's maximum tie (lowest index wins)


@dataclass(frozen=True)
class ClosePair:
    sample: int  # row of the sample features
    real: int  # row of the real features
    similarity: float


@dataclass(frozen=True)
class MemorizationResult:
    nearest_index: np.ndarray  # (M,) int64: nearest real row per sample
    nearest_similarity: np.ndarray  # (M,) float64
    threshold: float
    n_flagged: int  # samples with nearest_similarity >= threshold
    share_flagged: float  # n_flagged / M
    top_pairs: tuple[ClosePair, ...]  # most similar first, at most top_k


def _unit_rows(x: np.ndarray, name: str) -> np.ndarray:
    a = as_features(x, name, allow_empty=False)
    norms = np.linalg.norm(a, axis=1)
    zero = np.flatnonzero(norms == 0)
    if len(zero):
        raise ValueError(f"{name} feature rows {zero[:5].tolist()} are zero: cosine is undefined")
    return a / norms[:, None]


def nearest_real(
    samples: np.ndarray, real: np.ndarray, chunk_size: int = DEFAULT_CHUNK
) -> tuple[np.ndarray, np.ndarray]:
    """Per sample, the index (int64) and cosine similarity (float64) of its most similar real row.

    Computed in chunks of sample rows, so memory is O(chunk_size * N). Values within ONE_WITHIN
    of 1 become 1 (and below -1 become -1), and the index is the first real row within
    TIE_WITHIN of the maximum, so ties, including several copies of one image, go to the lowest
    real index whatever the rounding.
    """
    s = _unit_rows(samples, "sample")
    r = _unit_rows(real, "real")
    check_pair(s, r, ("samples", "real"), chunk_size)
    m = len(s)
    index = np.empty(m, np.int64)
    similarity = np.empty(m, np.float64)
    for start in range(0, m, chunk_size):
        stop = min(start + chunk_size, m)
        sim = s[start:stop] @ r.T
        sim[sim > 1.0 - ONE_WITHIN] = 1.0
        np.maximum(sim, -1.0, out=sim)
        top = sim.max(axis=1)
        index[start:stop] = np.argmax(sim >= (top - TIE_WITHIN)[:, None], axis=1)
        similarity[start:stop] = top
    return index, similarity


def flagged(similarity: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean mask of samples at or above the threshold (`>=`)."""
    return np.asarray(similarity, np.float64) >= threshold


def top_pairs(index: np.ndarray, similarity: np.ndarray, k: int) -> tuple[ClosePair, ...]:
    """The k samples closest to a real image, most similar first; ties by sample index."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    sim = np.asarray(similarity, np.float64)
    order = np.lexsort((np.arange(len(sim)), -sim))[:k]  # last key sorts first
    return tuple(ClosePair(int(j), int(index[j]), float(sim[j])) for j in order)


def memorization(
    samples: np.ndarray,
    real: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    top_k: int = DEFAULT_TOP_K,
    chunk_size: int = DEFAULT_CHUNK,
) -> MemorizationResult:
    """Nearest real image per sample, the share at or above `threshold`, and the closest pairs."""
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold is a cosine similarity in [-1, 1], got {threshold}")
    index, similarity = nearest_real(samples, real, chunk_size)
    mask = flagged(similarity, threshold)
    n_flagged = int(mask.sum())
    return MemorizationResult(
        nearest_index=index,
        nearest_similarity=similarity,
        threshold=float(threshold),
        n_flagged=n_flagged,
        share_flagged=n_flagged / len(similarity),
        top_pairs=top_pairs(index, similarity, top_k),
    )


def nearest_real_images(
    fake: np.ndarray,
    real: np.ndarray,
    threshold: float,
    pairs: int,
    sample_images: Sequence[Mapping[str, Any]],
    real_images: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The screen in one feature space, with the closest pairs as files."""
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


def exact_real_copies(data: CheckpointData) -> list[str]:
    """Samples whose file is byte-identical to a real image: memorization at its plainest, or a
    real image put among the samples by mistake. Either way the report must say so."""
    real = {image["sha256"] for image in data.all_real_images}
    return [image["file"] for image in data.sample_images if image["sha256"] in real]


def _compute(data: CheckpointData) -> Outcome:
    """Nearest real image per sample in Inception space and, with CLIP, in CLIP image space."""
    cfg = data.settings["memorization"]
    spaces = {"inception": (data.fake, data.real, data.real_images, cfg["threshold"])}
    if data.clip["available"] and "image" in data.real_clip:
        spaces["clip"] = (
            data.clip["image"],
            data.real_clip["image"],
            data.all_real_images,
            cfg["clip_threshold"],
        )
    found = {
        space: nearest_real_images(fake, real, threshold, cfg["pairs"], data.sample_images, images)
        for space, (fake, real, images, threshold) in spaces.items()
    }
    flagged = [s for s, f in found.items() if f["share_flagged"] > cfg["flag_share"]]
    copies = exact_real_copies(data)
    out = Outcome(
        {
            "memorization": {**found, "flag_share": cfg["flag_share"], "flagged": flagged},
            "exact_real_copies": copies,
        }
    )
    if copies:
        out.notices.append(Notice("memorization.exact_copies", {"count": len(copies)}))
    for space in flagged:
        out.notices.append(
            Notice(
                "memorization.flagged",
                {
                    "space": space,
                    "share": found[space]["share_flagged"],
                    "threshold": found[space]["threshold"],
                    "flag_share": cfg["flag_share"],
                },
            )
        )
    return out


def _describe(config: Any) -> list[tuple[str, str]]:
    mem = config["memorization"]
    return [
        (
            "Memorization screen",
            "for every sample, its most similar real image by cosine similarity of Inception "
            f"features (threshold {mem['threshold']}) and, where the CLIP model is available "
            f"and memorization.clip is on, of CLIP image embeddings (threshold "
            f"{mem['clip_threshold']}); a sample at or above the threshold is a near copy. A "
            f"checkpoint is flagged when more than {100 * mem['flag_share']:.0f}% of its samples "
            "are near copies. The closest pairs are shown side by side: a screen that picks "
            "pairs for a person to look at, not a verdict; heavy edits of a training image can "
            "stay below the threshold.",
        )
    ]


MEASURE = Measure(
    key="memorization",
    order=60,
    quantities=(
        Quantity(
            key="memorization",
            label="Share of near copies",
            better="lower",
            point="memorization.inception.share_flagged",
            columns=(("memorization_share", "memorization.inception.share_flagged"),),
            table=None,  # the report's memorization table shows it with its pairs
        ),
    ),
    compute=_compute,
    describe=_describe,
    notices={
        "memorization.exact_copies": "{count} sample file(s) are byte-identical to real images "
        "(listed in the results JSON): a copied training image, or a real image put among the "
        "samples.",
        "memorization.flagged": "Possible memorization: {share:.0%} of the samples have a real "
        "image with {space} cosine similarity >= {threshold} (more than {flag_share:.0%}); see "
        "the closest pairs.",
    },
    settings=("memorization",),
)
