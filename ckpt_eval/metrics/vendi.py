"""Vendi score: the effective number of distinct samples in a checkpoint's set (diversity).

Friedman & Dieng (2023), vertaix/Vendi-Score: with a similarity matrix K (k(x, x) = 1) of the n
samples, VS = exp(-Σ λ log λ) over the eigenvalues λ of K / n (0 log 0 = 0), the exponential of
the von Neumann entropy of K / n. It runs from 1 (all samples alike) to n (all orthogonal) and
needs no real set: a collapsing checkpoint loses diversity whatever its distance to the real
images says.

The kernel is dgm-eval's (Stein et al. 2023): linear on L2-normalised features, K = X Xᵀ with
unit rows, i.e. cosine similarity. The nonzero eigenvalues of X Xᵀ / n (n x n) are those of
Xᵀ X / n (d x d), so the smaller of the two is decomposed (vendi_score's `score_dual`). Computed
on Inception features always, and on DINOv2 features when they were extracted. It grows with n,
so compare checkpoints with equal image counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ckpt_eval.metrics.checks import as_features
from ckpt_eval.metrics.registry import CheckpointData, Measure, Outcome, Quantity

DINOV2 = "dinov2"


def entropy(eigenvalues: np.ndarray) -> float:
    """Shannon entropy -Σ p log p of the positive eigenvalues (0 log 0 = 0, and the zero
    eigenvalues that come out slightly negative through rounding are left out)."""
    p = np.asarray(eigenvalues, np.float64)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def vendi_from_kernel(k: np.ndarray) -> float:
    """exp(entropy of the eigenvalues of K / n) for a symmetric PSD K with unit diagonal."""
    k = np.asarray(k, np.float64)
    return float(np.exp(entropy(np.linalg.eigvalsh((k + k.T) / (2.0 * len(k))))))


def vendi(features: np.ndarray) -> float:
    """Vendi score of the rows under the linear kernel on L2-normalised rows (cosine)."""
    x = as_features(features, "features", allow_empty=False)
    norms = np.linalg.norm(x, axis=1)
    if (norms == 0).any():
        raise ValueError("a zero feature row has no direction: cosine similarity is undefined")
    x = x / norms[:, None]
    n, d = x.shape
    gram = x.T @ x if d < n else x @ x.T
    return float(np.exp(entropy(np.linalg.eigvalsh((gram + gram.T) / (2.0 * n)))))


def _compute(data: CheckpointData) -> Outcome:
    fields: dict[str, Any] = {"vendi": vendi(data.fake) if data.n else None, "vendi_dinov2": None}
    # DINOv2 features missing or unavailable: the DINOv2 module says why, once
    if data.n and data.has(DINOV2, "image") and data.status.get(DINOV2, {}).get("available", True):
        fields["vendi_dinov2"] = vendi(data.features[DINOV2]["image"])
    return Outcome(fields)


def _describe(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    section = config.get("dinov2", {})
    spaces = "Inception features"
    if section.get("enabled"):
        spaces += f" and, separately, on the DINOv2 features ({section.get('model', 'DINOv2')})"
    return [
        (
            "Vendi score",
            "(Friedman & Dieng 2023, higher is more diverse): exp(-Σ λ log λ) over the "
            "eigenvalues λ of K/n, K the cosine similarities of a checkpoint's samples (the "
            f"linear kernel on L2-normalised features, as dgm-eval uses), on the {spaces}: the "
            "effective number of distinct samples, from 1 (all alike) to n. No real set "
            "involved; it grows with n, so compare checkpoints with equal image counts. "
            "Shown, not ranked on.",
        )
    ]


def _vendi_quantity(key: str, label: str) -> Quantity:
    return Quantity(key=key, label=label, better="higher", point=key, table="secondary")


MEASURE = Measure(
    key="vendi",
    order=55,
    quantities=(
        _vendi_quantity("vendi", "Vendi score"),
        _vendi_quantity("vendi_dinov2", "Vendi score (DINOv2)"),
    ),
    compute=_compute,
    describe=_describe,
)
