"""Feature jobs: the cached files hold the right arrays and record what they were made from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import write_images

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.extract import clip as clip_embed
from ckpt_eval.extract import inception
from ckpt_eval.extract.feature_jobs import (
    inception_features,
    model_features,
    model_set,
    model_status,
    organized,
)
from ckpt_eval.features.cache import load_features
from ckpt_eval.inputs.images import sha256_file
from ckpt_eval.inputs.manifest import build_manifest, read_manifest
from ckpt_eval.inputs.prompts import pair_prompts
from ckpt_eval.jsonio import read_json, write_json

try:  # tests/ as a package
    from .clip_fixture import PROJECTION_DIM, hub_offline
except ImportError:  # rootdir-less import (tests/ on sys.path, no __init__.py)
    from clip_fixture import PROJECTION_DIM, hub_offline

CPU = torch.device("cpu")
LONG_PROMPT = " ".join(f"word{i % 7} photograph" for i in range(100))  # 200 words, > 77 tokens


offline = pytest.fixture(hub_offline)


def _image_set(name: str, paths: list[Path], root: Path, on_bad_image: str) -> dict[str, Any]:
    """A set's `organize` parameter, as workflow/rules/common.smk's organize_param makes it."""
    images = [str(p) for p in paths]
    return {"name": name, "images": images, "root": str(root), "on_bad_image": on_bad_image}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Three images of one checkpoint, their manifest on disk and how they meet their prompts
    (the jobs' `pairing` parameter)."""
    root = tmp_path_factory.mktemp("features")
    samples = root / "samples"
    paths = write_images(samples / "step-10", 2, seed=5, size=(48, 40))
    paths += [write_images(root / "other", 1, seed=6, size=(30, 64))[0]]
    moved = samples / "step-10" / "img_002.png"
    paths[-1].rename(moved)
    paths[-1] = moved
    manifest = build_manifest("step-10", paths, samples)
    prompts = {
        "step-10/img_000.png": LONG_PROMPT,
        "step-10/img_001.png": "a photo of a cat",
        "step-10/img_002.png": LONG_PROMPT,
    }
    write_json(manifest, root / "manifest.json")
    pairing = {"prompts": prompts, "seeds": {}, "prompt_file": "prompts.csv", "fallback": None}
    return {
        "root": root,
        "manifest": root / "manifest.json",
        "pairing": pairing,
        "organize": _image_set("step-10", paths, samples, "error"),
    }


def test_a_feature_job_organizes_its_set_first(tmp_path: Path) -> None:
    """The first step of every feature job of a set: the sealed manifest organize always made
    (the Inception job writes it for the metrics and the report; a model extractor's job makes
    the same one for itself); a bad image stops it, naming the file, or is listed as skipped."""
    samples = tmp_path / "samples"
    paths = write_images(samples / "step-10", 3, seed=8, size=(40, 32))
    manifest = organized(_image_set("step-10", paths, samples, "error"), 2)
    assert manifest == build_manifest("step-10", paths, samples)
    out = tmp_path / "manifests" / "checkpoint_step-10.json"
    write_json(manifest, out)
    assert read_manifest(out) == manifest
    assert [image["sha256"] for image in manifest["images"]] == [
        sha256_file(p) for p in sorted(paths)
    ]

    paths[1].write_bytes(paths[1].read_bytes()[:60])  # truncated
    with pytest.raises(CkptEvalError) as err:
        organized(_image_set("step-10", paths, samples, "error"), 2)
    assert err.value.path == str(paths[1])
    manifest = organized(_image_set("step-10", paths, samples, "skip"), 1)
    assert [s["path"] for s in manifest["skipped"]] == [str(paths[1])]
    assert len(manifest["images"]) == 2


def test_a_model_job_that_computes_nothing_only_hashes_its_images(tmp_path: Path) -> None:
    """With no model (or the set left out) and on_bad_image: error, a model extractor's job
    hashes its images without decoding them: the same images, files and hashes as the decoding
    route, so the same feature file; a bad image is left to the Inception job, which decodes
    and stops the run. A job that computes, or one in skip mode, decodes as the Inception job."""
    samples = tmp_path / "samples"
    paths = write_images(samples / "step-10", 3, seed=9, size=(36, 30))
    status = tmp_path / "status.json"
    write_json({"available": False, "model": "m", "reason": "no model here"}, status)
    image_set = _image_set("step-10", paths, samples, "error")

    def listed(manifest: dict[str, Any]) -> list[tuple[str, str, str]]:
        return [(i["path"], i["file"], i["sha256"]) for i in manifest["images"]]

    hashed = model_set(image_set, status, 2)
    decoded = organized(image_set, 2)
    assert listed(hashed) == listed(decoded)
    assert "width" not in hashed["images"][0] and "width" in decoded["images"][0]
    files = {}
    for name, manifest in (("hashed", hashed), ("decoded", decoded)):
        files[name] = tmp_path / f"{name}.npz"
        model_features("clip", manifest, None, status, files[name], "cpu", 2)
    assert load_features(files["hashed"]) == load_features(files["decoded"])
    # the set left out (clip's real set with memorization.clip false): hashed only too
    write_json({"available": True, "model": "m", "reason": None}, status)
    assert "width" not in model_set(image_set, status, 1, enabled=False)["images"][0]
    assert "width" in model_set(image_set, status, 1)["images"][0]  # it computes: decoded

    paths[2].write_bytes(paths[2].read_bytes()[:50])  # truncated
    write_json({"available": False, "model": "m", "reason": "no model here"}, status)
    assert len(model_set(image_set, status, 2)["images"]) == 3  # the Inception job stops the run
    with pytest.raises(CkptEvalError):
        organized(image_set, 2)
    skip = model_set(_image_set("step-10", paths, samples, "skip"), status, 2)
    assert [s["path"] for s in skip["skipped"]] == [str(paths[2])]  # skip mode: decoded
    paths[0].unlink()
    with pytest.raises(CkptEvalError) as err:
        model_set(image_set, status, 2)
    assert err.value.path == str(paths[0])


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_inception_features_file(tmp_path: Path, checkpoint: dict[str, Any]) -> None:
    out = tmp_path / "inception" / "step-10.npz"
    inception_features(checkpoint["manifest"], out, None, "cpu", batch_size=2, num_workers=0)
    arrays, meta = load_features(out)
    manifest = read_json(checkpoint["manifest"])
    paths = [image["path"] for image in manifest["images"]]

    assert set(arrays) == {"inception"}
    features = arrays["inception"]
    assert features.shape == (3, inception.DIM) and features.dtype == np.float32
    assert np.isfinite(features).all()
    # the rows are the manifest's images, in order: the last image (the odd-sized one) alone
    # gives the last row (one forward pass only: Inception is slow on a CPU)
    layers, _ = inception.load_inception(inception.bundled_weights_path(), CPU)
    single = inception.extract([paths[2]], layers, CPU, batch_size=1, num_workers=0)
    np.testing.assert_allclose(features[2], single[0], rtol=1e-4, atol=1e-4)
    assert not np.allclose(features[0], features[2], rtol=1e-2, atol=1e-2)
    assert not np.allclose(features[1], features[2], rtol=1e-2, atol=1e-2)

    assert meta["set"] == "step-10"
    assert meta["image_sha256"] == [sha256_file(p) for p in paths]
    assert meta["weights_sha256"] == inception.BUNDLED_SHA256
    assert meta["weights_sha256"] == sha256_file(inception.bundled_weights_path())
    assert meta["weights_file"] == inception.bundled_weights_path().name
    assert meta["extractor"] == inception.EXTRACTOR_ID
    assert meta["preprocessing"] == inception.PREPROCESSING
    assert meta["device"] == "cpu"
    assert not list(out.parent.glob("*.tmp*"))  # written atomically, no temp file left


def test_inception_features_missing_weights(tmp_path: Path, checkpoint: dict[str, Any]) -> None:
    with pytest.raises(CkptEvalError) as info:
        inception_features(
            checkpoint["manifest"], tmp_path / "x.npz", str(tmp_path / "no.pt"), "cpu", 2, 0
        )
    assert "fid.inception_weights" in info.value.fix
    assert not (tmp_path / "x.npz").exists()


def test_clip_model_status_available(tmp_path: Path, tiny_clip: Path, offline: None) -> None:
    out = tmp_path / "status.json"
    model_status("clip", str(tiny_clip), True, "cpu", out)
    status = read_json(out)
    # the same keys as before the model jobs were generic (the report and provenance read them)
    assert set(status) == {
        "available",
        "reason",
        "model",
        "revision",
        "projection_dim",
        "weights_sha256",
    }
    assert status["available"] is True
    assert status["reason"] is None
    assert status["model"] == str(tiny_clip)
    assert status["projection_dim"] == PROJECTION_DIM
    # a folder has no hub revision: its weights' hash says which model the scores came from
    assert status["weights_sha256"] == clip_embed.folder_weights_sha256(tiny_clip)


def test_clip_model_status_optional_missing(tmp_path: Path, offline: None) -> None:
    out = tmp_path / "status.json"
    missing = str(tmp_path / "no-such-clip")
    model_status("clip", missing, False, "cpu", out)
    status = read_json(out)
    assert set(status) == {"available", "model", "reason"}
    assert status["available"] is False
    assert status["model"] == missing
    assert status["reason"].startswith("clip.required is false")
    assert missing in status["reason"]  # the CkptEvalError's message says which model


def test_clip_model_status_required_missing(tmp_path: Path, offline: None) -> None:
    out = tmp_path / "status.json"
    with pytest.raises(CkptEvalError) as info:
        model_status("clip", "nobody/no-such-clip", True, "cpu", out)
    assert "clip.required" in info.value.fix
    assert not out.exists()


NO_TORCH_STATUS = """
import json, sys
from ckpt_eval.extract.feature_jobs import model_status
model_status(sys.argv[1], sys.argv[2], False, "cpu", sys.argv[3])
print(json.dumps(sorted(m for m in ("torch", "transformers") if m in sys.modules)))
"""


@pytest.mark.parametrize("key", ["clip", "dinov2"])
@pytest.mark.parametrize("model", ["folder", "nobody/not-cached"])
def test_a_model_that_cannot_be_there_is_said_without_importing_torch(
    tmp_path: Path, key: str, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing folder, or a hub id not in the cache with the hub unreachable, is recorded in
    a fraction of a second (no torch, no transformers), with the error the full load gives."""
    import importlib
    import os
    import subprocess
    import sys

    from conftest import REPO

    from ckpt_eval.features.extractors import EXTRACTORS

    source = str(tmp_path / "no-such-model") if model == "folder" else model
    out = tmp_path / "status.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    env["HF_HOME"] = str(tmp_path / "hf")  # an empty cache
    done = subprocess.run(
        [sys.executable, "-c", NO_TORCH_STATUS, key, source, str(out)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(CkptEvalError) as info:  # the full load, torch and transformers imported
        importlib.import_module(EXTRACTORS[key].module).load(key, source, None, CPU)
    expected = f"{key}.required is false and the model could not be loaded: {info.value.what}"
    assert read_json(out)["reason"] == expected


def test_clip_features_unavailable(tmp_path: Path, checkpoint: dict[str, Any]) -> None:
    status = tmp_path / "status.json"
    write_json({"available": False, "model": "m", "reason": "no model here"}, status)
    out = tmp_path / "clip.npz"
    model_features("clip", checkpoint["manifest"], checkpoint["pairing"], status, out, "cpu", 2)
    arrays, meta = load_features(out)
    assert arrays == {}
    assert meta["available"] is False
    assert meta["reason"] == "no model here"
    assert meta["model"] == "m"
    manifest = read_json(checkpoint["manifest"])
    assert meta["image_sha256"] == [image["sha256"] for image in manifest["images"]]
    assert meta["set"] == "step-10"
    with np.load(out, allow_pickle=False) as data:
        assert data.files == ["meta"]
        assert json.loads(str(data["meta"]))["available"] is False


def test_an_image_without_a_prompt_stops_the_clip_job_even_with_no_model(
    tmp_path: Path, checkpoint: dict[str, Any]
) -> None:
    """The prompts are paired first: the error names the prompt file and the fix before any
    model is loaded (here there is none), and the fix (a fallback prompt) lets it run."""
    status = tmp_path / "status.json"
    write_json({"available": False, "model": "m", "reason": "no model here"}, status)
    prompts = dict(checkpoint["pairing"]["prompts"])
    del prompts["step-10/img_001.png"]
    pairing = {**checkpoint["pairing"], "prompts": prompts}
    out = tmp_path / "clip.npz"
    with pytest.raises(CkptEvalError) as info:
        model_features("clip", checkpoint["manifest"], pairing, status, out, "cpu", 2)
    assert "step-10/img_001.png" in info.value.what
    assert info.value.path == "prompts.csv" and "fallback_prompt" in info.value.fix
    assert not out.exists()
    model_features(
        "clip", checkpoint["manifest"], {**pairing, "fallback": "a photo"}, status, out, "cpu", 2
    )
    assert load_features(out)[1]["prompts"] == [LONG_PROMPT, "a photo", LONG_PROMPT]


def test_clip_features_with_tiny_model(
    tmp_path: Path, checkpoint: dict[str, Any], tiny_clip: Path, offline: None
) -> None:
    status = tmp_path / "status.json"
    model_status("clip", str(tiny_clip), True, "cpu", status)
    out = tmp_path / "clip.npz"
    model_features("clip", checkpoint["manifest"], checkpoint["pairing"], status, out, "cpu", 2)
    arrays, meta = load_features(out)
    # the job's way: the manifest it made itself, in memory (`organized`), gives the same file
    again = tmp_path / "clip-organized-in-job.npz"
    organized_here = organized(checkpoint["organize"], 2)
    model_features("clip", organized_here, checkpoint["pairing"], status, again, "cpu", 2)
    arrays_again, meta_again = load_features(again)
    assert meta_again == meta
    assert all(np.array_equal(arrays[k], arrays_again[k]) for k in arrays) and set(
        arrays_again
    ) == set(arrays)

    assert set(arrays) == {"image", "text"}
    for key in ("image", "text"):
        assert arrays[key].shape == (3, PROJECTION_DIM)
        assert arrays[key].dtype == np.float32
    manifest = read_json(checkpoint["manifest"])
    pairs = pair_prompts(manifest, **checkpoint["pairing"])
    net, processor, _ = clip_embed.load_clip(str(tiny_clip), CPU)
    paths = [image["path"] for image in manifest["images"]]
    prompts = [p["prompt"] for p in pairs["pairs"]]
    np.testing.assert_allclose(
        arrays["image"],
        clip_embed.embed_images(paths, net, processor, CPU, 3),
        rtol=1e-4,
        atol=1e-5,
    )
    np.testing.assert_allclose(
        arrays["text"],
        clip_embed.embed_texts(prompts, net, processor, CPU, 3),
        rtol=1e-4,
        atol=1e-5,
    )
    # rows 0 and 2 share the long prompt
    np.testing.assert_allclose(arrays["text"][0], arrays["text"][2], rtol=1e-4, atol=1e-5)

    assert meta["available"] is True and meta["reason"] is None
    assert meta["model"] == str(tiny_clip)
    assert meta["extractor"] == f"clip:{tiny_clip}"
    assert meta["device"] == "cpu"
    assert meta["image_sha256"] == [image["sha256"] for image in manifest["images"]]
    # the long prompt once, with its untruncated token count (start and end tokens included)
    tokens = len(processor.tokenizer.tokenize(LONG_PROMPT)) + 2
    assert tokens > 77
    assert meta["truncated"] == [{"prompt": LONG_PROMPT, "tokens": tokens}]


def test_clip_features_of_a_set_without_prompts(
    tmp_path: Path, checkpoint: dict[str, Any], tiny_clip: Path, offline: None
) -> None:
    """The real set (no pairs): image embeddings only; with memorization.clip false
    (enabled=False) no arrays, and the file says why."""
    status = tmp_path / "status.json"
    model_status("clip", str(tiny_clip), True, "cpu", status)
    out = tmp_path / "real.npz"
    model_features("clip", checkpoint["manifest"], None, status, out, "cpu", 2)
    arrays, meta = load_features(out)
    assert set(arrays) == {"image"} and arrays["image"].shape == (3, PROJECTION_DIM)
    assert "truncated" not in meta and meta["available"] is True

    off = tmp_path / "off.npz"
    model_features("clip", checkpoint["manifest"], None, status, off, "cpu", 2, enabled=False)
    arrays, meta = load_features(off)
    assert arrays == {}
    assert meta["available"] is False and meta["reason"] == "memorization.clip is false"


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_a_real_set_above_max_rows_keeps_a_subset_and_the_statistics_of_all(
    tmp_path: Path, checkpoint: dict[str, Any]
) -> None:
    from ckpt_eval.features.cache import inception_set
    from ckpt_eval.features.moments import kept_rows
    from ckpt_eval.metrics.fid import statistics

    whole = tmp_path / "whole.npz"
    inception_features(checkpoint["manifest"], whole, None, "cpu", batch_size=2, num_workers=0)
    part = tmp_path / "part.npz"
    inception_features(
        checkpoint["manifest"], part, None, "cpu", batch_size=2, num_workers=0, max_rows=2, seed=5
    )
    all_rows = load_features(whole)[0]["inception"]
    arrays, meta = load_features(part)
    streamed = inception_set(arrays)
    keep = kept_rows(3, 2, seed=5)
    assert streamed.count == 3 and np.array_equal(streamed.index, keep)
    np.testing.assert_array_equal(streamed.rows, all_rows[keep])
    mean, cov = statistics(all_rows)
    np.testing.assert_allclose(streamed.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(streamed.covariance, cov, rtol=1e-9, atol=1e-12)
    # a set within max_rows is written as before: its rows only
    assert set(load_features(whole)[0]) == {"inception"}
    assert inception_set(load_features(whole)[0]).index is None
    assert meta["image_sha256"] == load_features(whole)[1]["image_sha256"]
