"""CLIP score arithmetic: 100 * max(cos, 0) per image/prompt pair, and its summaries.

Comparing with torchmetrics' CLIPScore needs a CLIP model, so that check is not made here;
these tests pin the arithmetic against a direct float64 computation and hand-made cases.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ckpt_eval.metrics.clip_score import clip_scores, per_prompt, summarise


def _direct(image: np.ndarray, text: np.ndarray) -> list[float]:
    """Row by row in Python floats: 100 * max(a·b / (|a| |b|), 0)."""
    out = []
    for a, b in zip(image.tolist(), text.tolist(), strict=True):
        dot = math.fsum(p * q for p, q in zip(a, b, strict=True))
        norm_a = math.sqrt(math.fsum(p * p for p in a))
        norm_b = math.sqrt(math.fsum(q * q for q in b))
        out.append(100.0 * max(dot / (norm_a * norm_b), 0.0))
    return out


def test_matches_direct_float64_computation() -> None:
    rng = np.random.default_rng(0)
    # mostly positive correlation, some rows negative, float32 as the models output
    image = rng.normal(size=(64, 768)).astype(np.float32)
    text = (0.3 * image + rng.normal(size=(64, 768))).astype(np.float32)
    text[::5] *= -1.0
    scores = clip_scores(image, text)
    assert scores.dtype == np.float64
    assert scores.shape == (64,)
    expected = _direct(image.astype(np.float64), text.astype(np.float64))
    np.testing.assert_allclose(scores, expected, rtol=1e-12, atol=1e-12)
    assert (scores[::5] == 0.0).all()  # the negated rows
    assert (scores[1::5] > 0.0).all()


def test_hand_made_angles() -> None:
    image = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
    text = np.array([[2.0, 0.0], [0.0, 5.0], [-1.0, 0.0], [4.0, 3.0], [0.0, 7.0]])
    scores = clip_scores(image, text)
    # parallel -> 100, orthogonal -> 0, opposite -> 0 (clipped), cos = 24/25 -> 96,
    # 45 degrees -> 100 / sqrt(2)
    expected = [100.0, 0.0, 0.0, 96.0, 100.0 / math.sqrt(2.0)]
    np.testing.assert_allclose(scores, expected, rtol=1e-12, atol=1e-12)


def test_negative_cosine_gives_zero_not_negative() -> None:
    image = np.array([[1.0, 2.0, 3.0]])
    text = np.array([[-1.0, -2.0, -2.5]])
    assert clip_scores(image, text).tolist() == [0.0]


def test_scale_invariant_per_row() -> None:
    rng = np.random.default_rng(1)
    image, text = rng.normal(size=(8, 16)), rng.normal(size=(8, 16))
    scales = rng.uniform(0.01, 100.0, size=(8, 1))
    np.testing.assert_allclose(clip_scores(image * scales, text / scales), clip_scores(image, text))


def test_row_i_pairs_with_row_i_only() -> None:
    image = np.array([[1.0, 0.0], [0.0, 1.0]])
    text = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert clip_scores(image, text).tolist() == [100.0, 100.0]
    assert clip_scores(image, text[::-1]).tolist() == [0.0, 0.0]


def test_summarise_mean_and_population_std() -> None:
    stats = summarise(np.array([20.0, 24.0, 30.0, 26.0]))
    # mean 25; deviations -5, -1, 5, 1 -> population variance 52 / 4 = 13
    assert stats == {"mean": 25.0, "std": pytest.approx(math.sqrt(13.0)), "n": 4}
    assert isinstance(stats["mean"], float) and isinstance(stats["n"], int)


def test_summarise_single_score() -> None:
    assert summarise(np.array([31.5])) == {"mean": 31.5, "std": 0.0, "n": 1}


def test_per_prompt_groups_in_order_of_first_appearance() -> None:
    scores = np.array([10.0, 30.0, 20.0, 40.0, 33.0])
    prompts = ["a dog", "a cat", "a dog", "a boat", "a cat"]
    result = per_prompt(scores, prompts, 0.95)
    assert [r["prompt"] for r in result] == ["a dog", "a cat", "a boat"]
    assert {k: v for k, v in result[0].items() if k != "ci"} == {
        "prompt": "a dog",
        "mean": 15.0,
        "std": 5.0,
        "n": 2,
    }
    assert result[1]["mean"] == 31.5 and result[1]["std"] == 1.5 and result[1]["n"] == 2
    assert result[2] == {"prompt": "a boat", "mean": 40.0, "std": 0.0, "n": 1, "ci": None}


def test_per_prompt_interval_is_students_t() -> None:
    """Against textbook t quantiles (t(0.975, 1) = 12.7062, t(0.975, 4) = 2.7764,
    t(0.95, 4) = 2.1318): mean ± t · s / sqrt(n), s the sample std."""
    dog = per_prompt(np.array([10.0, 20.0]), ["d", "d"], 0.95)[0]["ci"]
    # s = 7.0711, s / sqrt(2) = 5: 15 ± 63.53
    assert dog == pytest.approx({"low": 15 - 63.531, "high": 15 + 63.531, "level": 0.95}, abs=1e-3)
    five = np.array([30.0, 32.0, 31.0, 35.0, 27.0])  # mean 31, s = sqrt(8.5) = 2.9155
    for level, quantile in ((0.95, 2.7764), (0.90, 2.1318)):
        ci = per_prompt(five, ["p"] * 5, level)[0]["ci"]
        half = quantile * 2.9155 / 5**0.5
        assert ci["low"] == pytest.approx(31 - half, abs=1e-3)
        assert ci["high"] == pytest.approx(31 + half, abs=1e-3)
        assert ci["level"] == level
    same = per_prompt(np.array([3.0, 3.0, 3.0]), ["p"] * 3, 0.95)[0]["ci"]
    assert same["low"] == same["high"] == 3.0


def test_per_prompt_rejects_length_mismatch() -> None:
    with pytest.raises(ValueError):
        per_prompt(np.array([1.0, 2.0]), ["only one"], 0.95)


def test_per_prompt_empty() -> None:
    assert per_prompt(np.array([]), [], 0.95) == []
