"""CMMD: the biased MMD² between CLIP image embeddings under a Gaussian RBF kernel, x 1000.

Jayasumana et al. (CVPR 2024), as google-research's `cmmd/distance.py` computes it:
k(x, y) = exp(-||x - y||² / (2 σ²)) with σ = 10 on L2-normalised CLIP ViT-L/14@336 image
embeddings, and

    CMMD = 1000 · (mean K_xx + mean K_yy - 2 mean K_xy)

with every entry of each matrix in its mean, the diagonals included (the minimum-variance,
biased estimator, Gretton et al. 2012 eq. 5). Unlike FID it assumes no Gaussian and needs no
covariance, so 32 images give a usable number. It is biased in N: the diagonal adds
1000 (1 - mean off-diagonal k) / n to the samples' term, about 10 (1 - mean cosine) / n since
k = exp(-(2 - 2 cos) / 200), so it compares checkpoints with equal N against one real set (and
a less varied set of samples gets a little less of that bias).

One difference from the reference: it embeds images in batches with `drop_remainder=True`, so a
folder of 50 images at batch size 32 is scored on its first 32; here every image counts.

Bootstrap replicates are the same statistic with weighted means, the real set fixed: for a
resample whose counts are c (sum T), mean K_xx becomes c^T K_xx c / T² and mean K_xy becomes
c · (column means of K_real,x) / T, exactly the value on the resampled rows with repeats.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ckpt_eval.metrics.checks import as_features, check_pair
from ckpt_eval.metrics.registry import OFF, CheckpointData, Measure, Notice, Outcome, Quantity

SIGMA = 10.0  # the reference's _SIGMA
SCALE = 1000.0  # the reference's _SCALE
EXTRACTOR = "cmmd"
DEFAULT_MODEL = "openai/clip-vit-large-patch14-336"
BLOCK = 2048  # rows of a kernel block, so a real set of thousands fits in memory


def unit_rows(x: np.ndarray, name: str) -> np.ndarray:
    """The rows divided by their L2 norm, float64; a zero row has no direction and is an error."""
    a = as_features(x, name, allow_empty=False)
    norms = np.linalg.norm(a, axis=1)
    zero = np.flatnonzero(norms == 0)
    if len(zero):
        raise ValueError(f"{name} embeddings {zero[:5].tolist()} are zero: cannot normalise them")
    return a / norms[:, None]


def rbf_kernel(a: np.ndarray, b: np.ndarray, sigma: float = SIGMA) -> np.ndarray:
    """exp(-||a_i - b_j||² / (2 σ²)) for every pair of rows, in float64 (the reference's
    expansion ||a||² + ||b||² - 2 a·b, clipped at 0 against rounding)."""
    sq = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * (a @ b.T)
    return np.exp(-np.maximum(sq, 0.0) / (2.0 * sigma * sigma))


def column_means(a: np.ndarray, b: np.ndarray, sigma: float = SIGMA) -> np.ndarray:
    """For each row of b, the mean over the rows of a of k(a_i, b_j); a in row blocks."""
    total = np.zeros(len(b))
    for start in range(0, len(a), BLOCK):
        total += rbf_kernel(a[start : start + BLOCK], b, sigma).sum(axis=0)
    return total / len(a)


def mean_kernel(a: np.ndarray, b: np.ndarray, sigma: float = SIGMA) -> float:
    """The mean of k over all pairs (a_i, b_j), diagonal included when a is b."""
    return float(column_means(a, b, sigma).mean())


def cmmd(real: np.ndarray, fake: np.ndarray, sigma: float = SIGMA) -> float:
    """CMMD of raw (unnormalised) embeddings: 1000 x the biased MMD² of the unit rows."""
    x = unit_rows(real, "real")
    y = unit_rows(fake, "sample")
    check_pair(x, y, ("real", "samples"), BLOCK)
    return SCALE * (mean_kernel(x, x, sigma) + mean_kernel(y, y, sigma) - 2 * mean_kernel(x, y))


def cmmd_replicates(
    real: np.ndarray, fake: np.ndarray, counts: np.ndarray, sigma: float = SIGMA
) -> np.ndarray:
    """CMMD of each weighted resample of `fake` (rows of counts, each summing to 2 or more:
    a resample with replacement, or 0/1 subsets) against the whole real set."""
    x = unit_rows(real, "real")
    y = unit_rows(fake, "sample")
    check_pair(x, y, ("real", "samples"), BLOCK)
    c = np.asarray(counts, np.float64)
    total = c.sum(axis=1)
    if c.ndim != 2 or c.shape[1] != len(y) or (total < 2).any():
        raise ValueError(f"counts must be (resamples, {len(y)}) rows summing to >= 2")
    within_real = mean_kernel(x, x, sigma)
    cross = column_means(x, y, sigma)
    within_fake = np.einsum("bi,bi->b", c @ rbf_kernel(y, y, sigma), c) / (total * total)
    return SCALE * (within_real + within_fake - 2.0 * (c @ cross) / total)


def missing(data: CheckpointData) -> str | None:
    """Why it cannot be computed for this checkpoint (see `CheckpointData.missing`)."""
    return data.missing(EXTRACTOR, "CMMD", ("image",), real=True)


def _compute(data: CheckpointData) -> Outcome:
    why = missing(data)
    if why is not None:
        notices = [] if why == OFF else [Notice("cmmd.unavailable", {"reason": why})]
        return Outcome({"cmmd": None}, notices=notices)
    real = data.real_features[EXTRACTOR]["image"]
    return Outcome({"cmmd": cmmd(real, data.features[EXTRACTOR]["image"])})


def _replicates(data: CheckpointData, counts: np.ndarray) -> dict[str, np.ndarray]:
    if missing(data) is not None:
        return {}
    real = data.real_features[EXTRACTOR]["image"]
    return {"cmmd": cmmd_replicates(real, data.features[EXTRACTOR]["image"], counts)}


def _describe(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    section = config.get("cmmd", {})
    if not section.get("enabled"):
        return []
    return [
        (
            "CMMD",
            "(CLIP Maximum Mean Discrepancy, Jayasumana et al. 2024, lower is better): 1000 x "
            "the biased MMD² (every kernel entry averaged, diagonals included) between the "
            "L2-normalised image embeddings of the real set and of each checkpoint's samples, "
            f"under the Gaussian kernel exp(-||x-y||²/(2σ²)), σ = {SIGMA:g}; embeddings from "
            f"{section.get('model', DEFAULT_MODEL)}. No Gaussian assumption and no covariance, "
            "so it is usable at 32 images. Biased upward: the diagonal adds about 10 x (1 - mean "
            "cosine similarity between the samples) / n (0.16 at n = 32 and mean cosine 0.5), "
            "less for less varied samples, so compare checkpoints with equal image counts. "
            "Every image counts (the reference implementation drops the remainder of its last "
            "batch).",
        )
    ]


MEASURE = Measure(
    key="cmmd",
    order=36,
    quantities=(
        Quantity(
            key="cmmd",
            label="CMMD",
            better="lower",
            point="cmmd",
            digits=3,
            interval="cmmd_ci",
            compare=True,
            rankable=True,
        ),
    ),
    compute=_compute,
    replicates=_replicates,
    describe=_describe,
    notices={"cmmd.unavailable": "CMMD not computed: {reason}."},
)
