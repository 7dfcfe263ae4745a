"""Checks shared by the measures that compare two sets of feature vectors row by row."""

from __future__ import annotations

import numpy as np


def as_features(x: np.ndarray, name: str, allow_empty: bool = True) -> np.ndarray:
    """float64 N x D, finite: a NaN from a broken extractor must stop here, not become a number."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} features must be a 2-D array (N x D), got shape {a.shape}")
    if not allow_empty and len(a) == 0:
        raise ValueError(f"{name} features are empty")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} features contain NaN or infinite values")
    return a


def check_pair(
    first: np.ndarray, second: np.ndarray, names: tuple[str, str], chunk_size: int
) -> None:
    """Same feature width in both sets, and a usable chunk size for the row-block loops."""
    if first.shape[1] != second.shape[1]:
        raise ValueError(
            f"feature dimensions differ: {names[0]} {first.shape[1]}, {names[1]} {second.shape[1]}"
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
