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

from dataclasses import dataclass

import numpy as np

from ckpt_eval.metrics.checks import as_features, check_pair

DEFAULT_THRESHOLD = 0.95
INCEPTION_THRESHOLD = 0.95
CLIP_THRESHOLD = 0.95
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
