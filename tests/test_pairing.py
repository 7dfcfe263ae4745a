"""Pairing keys: which samples of two checkpoints are the same draw, and shared resamples."""

from __future__ import annotations

import numpy as np

from ckpt_eval.analysis.pairing import counts_by_key, key_set, pairing_keys, pairing_kind


def test_keys_number_each_prompts_images_in_order_or_use_the_seed() -> None:
    rows = [{"prompt": p} for p in ["a", "b", "a", "a", "b"]]
    assert pairing_keys(rows) == [
        "a\x1fimage 0",
        "b\x1fimage 0",
        "a\x1fimage 1",
        "a\x1fimage 2",
        "b\x1fimage 1",
    ]
    assert pairing_kind(rows) == "prompt and position"
    seeded = [{"prompt": "a", "seed": 7}, {"prompt": "a", "seed": 3}, {"prompt": "a", "seed": 7}]
    # a seed repeated within a prompt keeps the keys unique
    assert pairing_keys(seeded) == ["a\x1fseed 7", "a\x1fseed 3", "a\x1fseed 7\x1f1"]
    assert pairing_kind(seeded) == "prompt and seed"
    assert pairing_kind(seeded + rows) == "prompt and position"


def test_key_set_ignores_order_and_tells_sets_apart() -> None:
    keys = pairing_keys([{"prompt": p} for p in "abcab"])
    assert key_set(keys) == key_set(list(reversed(keys)))
    assert key_set(keys) != key_set(keys[:-1])


def test_counts_follow_the_keys_whatever_the_file_order() -> None:
    """Two checkpoints with the same keys in different file orders get, for each key, the same
    count in every resample: replicate b of either is computed on the same pairs."""
    keys_a = ["k1", "k2", "k3", "k4"]
    keys_b = ["k3", "k1", "k4", "k2"]
    drawn = np.arange(12, dtype=float).reshape(3, 4)  # columns = sorted keys k1..k4
    a, b = counts_by_key(keys_a, drawn), counts_by_key(keys_b, drawn)
    for i, key in enumerate(keys_a):
        np.testing.assert_array_equal(a[:, i], b[:, keys_b.index(key)])
    np.testing.assert_array_equal(a, drawn)
