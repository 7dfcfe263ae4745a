"""The cached-feature .npz format: pickle-free round trip, atomic write, mismatch and corruption."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.features.cache import check_matches, load_features, save_features

META = {
    "extractor": "inception-v3-tf-2015-12-05/pool3",
    "image_sha256": ["aa" * 32, "bb" * 32, "cc" * 32],
    "weights_sha256": "7f" * 32,
    "preprocessing": "clean, ünïcode ✓",
    "nested": {"list": [1, 2.5, None, True], "empty": {}},
}


def arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "features": rng.standard_normal((3, 2048)).astype(np.float32),
        "ids": np.array([3, 1, 2], dtype=np.int64),
        "empty": np.zeros((0, 5), dtype=np.float64),
    }


def test_round_trip_preserves_arrays_and_meta(tmp_path: Path) -> None:
    path = tmp_path / "feats" / "step-100.npz"
    saved = arrays()
    save_features(path, saved, META)
    loaded, meta = load_features(path)
    assert meta == META
    assert set(loaded) == set(saved)
    for key, value in saved.items():
        assert loaded[key].dtype == value.dtype
        assert loaded[key].shape == value.shape
        np.testing.assert_array_equal(loaded[key], value)


def test_file_loads_without_pickle(tmp_path: Path) -> None:
    path = tmp_path / "f.npz"
    save_features(path, arrays(), META)
    # Independent read with numpy's safe mode: every member must be a plain (non-object) array.
    with np.load(path, allow_pickle=False) as data:
        assert set(data.files) == {"meta", "features", "ids", "empty"}
        for key in data.files:
            assert data[key].dtype != object
        assert data["meta"].dtype.kind == "U"


def test_no_temp_file_left_and_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "f.npz"
    save_features(path, arrays(), META)
    assert [p.name for p in tmp_path.iterdir()] == ["f.npz"]
    save_features(path, {"features": np.ones((1, 2), np.float32)}, {"image_sha256": ["x"]})
    assert [p.name for p in tmp_path.iterdir()] == ["f.npz"]
    loaded, meta = load_features(path)
    assert set(loaded) == {"features"}
    assert meta == {"image_sha256": ["x"]}


def manifest(hashes: list[str]) -> dict:
    return {
        "name": "step-100",
        "images": [{"file": f"{i}.png", "sha256": h} for i, h in enumerate(hashes)],
    }


def test_check_matches_accepts_same_images_in_order() -> None:
    check_matches(META, manifest(META["image_sha256"]), "f.npz")


@pytest.mark.parametrize(
    "hashes",
    [
        ["aa" * 32, "bb" * 32, "dd" * 32],  # one image changed
        ["bb" * 32, "aa" * 32, "cc" * 32],  # same images, other order
        ["aa" * 32, "bb" * 32],  # one image fewer
        ["aa" * 32, "bb" * 32, "cc" * 32, "dd" * 32],  # one image more
    ],
)
def test_check_matches_rejects_other_images(hashes: list[str]) -> None:
    with pytest.raises(CkptEvalError) as info:
        check_matches(META, manifest(hashes), "cache/f.npz")
    assert "cache/f.npz" in str(info.value)


def test_check_matches_rejects_meta_without_hashes() -> None:
    with pytest.raises(CkptEvalError):
        check_matches({"extractor": "x"}, manifest(["aa" * 32]), "f.npz")


def test_garbage_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "f.npz"
    path.write_bytes(b"garbage, not an npz" * 10)
    with pytest.raises(CkptEvalError) as info:
        load_features(path)
    assert str(path) in str(info.value)


def test_empty_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "f.npz"
    path.write_bytes(b"")
    with pytest.raises(CkptEvalError):
        load_features(path)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(CkptEvalError):
        load_features(tmp_path / "absent.npz")


def test_npz_without_meta_raises(tmp_path: Path) -> None:
    path = tmp_path / "f.npz"
    np.savez(path, features=np.ones((2, 2)))
    with pytest.raises(CkptEvalError):
        load_features(path)


def test_meta_that_is_not_json_raises(tmp_path: Path) -> None:
    path = tmp_path / "f.npz"
    np.savez(path, meta=np.array("{not json"), features=np.ones((2, 2)))
    with pytest.raises(CkptEvalError):
        load_features(path)


def test_truncated_npz_raises(tmp_path: Path) -> None:
    path = tmp_path / "f.npz"
    save_features(path, arrays(), META)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CkptEvalError):
        load_features(path)


def test_bit_flipped_npz_raises(tmp_path: Path) -> None:
    path = tmp_path / "f.npz"
    save_features(path, arrays(), META)
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside the features array's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(CkptEvalError):
        load_features(path)


def test_a_refused_file_is_removed_and_nothing_else(tmp_path: Path) -> None:
    stale = tmp_path / "stale.npz"
    kept = tmp_path / "kept.npz"
    for path in (stale, kept):
        save_features(path, {"features": np.zeros((3, 2), np.float32)}, META)
    check_matches(META, manifest(META["image_sha256"]), kept, {"extractor": META["extractor"]})
    with pytest.raises(CkptEvalError) as info:
        check_matches(META, manifest(META["image_sha256"]), stale, {"extractor": "other"})
    assert f"its extractor is {META['extractor']!r}, expected 'other'" in info.value.what
    assert "removed without being used" in info.value.what
    assert not stale.exists() and kept.exists()
