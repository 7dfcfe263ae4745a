"""KID (unbiased polynomial-kernel MMD²), checked against clean-fid, torch-fidelity and a loop.

With one subset of size n drawn without replacement from n rows, the subset is a permutation
of the whole set, and the MMD² estimator is permutation-invariant: clean-fid's and
torch-fidelity's subset estimators then compute exactly the full-set value.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from cleanfid.fid import kernel_distance
from torch_fidelity.metric_kid import kernel_poly, kid_features_to_metric, mmd2

import ckpt_eval.metrics.kid as kid_module
from ckpt_eval.metrics.kid import kid, polynomial_mmd2

RTOL = 1e-9


def _sets(n_real: int, n_fake: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n_real, d))
    fake = rng.normal(0.2, 1.1, size=(n_fake, d))
    return real, fake


def _loop_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased estimator written out term by term (Bińkowski et al. 2018, eq. 2)."""
    m, d = len(x), len(x[0])

    def k(a, b) -> float:
        return (sum(float(p) * float(q) for p, q in zip(a, b, strict=True)) / d + 1.0) ** 3

    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2.0 * xy / (m * m)


@pytest.mark.parametrize(("n", "d"), [(50, 16), (200, 64), (40, 2048)])
def test_matches_cleanfid_kernel_distance(n: int, d: int) -> None:
    real, fake = _sets(n, n, d, seed=n + d)
    expected = kernel_distance(real, fake, num_subsets=1, max_subset_size=n)
    value = polynomial_mmd2(real, fake)
    assert value == pytest.approx(expected, rel=RTOL, abs=1e-12)
    assert abs(value) > 1e-4  # the sets differ; the comparison is not between two zeros


@pytest.mark.parametrize(("n", "d"), [(50, 16), (200, 64), (40, 2048)])
def test_matches_torch_fidelity_mmd2(n: int, d: int) -> None:
    real, fake = _sets(n, n, d, seed=3 * n + d)
    expected = mmd2(
        kernel_poly(real, real),
        kernel_poly(real, fake),
        kernel_poly(fake, fake),
    )
    assert polynomial_mmd2(real, fake) == pytest.approx(float(expected), rel=RTOL, abs=1e-12)


def test_torch_fidelity_kernel_is_the_cubic_polynomial() -> None:
    """Guard for the reference above: its defaults are degree 3, gamma 1/d, coef0 1."""
    x, y = _sets(4, 5, 7, seed=1)
    np.testing.assert_allclose(kernel_poly(x, y), (x @ y.T / 7 + 1.0) ** 3, rtol=1e-12)


@pytest.mark.parametrize(("m", "d", "seed"), [(2, 3, 0), (4, 5, 1), (6, 2, 2)])
def test_matches_explicit_loop(m: int, d: int, seed: int) -> None:
    x, y = _sets(m, m, d, seed)
    assert polynomial_mmd2(x, y) == pytest.approx(_loop_mmd2(x.tolist(), y.tolist()), rel=1e-12)


def test_hand_computed_tiny_case() -> None:
    # d = 1, x = {0, 1}, y = {0, 2}; k(a, b) = (ab + 1)^3
    # within x (i != j): 2 * k(0, 1) = 2; within y: 2 * k(0, 2) = 2
    # cross: k(0,0) + k(0,2) + k(1,0) + k(1,2) = 1 + 1 + 1 + 27 = 30
    # MMD² = 2/2 + 2/2 - 2 * 30/4 = -13
    value = polynomial_mmd2(np.array([[0.0], [1.0]]), np.array([[0.0], [2.0]]))
    assert value == pytest.approx(-13.0, rel=1e-12)


def test_symmetric_and_permutation_invariant() -> None:
    x, y = _sets(30, 30, 8, seed=4)
    perm = np.random.default_rng(0).permutation(30)
    assert polynomial_mmd2(y, x) == pytest.approx(polynomial_mmd2(x, y), rel=1e-12)
    assert polynomial_mmd2(x[perm], y) == pytest.approx(polynomial_mmd2(x, y), rel=1e-12)


def test_unequal_subset_sizes_rejected() -> None:
    x, y = _sets(5, 6, 3, seed=0)
    with pytest.raises(ValueError):
        polynomial_mmd2(x, y)


def test_kid_full_size_subsets_match_torch_fidelity() -> None:
    """subset_size = n: every subset is the whole set, so mean = full MMD² and std = 0."""
    n = 60
    real, fake = _sets(n, n, 32, seed=9)
    result = kid(real, fake, subsets=5, subset_size=n, seed=3)
    reference = kid_features_to_metric(
        torch.from_numpy(real),
        torch.from_numpy(fake),
        kid_subsets=5,
        kid_subset_size=n,
        verbose=False,
    )
    assert result.mean == pytest.approx(
        reference["kernel_inception_distance_mean"], rel=RTOL, abs=1e-12
    )
    assert result.std == pytest.approx(reference["kernel_inception_distance_std"], abs=1e-9)
    assert result.std < 1e-9
    assert (result.subsets, result.subset_size, result.capped) == (5, n, False)


def test_kid_subset_mean_and_population_std() -> None:
    """Each subset value is an MMD² of some rows; mean/std are over them (ddof=0)."""
    real, fake = _sets(40, 40, 6, seed=10)
    result = kid(real, fake, subsets=20, subset_size=10, seed=0)
    # Replay the documented draw: one default_rng(seed), real rows then fake rows per subset.
    rng = np.random.default_rng(0)
    values = []
    for _ in range(20):
        r = real[rng.choice(40, 10, replace=False)]
        f = fake[rng.choice(40, 10, replace=False)]
        values.append(float(mmd2(kernel_poly(r, r), kernel_poly(r, f), kernel_poly(f, f))))
    assert result.mean == pytest.approx(float(np.mean(values)), rel=1e-9)
    assert result.std == pytest.approx(float(np.std(values)), rel=1e-9)
    assert result.std > 0.0


def test_kid_reproducible_for_a_seed_and_different_for_another() -> None:
    real, fake = _sets(50, 50, 8, seed=12)
    a = kid(real, fake, subsets=10, subset_size=10, seed=42)
    b = kid(real, fake, subsets=10, subset_size=10, seed=42)
    c = kid(real, fake, subsets=10, subset_size=10, seed=43)
    assert a == b
    assert a.mean != c.mean
    assert a.std != c.std


@pytest.mark.parametrize(
    ("n_real", "n_fake", "subset_size", "expected_size", "capped"),
    [
        (30, 12, 1000, 12, True),  # fake set is the smaller one
        (9, 25, 20, 9, True),  # real set is the smaller one
        (30, 12, 12, 12, False),  # exactly the smaller size: not capped
        (30, 12, 5, 5, False),  # well below both sizes
    ],
)
def test_kid_caps_subset_size(
    n_real: int, n_fake: int, subset_size: int, expected_size: int, capped: bool
) -> None:
    real, fake = _sets(n_real, n_fake, 4, seed=13)
    result = kid(real, fake, subsets=3, subset_size=subset_size, seed=0)
    assert result.subset_size == expected_size
    assert result.capped is capped
    assert result.subsets == 3


def test_kid_capped_smaller_set_is_used_whole() -> None:
    """Both sets of 15 and subset_size 100: capped to 15, so every subset is a whole set."""
    real, fake = _sets(15, 15, 5, seed=14)
    result = kid(real, fake, subsets=4, subset_size=100, seed=0)
    expected = kernel_distance(real, fake, num_subsets=1, max_subset_size=15)
    assert result.capped is True
    assert result.mean == pytest.approx(expected, rel=RTOL)


@pytest.mark.parametrize(("n_real", "n_fake"), [(1, 10), (10, 1), (0, 10), (1, 1)])
def test_kid_rejects_fewer_than_two(n_real: int, n_fake: int) -> None:
    real, fake = _sets(n_real, n_fake, 4, seed=15)
    with pytest.raises(ValueError):
        kid(real, fake, subsets=2, subset_size=10)


def test_kid_accepts_two() -> None:
    real, fake = _sets(2, 2, 3, seed=16)
    result = kid(real, fake, subsets=2, subset_size=10, seed=0)
    assert result.subset_size == 2 and result.capped is True
    assert result.mean == pytest.approx(_loop_mmd2(real.tolist(), fake.tolist()), rel=1e-12)


def test_kid_from_the_whole_sets_kernels_equals_kernels_per_subset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reading each subset's kernels out of the whole sets' gives the values of computing them
    per subset (the path for sets too large to hold their kernels), subset by subset."""
    real, fake = _sets(70, 50, 16, seed=13)
    whole = kid(real, fake, subsets=30, subset_size=40, seed=5)
    monkeypatch.setattr(kid_module, "WHOLE_KERNEL_BYTES", 0)
    per_subset = kid(real, fake, subsets=30, subset_size=40, seed=5)
    assert whole.mean == pytest.approx(per_subset.mean, rel=1e-12)
    assert whole.std == pytest.approx(per_subset.std, rel=1e-10)
