"""The real set's Inception statistics accumulated batch by batch, without keeping every row.

FID needs only the real set's mean and covariance. A real set of 50,000 images has 400 MB of
float32 features; holding them all in the extraction job, writing them to one file and loading
them in every metrics job is what does not scale. So while the real set is extracted each batch
updates float64 sums (of the rows and of their outer products, around a fixed shift to keep the
cancellation in `sum(x x^T) - n mean mean^T` small), and only a seeded random subset of the rows
is kept, for what needs rows: KID, its bootstrap, precision/recall and the Inception memorization
screen. Up to `max_rows` (config `max_real_features`) every row is kept and the statistics are
taken from the rows exactly as before, so nothing changes for real sets of that size.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


def kept_rows(n: int, max_rows: int | None, seed: int) -> np.ndarray | None:
    """Sorted indices of the real rows kept when there are more than `max_rows`; None = all.

    Drawn once from `default_rng(seed)` without replacement (as `prdc.max_real` does), so the
    same seed and set size keep the same rows in every run.
    """
    if max_rows is None or n <= max_rows:
        return None
    if max_rows < 2:
        raise ValueError(f"max_rows must be at least 2, got {max_rows}")
    return np.sort(np.random.default_rng(seed).choice(n, max_rows, replace=False))


class StreamingMoments:
    """Float64 mean and covariance (N - 1) of rows added in batches, in O(d^2) memory."""

    def __init__(self, dim: int):
        self.dim = dim
        self.count = 0
        self.shift: np.ndarray | None = None
        self.total = np.zeros(dim, np.float64)
        self.outer = np.zeros((dim, dim), np.float64)

    def add(self, batch: np.ndarray) -> None:
        x = np.asarray(batch, np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected rows of {self.dim} values, got shape {x.shape}")
        if not len(x):
            return
        if self.shift is None:
            self.shift = x.mean(axis=0)  # any fixed point near the data: centres the sums
        centred = x - self.shift
        self.count += len(x)
        self.total += centred.sum(axis=0)
        self.outer += centred.T @ centred

    def mean(self) -> np.ndarray:
        if self.count < 1 or self.shift is None:
            raise ValueError("no rows were added")
        return self.shift + self.total / self.count

    def covariance(self) -> np.ndarray:
        if self.count < 2:
            raise ValueError(f"need at least 2 rows for a covariance, got {self.count}")
        centred_mean = self.total / self.count
        cov = (self.outer - self.count * np.outer(centred_mean, centred_mean)) / (self.count - 1)
        return (cov + cov.T) / 2.0


@dataclass(frozen=True)
class StreamedSet:
    """What a streamed extraction keeps: some rows, and the statistics of all of them."""

    rows: np.ndarray  # (len(index) or count, d) float32, in the order of the inputs
    index: np.ndarray | None  # which input rows `rows` are; None = all of them
    count: int
    mean: np.ndarray | None  # float64; None when every row was kept (take them from the rows)
    covariance: np.ndarray | None


def stream_rows(batches: Iterable[np.ndarray], dim: int, keep: np.ndarray | None) -> StreamedSet:
    """Consume feature batches in input order; keep the rows in `keep` (None = all).

    With every row kept the mean and covariance are left to be computed from the rows (as for a
    checkpoint), so the numbers are those of the unstreamed path. Otherwise only the float64
    sums and the kept rows are held: memory O(d^2 + len(keep) * d), whatever the number of rows.
    """
    moments = StreamingMoments(dim) if keep is not None else None
    parts: list[np.ndarray] = []
    start = 0
    for batch in batches:
        stop = start + len(batch)
        if moments is None:
            parts.append(batch)
        else:
            moments.add(batch)
            lo, hi = np.searchsorted(keep, [start, stop])
            if hi > lo:
                parts.append(np.array(batch[keep[lo:hi] - start], copy=True))
        start = stop
    rows = np.concatenate(parts, axis=0) if parts else np.zeros((0, dim), np.float32)
    if moments is None:
        return StreamedSet(rows, None, start, None, None)
    if keep is not None and len(keep) and keep[-1] >= start:
        raise ValueError(f"kept row {int(keep[-1])} is beyond the {start} rows streamed")
    return StreamedSet(rows, keep, start, moments.mean(), moments.covariance())


def subset_param(n_images: int, max_rows: int, seed: int) -> dict[str, int] | None:
    """The real-set extraction job's subsampling, as a Snakemake parameter: None while the set
    fits (so a new `seed` does not rerun a real set that is kept whole), else its size and seed.
    """
    return None if n_images <= max_rows else {"max_rows": max_rows, "seed": seed}
