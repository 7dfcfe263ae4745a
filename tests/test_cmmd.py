"""CMMD: against the definition written out in float64, against google-research's `distance.py`
re-implemented literally (with its batching), its replicates against recomputation on the
resampled rows, and end to end through the registry (JSON, CSV, charts, both reports).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from checkpoint_eval import config, evaluate_arrays, evaluate_small, through_every_output, write_png

from ckpt_eval.analysis.bootstrap import resample_counts
from ckpt_eval.analysis.checkpoint import analysis_settings
from ckpt_eval.analysis.consolidate import csv_columns
from ckpt_eval.metrics.cmmd import MEASURE, cmmd, cmmd_replicates
from ckpt_eval.metrics.registry import measures, quantity
from ckpt_eval.report.prose import notice_text

RTOL = 1e-10


def _embeddings(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """Raw (unnormalised) embeddings: a common direction plus noise, at varied norms."""
    rng = np.random.default_rng(seed)
    base = np.linspace(1.0, 2.0, d)
    rows = base + rng.normal(size=(n, d)) + shift * np.sin(np.arange(d))
    return rows * rng.uniform(0.5, 20.0, size=(n, 1))


def _written_out(real: np.ndarray, fake: np.ndarray, sigma: float = 10.0) -> float:
    """1000 (mean K_xx + mean K_yy - 2 mean K_xy), k = exp(-||x-y||²/(2σ²)), unit rows, every
    pair (diagonals included), one pair at a time in Python floats."""

    def unit(rows: np.ndarray) -> list[list[float]]:
        out = []
        for row in rows.tolist():
            norm = math.sqrt(sum(v * v for v in row))
            out.append([v / norm for v in row])
        return out

    def k(a: list[float], b: list[float]) -> float:
        return math.exp(-sum((p - q) ** 2 for p, q in zip(a, b, strict=True)) / (2 * sigma**2))

    def mean_k(a: list[list[float]], b: list[list[float]]) -> float:
        return sum(k(p, q) for p in a for q in b) / (len(a) * len(b))

    x, y = unit(real), unit(fake)
    return 1000.0 * (mean_k(x, x) + mean_k(y, y) - 2.0 * mean_k(x, y))


# --- google-research/google-research cmmd, re-implemented literally in numpy -------------------
_SIGMA = 10
_SCALE = 1000


def _reference_mmd(x: np.ndarray, y: np.ndarray) -> float:
    """`cmmd/distance.py`'s mmd(x, y), jnp -> np, line for line."""
    x_sqnorms = np.diag(np.matmul(x, x.T))
    y_sqnorms = np.diag(np.matmul(y, y.T))
    gamma = 1 / (2 * _SIGMA**2)
    k_xx = np.mean(
        np.exp(
            -gamma
            * (-2 * np.matmul(x, x.T) + np.expand_dims(x_sqnorms, 1) + np.expand_dims(x_sqnorms, 0))
        )
    )
    k_xy = np.mean(
        np.exp(
            -gamma
            * (-2 * np.matmul(x, y.T) + np.expand_dims(x_sqnorms, 1) + np.expand_dims(y_sqnorms, 0))
        )
    )
    k_yy = np.mean(
        np.exp(
            -gamma
            * (-2 * np.matmul(y, y.T) + np.expand_dims(y_sqnorms, 1) + np.expand_dims(y_sqnorms, 0))
        )
    )
    return float(_SCALE * (k_xx + k_yy - 2 * k_xy))


def _reference_embeddings(raw: np.ndarray, batch_size: int) -> np.ndarray:
    """What `io_util.compute_embeddings_for_dir` returns for a folder with these embeddings, in
    file order: unit rows (the CLIP model's output is normalised) in whole batches only, as
    `dataset.batch(batch_size, drop_remainder=True)` yields them."""
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    return unit[: len(unit) // batch_size * batch_size]


def _reference_cmmd(real: np.ndarray, fake: np.ndarray, batch_size: int) -> float:
    """main.compute_cmmd(ref_dir, eval_dir, batch_size): mmd(ref_embs, eval_embs)."""
    return _reference_mmd(
        _reference_embeddings(real, batch_size), _reference_embeddings(fake, batch_size)
    )


# --- the statistic -------------------------------------------------------------------------------


@pytest.mark.parametrize(("n_real", "n_fake", "d"), [(12, 9, 5), (20, 20, 16), (7, 15, 3)])
def test_matches_the_written_out_definition(n_real: int, n_fake: int, d: int) -> None:
    real = _embeddings(n_real, d, seed=1)
    fake = _embeddings(n_fake, d, seed=2, shift=0.8)
    value = cmmd(real, fake)
    assert value == pytest.approx(_written_out(real, fake), rel=RTOL)
    assert value > 0.05  # the sets differ: not a comparison of two zeros


def test_matches_google_research_distance_py() -> None:
    """With a batch size that divides both sets (nothing dropped) the reference's value is ours."""
    real = _embeddings(64, 32, seed=3)
    fake = _embeddings(48, 32, seed=4, shift=0.5)
    assert cmmd(real, fake) == pytest.approx(_reference_cmmd(real, fake, 16), rel=RTOL)
    # the reference's own convention, float32 as jax computes by default, agrees to ~1e-4
    real32, fake32 = real.astype(np.float32), fake.astype(np.float32)
    assert _reference_cmmd(real32, fake32, 16) == pytest.approx(cmmd(real, fake), rel=1e-3)


def test_every_image_counts_unlike_the_references_drop_remainder() -> None:
    """50 images at batch size 32: the reference scores the first 32 of each folder (18 of the
    samples are never seen), this module all 50; the two numbers differ (here 0.608 with all 50,
    0.590 on the reference's 32: 3%, as large as the differences between checkpoints can be)."""
    real = _embeddings(50, 24, seed=5)
    fake = _embeddings(50, 24, seed=6, shift=0.6)
    ours = cmmd(real, fake)
    reference = _reference_cmmd(real, fake, 32)
    assert len(_reference_embeddings(fake, 32)) == 32
    assert reference == pytest.approx(cmmd(real[:32], fake[:32]), rel=RTOL)
    assert ours == pytest.approx(_reference_cmmd(real, fake, 50), rel=RTOL)
    assert ours == pytest.approx(_reference_cmmd(real, fake, 1), rel=RTOL)
    assert abs(ours - reference) > 0.01 * ours


def test_properties() -> None:
    real = _embeddings(15, 8, seed=7)
    fake = _embeddings(11, 8, seed=8, shift=1.0)
    assert cmmd(real, real) == pytest.approx(0.0, abs=1e-12)
    assert cmmd(real, fake) == pytest.approx(cmmd(fake, real), rel=RTOL)
    # normalised first: the scale of each row does not matter
    scaled = fake * np.arange(1, 12)[:, None]
    assert cmmd(real, scaled) == pytest.approx(cmmd(real, fake), rel=RTOL)
    # biased: a set against itself plus a copy of one row is not zero
    assert cmmd(real, np.vstack([real, real[:1]])) > 0


def test_rejects_zero_and_mismatched_embeddings() -> None:
    real = _embeddings(5, 4, seed=9)
    with pytest.raises(ValueError, match="zero"):
        cmmd(real, np.zeros((3, 4)))
    with pytest.raises(ValueError, match="dimensions differ"):
        cmmd(real, _embeddings(5, 3, seed=9))
    with pytest.raises(ValueError, match="NaN"):
        cmmd(real, np.full((2, 4), np.nan))


def test_replicates_equal_recomputation_on_the_resampled_rows() -> None:
    real = _embeddings(40, 12, seed=10)
    fake = _embeddings(25, 12, seed=11, shift=0.7)
    counts = resample_counts(25, 30, np.random.default_rng(0))
    # 0/1 subsets of several sizes, as FID-infinity style callers use, and a tiny pair
    subsets = np.zeros((4, 25))
    for row, size in zip(subsets, (2, 7, 13, 25), strict=True):
        row[np.random.default_rng(size).choice(25, size, replace=False)] = 1.0
    for c in (counts, subsets):
        reps = cmmd_replicates(real, fake, c)
        explicit = [cmmd(real, np.repeat(fake, c[b].astype(int), axis=0)) for b in range(len(c))]
        np.testing.assert_allclose(reps, explicit, rtol=1e-9)
    # all-ones counts are the point estimate; doubled counts too (the biased statistic)
    ones = np.ones((2, 25))
    ones[1] *= 2
    np.testing.assert_allclose(cmmd_replicates(real, fake, ones), cmmd(real, fake), rtol=1e-10)
    with pytest.raises(ValueError, match="counts"):
        cmmd_replicates(real, fake, np.eye(25)[:2])


# --- through the registry ------------------------------------------------------------------------


def _config(**extra: Any) -> dict[str, Any]:
    return config(
        bootstrap={"resamples": 200},
        kid={"subsets": 5, "subset_size": 10},
        ranking={"weights": {"fid": 0.5, "cmmd": 0.5}},
        **extra,
    )


def test_registry_lists_cmmd() -> None:
    assert "cmmd" in [m.key for m in measures()]
    q = quantity("cmmd")
    assert (q.better, q.point, q.interval, q.table, q.chart) == (
        "lower",
        "cmmd",
        "cmmd_ci",
        "main",
        True,
    )
    assert q.compare and q.rankable and not q.anchor


def test_end_to_end_json_csv_charts_reports(tmp_path: Path) -> None:
    run_config = _config(cmmd={"enabled": True})
    settings = analysis_settings(run_config)
    rng = np.random.default_rng(0)
    real = rng.normal(size=(30, 8))
    real_clip = _embeddings(30, 16, seed=20)
    png = write_png(tmp_path)
    rows, replicates = [], {}
    # the CLIP embeddings drift further from the real set: step-100 best, step-300 worst
    for name, shift in (("step-100", 0.0), ("step-200", 1.5), ("step-300", 3.0)):
        fake = rng.normal(size=(20, 8))
        emb = _embeddings(20, 16, seed=21 + int(shift * 10), shift=shift)
        row, reps = evaluate_arrays(
            name,
            fake,
            real,
            settings,
            image=png,
            prompts=[f"prompt {k % 4}" for k in range(20)],
            features={"cmmd": {"image": emb}},
            real_features={"cmmd": {"image": real_clip}},
            status={"cmmd": {"available": True, "reason": None, "truncated": []}},
        )
        assert row["cmmd"] == pytest.approx(_written_out(real_clip, emb), rel=RTOL)
        assert row["cmmd_ci"]["low"] < row["cmmd"] < row["cmmd_ci"]["high"]
        assert len(reps["cmmd"]) == 200
        assert not [n for n in row["notices"] if n["code"].startswith("cmmd")]
        rows.append(row)
        replicates[name] = reps
    out = through_every_output(rows, replicates, run_config, tmp_path)
    by_name = out.by_name
    assert out.result["ranking"]["weights_used"]["metrics"] == ["fid", "cmmd"]
    assert by_name["step-300"]["vs_top"]["cmmd"]["significant"]
    names = [c for c, _ in csv_columns()]
    assert "cmmd" in names and "cmmd_ci_low" in names
    assert [float(r["cmmd"]) for r in out.table] == pytest.approx(
        [by_name[n]["cmmd"] for n in ("step-100", "step-200", "step-300")]
    )
    assert out.pngs["cmmd"].startswith(b"\x89PNG")
    for text in (out.markdown, out.html):
        assert "CMMD" in text and "CMMD − top" in text
        assert "σ = 10" in text and "openai/clip-vit-large-patch14-336" in text
    assert f"{by_name['step-100']['cmmd']:.3f}" in out.markdown


def _one(status: dict[str, Any], features: dict[str, Any], real_features: dict[str, Any]):
    settings = analysis_settings(_config())
    return evaluate_small(
        settings, 1, status=status, features=features, real_features=real_features
    )


def test_off_is_quiet_and_unavailable_says_why() -> None:
    row, reps = _one({}, {}, {})
    assert row["cmmd"] is None and row["cmmd_ci"] is None and "cmmd" not in reps
    assert not [n for n in row["notices"] if n["code"].startswith("cmmd")]

    status = {
        "cmmd": {
            "available": False,
            "reason": "no local copy of openai/clip-vit-large-patch14-336 (offline).",
        }
    }
    row, reps = _one(status, {"cmmd": {}}, {"cmmd": {}})
    assert row["cmmd"] is None and row["cmmd_ci"] is None and "cmmd" not in reps
    notice = {
        "code": "cmmd.unavailable",
        "reason": "no local copy of openai/clip-vit-large-patch14-336 (offline)",
    }
    assert notice in row["notices"]
    assert (
        "CMMD not computed: no local copy of openai/clip-vit-large-patch14-336 (offline)."
        in row["warnings"]
    )
    assert notice_text(notice) in row["warnings"]

    # extracted for the samples but not for the real set: said, not zero
    ok = {"cmmd": {"available": True, "reason": None}}
    row, _ = _one(ok, {"cmmd": {"image": _embeddings(12, 4, seed=1)}}, {})
    assert row["cmmd"] is None
    assert {"code": "cmmd.unavailable", "reason": "no CMMD features of the real set"} in row[
        "notices"
    ]


def test_methodology_only_when_enabled() -> None:
    assert MEASURE.describe(_config()) == []
    ((term, text),) = MEASURE.describe({**_config(), "cmmd": {"enabled": True}})
    assert term == "CMMD" and "openai/clip-vit-large-patch14-336" in text and "σ = 10" in text
    ((_, text),) = MEASURE.describe({**_config(), "cmmd": {"enabled": True, "model": "/m/clip"}})
    assert "/m/clip" in text
