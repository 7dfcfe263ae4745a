"""Precision, recall, density and coverage of generated features against real ones.

FID and KID fold fidelity (do samples look real?) and diversity (do they cover the real data?)
into one number; these four separate them, so a checkpoint that collapsed onto a few good-looking
modes is told apart from one that is varied but off.

Definitions, with real features X = {x_1..x_N}, fake features Y = {y_1..y_M}, Euclidean distance
d, and k (default 5, Naeem et al.'s recommendation for density and coverage):

- r(x_i) = d(x_i, k-th nearest *other* real point): the radius of the ball around x_i; the point
  itself is never counted as its own neighbour, an exact duplicate of it is (at distance 0).
  r(y_j) likewise within Y.
- B(c, r) = {z : d(z, c) <= r}, a *closed* ball.
- precision = (1/M) sum_j 1[exists i: y_j in B(x_i, r(x_i))]   (Kynkäänniemi et al. 2019)
- recall    = (1/N) sum_i 1[exists j: x_i in B(y_j, r(y_j))]   (Kynkäänniemi et al. 2019)
- density   = (1/(kM)) sum_j sum_i 1[y_j in B(x_i, r(x_i))]    (Naeem et al. 2020)
- coverage  = (1/N) sum_i 1[exists j: y_j in B(x_i, r(x_i))]   (Naeem et al. 2020)

Boundary: a point at exactly the radius is inside (`<=`), as in Kynkäänniemi et al.'s paper and
reference code, stylegan2-ada and torch-fidelity. Naeem et al.'s `prdc` package uses `<`. The two
differ only when a distance equals a radius exactly, which for continuous features happens
through duplicates: with `<=`, a real image present k+1 times has radius 0 and its exact copy in
the samples still counts as inside its ball (with `<`, the ball would be empty); that is the
behaviour wanted when samples may reproduce training images. One rule is used for all four.

Distances are float64 via ||a||^2 + ||b||^2 - 2 a.b, clipped at 0, in row chunks, so memory is
O(chunk_size * max(N, M)) and never the N x M x D cube. Membership compares squared distances
with squared radii (same order as distances against radii, no sqrt round trip). Both sets are
first shifted by the mean of the real features: distances do not change, and the cancellation
in the formula shrinks, which matters for non-negative Inception features far from the origin.

The formula's rounding depends on where a pair sits in the matrix product, so one distance can
come out a few ulps apart in two places, and an exact copy at 1e-9 rather than 0. A comparison
can only turn on that when a distance lies within the error bound (SQ_REL_ERR times the largest
squared norms) of a radius or of 0, and then it is exactly the case that matters: a ball's own
k-th neighbour copied into the samples sits on that ball's boundary, and a duplicated point's
radius is 0. Such pairs (rare for continuous features) are recomputed directly as
sum((a - b)^2), which is exactly 0 for equal rows and the same value wherever the pair sits, so
every comparison, and all four numbers, are those of directly computed distances.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from ckpt_eval.metrics.checks import as_features, check_pair
from ckpt_eval.metrics.registry import CheckpointData, Measure, Notice, Outcome, Quantity

DEFAULT_K = 5
DEFAULT_CHUNK = 1024
# Bound on the expanded formula's error, relative to ||a||^2 + ||b||^2: about 2 * D * 2^-53 in
# the worst case (1e-8 holds up to D ~ 4e7), far above what blocked sums really lose.
SQ_REL_ERR = 1e-8
_DIRECT_BATCH = 1 << 22  # elements of the difference rows materialized at a time


@dataclass(frozen=True)
class PrdcResult:
    precision: float
    recall: float
    density: float  # unbounded above: > 1 when samples crowd where real points are dense
    coverage: float
    k: int
    n_real: int  # real features used (after subsampling)
    n_fake: int
    n_real_total: int  # real features given
    real_subsample_seed: int | None  # None when all real features were used


def _error_bound(a_sq: np.ndarray, b_sq: np.ndarray) -> float:
    """Upper bound on |formula - exact| for any pair of rows with these squared norms."""
    top = (a_sq.max() if len(a_sq) else 0.0) + (b_sq.max() if len(b_sq) else 0.0)
    return SQ_REL_ERR * float(top)


def _row_ids(*sets: np.ndarray) -> list[np.ndarray]:
    """Per set, an int64 id per row, equal for rows with equal bytes across all the sets.

    A 128-bit digest of each row's bytes, so recognising a copy costs O(1) per pair instead of
    O(D): a collapsed generator (every sample the same image) puts every pair in the refinement.
    """
    seen: dict[bytes, int] = {}
    out = []
    for x in sets:
        x = np.ascontiguousarray(x)
        ids = np.empty(len(x), np.int64)
        for i, row in enumerate(x):
            ids[i] = seen.setdefault(hashlib.blake2b(row, digest_size=16).digest(), len(seen))
        out.append(ids)
    return out


def _formula_sq(a: np.ndarray, b: np.ndarray, a_sq: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    d = a @ b.T
    d *= -2.0
    d += a_sq[:, None]
    d += b_sq[None, :]
    np.maximum(d, 0.0, out=d)
    return d


def _within(d: np.ndarray, centre: np.ndarray, err: float) -> np.ndarray:
    """d in [centre - err, centre + err], with boolean temporaries only (d may be large)."""
    mask = d >= centre - err
    mask &= d <= centre + err
    return mask


def _refine(
    d: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    mask: np.ndarray,
    a_ids: np.ndarray | None = None,
    b_ids: np.ndarray | None = None,
) -> None:
    """Overwrite d[mask] with directly computed sum((a_i - b_j)^2), in bounded batches.

    Pairs of rows with the same id (equal bytes) are set to 0 without computing anything.
    """
    rows, cols = np.nonzero(mask)
    if a_ids is not None and b_ids is not None:
        same = a_ids[rows] == b_ids[cols]
        d[rows[same], cols[same]] = 0.0
        rows, cols = rows[~same], cols[~same]
    step = max(1, _DIRECT_BATCH // max(a.shape[1], 1))
    for start in range(0, len(rows), step):
        r, c = rows[start : start + step], cols[start : start + step]
        diff = a[r] - b[c]
        d[r, c] = np.einsum("ij,ij->i", diff, diff)


def _knn_sq_radii(x: np.ndarray, k: int, chunk_size: int, ids: np.ndarray) -> np.ndarray:
    n = len(x)
    sq = np.einsum("ij,ij->i", x, x)
    # Every entry is within `err` of its exact value, so the computed k-th value is too, and every
    # entry whose exact value equals the exact k-th lies within 2 * err of the computed k-th; after
    # those are made exact, the k-th value is the exact one.
    err = _error_bound(sq, sq)
    radii = np.empty(n, np.float64)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        block = x[start:stop]
        d = _formula_sq(block, x, sq[start:stop], sq)
        rows = np.arange(stop - start)
        d[rows, rows + start] = np.inf
        kth = np.partition(d, k - 1, axis=1)[:, k - 1]
        _refine(d, block, x, _within(d, kth[:, None], 2.0 * err), ids[start:stop], ids)
        radii[start:stop] = np.partition(d, k - 1, axis=1)[:, k - 1]
    return radii


def prdc(
    real: np.ndarray,
    fake: np.ndarray,
    k: int = DEFAULT_K,
    *,
    max_real: int | None = None,
    seed: int = 0,
    chunk_size: int = DEFAULT_CHUNK,
) -> PrdcResult:
    """Precision, recall, density and coverage of `fake` (M x D) against `real` (N x D).

    max_real: when N exceeds it, a seeded uniform subsample of that many real rows (without
    replacement) is used, bounding the O(N^2) cost; the result records the seed.
    Raises ValueError when k >= N (after subsampling) or k >= M: a k-th nearest other point
    must exist in both sets.
    """
    x = as_features(real, "real")
    y = as_features(fake, "fake")
    check_pair(x, y, ("real", "fake"), chunk_size)
    n_total = len(x)
    used_seed = None
    if max_real is not None and max_real < 1:
        raise ValueError(f"max_real must be >= 1, got {max_real}")
    if max_real is not None and n_total > max_real:
        keep = np.sort(np.random.default_rng(seed).choice(n_total, max_real, replace=False))
        x = x[keep]
        used_seed = seed
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n, m = len(x), len(y)
    for name, count in (("real", n), ("fake", m)):
        if k >= count:
            raise ValueError(
                f"k={k} needs at least k+1={k + 1} {name} features, got {count}; "
                "lower k or add images"
            )

    shift = x.mean(axis=0)
    x = x - shift
    y = y - shift
    # Squared distances are compared with squared radii: the same order as on distances, without
    # a sqrt per pair or a sqrt-then-square round trip on the radii.
    x_ids, y_ids = _row_ids(x, y)
    r_real_sq = _knn_sq_radii(x, k, chunk_size, x_ids)
    r_fake_sq = _knn_sq_radii(y, k, chunk_size, y_ids)
    x_sq = np.einsum("ij,ij->i", x, x)
    y_sq = np.einsum("ij,ij->i", y, y)
    # Radii are exact (directly computed); a formula distance within `err` of one is recomputed,
    # so no membership turns on rounding (e.g. a copy of a ball's k-th neighbour, on its boundary).
    err = 2.0 * _error_bound(y_sq, x_sq)

    fake_in_real = np.zeros(m, bool)  # precision
    real_in_fake = np.zeros(n, bool)  # recall
    balls_per_fake = np.zeros(m, np.int64)  # density
    nearest_fake_sq = np.full(n, np.inf)  # coverage
    for start in range(0, m, chunk_size):
        stop = min(start + chunk_size, m)
        d = _formula_sq(y[start:stop], x, y_sq[start:stop], x_sq)  # fake rows x real
        near = _within(d, r_real_sq[None, :], err)
        near |= _within(d, r_fake_sq[start:stop, None], err)
        _refine(d, y[start:stop], x, near, y_ids[start:stop], x_ids)
        inside_real = d <= r_real_sq[None, :]
        fake_in_real[start:stop] = inside_real.any(axis=1)
        balls_per_fake[start:stop] = inside_real.sum(axis=1)
        real_in_fake |= (d <= r_fake_sq[start:stop, None]).any(axis=0)
        np.minimum(nearest_fake_sq, d.min(axis=0), out=nearest_fake_sq)

    return PrdcResult(
        precision=float(fake_in_real.mean()),
        recall=float(real_in_fake.mean()),
        density=float(balls_per_fake.sum() / (k * m)),
        coverage=float((nearest_fake_sq <= r_real_sq).mean()),
        k=k,
        n_real=n,
        n_fake=m,
        n_real_total=n_total,
        real_subsample_seed=used_seed,
    )


def _compute(data: CheckpointData) -> Outcome:
    cfg = data.settings["prdc"]
    k = cfg["k"]
    if data.n < 2 or min(data.n, len(data.real)) <= k:
        notices = [Notice("prdc.too_few", {"k": k})] if data.n >= 2 else []
        return Outcome({"prdc": None}, notices=notices)
    r = prdc(data.real, data.fake, k, max_real=cfg["max_real"], seed=data.seed)
    return Outcome(
        {
            "prdc": {
                "precision": r.precision,
                "recall": r.recall,
                "density": r.density,
                "coverage": r.coverage,
                "k": r.k,
                "n_real": r.n_real,
                "n_real_total": r.n_real_total,
                "real_subsample_seed": r.real_subsample_seed,
            }
        }
    )


def _describe(config: Any) -> list[tuple[str, str]]:
    return [
        (
            "Precision, recall, density, coverage",
            f"(Kynkäänniemi et al. 2019; Naeem et al. 2020) on the Inception features, k = "
            f"{config['prdc']['k']}: each point's radius is the distance to its k-th nearest "
            "other point of its own set; a point is inside a ball when its distance is <= the "
            "radius (non-strict, as in Kynkäänniemi et al.'s code and torch-fidelity; Naeem et "
            "al.'s package uses <). Precision: share of samples inside some real ball "
            "(fidelity). Recall: share of real images inside some sample ball (diversity). "
            "Density: real balls per sample / k (can exceed 1). Coverage: share of real balls "
            "holding at least one sample. Real sets over "
            f"{config['prdc']['max_real']} images are subsampled (seeded).",
        )
    ]


def _part(key: str, label: str, chart: bool) -> Quantity:
    return Quantity(
        key=key, label=label, better="higher", point=f"prdc.{key}", table="secondary", chart=chart
    )


MEASURE = Measure(
    key="prdc",
    order=50,
    quantities=(
        _part("precision", "Precision", True),
        _part("recall", "Recall", True),
        _part("density", "Density", False),
        _part("coverage", "Coverage", False),
    ),
    compute=_compute,
    describe=_describe,
    notices={
        "prdc.too_few": "Precision/recall/density/coverage need more than k={k} images in both "
        "sets."
    },
    settings=("prdc",),
)
