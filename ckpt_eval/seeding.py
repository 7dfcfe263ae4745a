"""Seeded random streams, one per purpose, so that a number does not depend on what else ran."""

from __future__ import annotations

import zlib

import numpy as np


def stream(seed: int, *keys: str) -> np.random.Generator:
    """A Generator for one purpose (a checkpoint's resamples, a pair's comparison) under `seed`.

    crc32 of each key goes into the SeedSequence's spawn key: stable across processes and Python
    versions (unlike `hash`), and independent of the order in which checkpoints are processed.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    spawn_key = tuple(zlib.crc32(key.encode("utf-8")) for key in keys)
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=spawn_key))
