"""Distances in DINOv2 feature space: FD-DINOv2, KD-DINOv2 and each sample's nearest real image.

Stein et al. (NeurIPS 2023, layer6ai-labs/dgm-eval) found that Inception's space misjudges modern
generators and that DINOv2's CLS features rank them as people do; their FD and KD are FID's and
KID's formulas in that space, and this module reuses ours:

- FD-DINOv2: the Fréchet distance between Gaussians fitted (float64 mean, unbiased covariance)
  to the real and the sample features (`ckpt_eval.metrics.fid`). With n samples its covariance has
  rank n - 1, far below the 768 (ViT-B/14) or 1024 (ViT-L/14) dimensions at 32 images: biased
  upward, comparable only at equal n; the kernel distance below is the better guide there.
- KD-DINOv2: KID's unbiased MMD² with k(x, y) = (x·y / d + 1)³, d the feature dimension,
  averaged over seeded subsets of min(kid.subset_size, n) images (`ckpt_eval.metrics.kid`).
  dgm-eval's `compute_mmd` is this estimator with the same defaults (100 subsets of
  min(1000, n)); its subsets come from the unseeded global `np.random.choice` and its kernels
  from sklearn in the features' float32, where these are seeded and float64, and the spread it
  calls `kd_variance` is the std over subsets (ours `kd_dinov2_std`).
- Nearest-real similarity: for each sample, the highest cosine similarity of its features to
  a real image's (`ckpt_eval.metrics.memorization.nearest_real`), and the mean over samples: how
  close the samples come to the training subject. Personalisation papers' "DINO" score
  (DreamBooth, Ruiz et al. 2023) averages the similarity over *all* sample-real pairs with DINO
  ViT-S/16; the maximum asks instead whether each sample resembles some training image. It
  rises with copying as well as with fidelity, so it is shown beside the others, not ranked on.

Replicates for the bootstrap: FD and KD as FID's and KID's (the real set fixed), the nearest
similarity as the weighted mean of the per-sample values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ckpt_eval.metrics.fid import fid_replicates, frechet_distance_to_rows, statistics
from ckpt_eval.metrics.kid import kid, kid_replicates
from ckpt_eval.metrics.memorization import nearest_real
from ckpt_eval.metrics.registry import (
    OFF,
    CheckpointData,
    Measure,
    Notice,
    Outcome,
    Quantity,
    mean_replicates,
)

EXTRACTOR = "dinov2"
DEFAULT_MODEL = "facebook/dinov2-base"
FIELDS = (
    "fd_dinov2",
    "kd_dinov2_mean",
    "kd_dinov2_std",
    "kd_dinov2_subsets",
    "kd_dinov2_subset_size",
    "dino_nearest",
)


def missing(data: CheckpointData) -> str | None:
    """Why it cannot be computed for this checkpoint (see `CheckpointData.missing`)."""
    return data.missing(EXTRACTOR, "DINOv2", ("image",), real=True)


def _sets(data: CheckpointData) -> tuple[np.ndarray, np.ndarray]:
    real = np.asarray(data.real_features[EXTRACTOR]["image"], np.float64)
    return real, np.asarray(data.features[EXTRACTOR]["image"], np.float64)


def _compute(data: CheckpointData) -> Outcome:
    why = missing(data)
    if why is not None:
        notices = [] if why == OFF else [Notice("dinov2.unavailable", {"reason": why})]
        per_image = {} if why == OFF else {"dino_nearest": [None] * data.n}
        return Outcome(dict.fromkeys(FIELDS), per_image, notices)
    real, fake = _sets(data)
    _, nearest = nearest_real(fake, real)
    out = Outcome(
        {**dict.fromkeys(FIELDS), "dino_nearest": float(nearest.mean())},
        per_image={"dino_nearest": [float(s) for s in nearest]},
    )
    if len(fake) >= 2:
        cfg = data.settings["kid"]
        k = kid(real, fake, cfg["subsets"], cfg["subset_size"], data.seed)
        out.fields.update(
            {
                "fd_dinov2": frechet_distance_to_rows(*statistics(real), fake),
                "kd_dinov2_mean": k.mean,
                "kd_dinov2_std": k.std,
                "kd_dinov2_subsets": k.subsets,
                "kd_dinov2_subset_size": k.subset_size,
            }
        )
    return out


def _replicates(data: CheckpointData, counts: np.ndarray) -> dict[str, np.ndarray]:
    if missing(data) is not None:
        return {}
    real, fake = _sets(data)
    _, nearest = nearest_real(fake, real)
    return {
        "fd_dinov2": fid_replicates(*statistics(real), fake, counts, data.processes),
        "kd_dinov2": kid_replicates(real, fake, counts),
        "dino_nearest": mean_replicates(nearest, counts),
    }


def _describe(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    section = config.get("dinov2", {})
    if not section.get("enabled"):
        return []
    model = section.get("model", DEFAULT_MODEL)
    kid_cfg = config.get("kid", {})
    subsets, size = kid_cfg.get("subsets", 100), kid_cfg.get("subset_size", 1000)
    return [
        (
            "FD-DINOv2",
            "(Stein et al. 2023, lower is better): the Fréchet distance of FID, computed the "
            f"same way, on the CLS-token features of {model} instead of Inception's. Below "
            "about as many images as feature dimensions (768 for ViT-B/14, 1024 for ViT-L/14) "
            "the samples' covariance is rank-deficient and FD is biased upward: compare "
            "checkpoints with equal image counts, and read KD-DINOv2. dgm-eval's published "
            "values use ViT-L/14 (facebook/dinov2-large): compare with them only on that model.",
        ),
        (
            "KD-DINOv2",
            "(lower is better): KID's unbiased MMD² with the kernel (x·y/d + 1)³, d the "
            f"feature dimension, on the same DINOv2 features, averaged over {subsets} seeded "
            f"random subsets of min({size}, n) images (dgm-eval's KD; its subsets are "
            "unseeded); ± is the std over subsets. Unbiased in n, so usable at 32 images.",
        ),
        (
            "DINOv2 nearest-real similarity",
            "(higher is closer to the training images): for each sample the highest cosine "
            "similarity of its DINOv2 features to a real image's, averaged over the samples "
            "(per image in the results JSON). Personalisation papers' DINO score averages over "
            "all sample-real pairs instead. It rises with copying as well as with subject "
            "fidelity: read it with the memorization screen; it is not ranked on.",
        ),
    ]


MEASURE = Measure(
    key="dinov2",
    order=37,
    quantities=(
        Quantity(
            key="fd_dinov2",
            label="FD-DINOv2",
            better="lower",
            point="fd_dinov2",
            interval="fd_dinov2_ci",
            compare=True,
            rankable=True,
        ),
        Quantity(
            key="kd_dinov2",
            label="KD-DINOv2",
            better="lower",
            point="kd_dinov2_mean",
            digits=4,
            interval="kd_dinov2_ci",
            spread="kd_dinov2_std",
            columns=(("kd_dinov2_mean", "kd_dinov2_mean"), ("kd_dinov2_std", "kd_dinov2_std")),
            compare=True,
            rankable=True,
        ),
        Quantity(
            key="dino_nearest",
            label="DINOv2 nearest-real similarity",
            better="higher",
            point="dino_nearest",
            digits=3,
            interval="dino_nearest_ci",
            table="secondary",
            per_image="dino_nearest",
        ),
    ),
    compute=_compute,
    replicates=_replicates,
    describe=_describe,
    notices={
        "dinov2.unavailable": "FD-DINOv2, KD-DINOv2 and the nearest-real DINOv2 "
        "similarity not computed: {reason}."
    },
    settings=("kid",),
)
