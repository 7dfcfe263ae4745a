"""One checkpoint's evaluation (`evaluate` on arrays, `checkpoint_metrics` on files) on synthetic
features, checked against direct sums."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from checkpoint_eval import checkpoint_data, codes, evaluate_features, notice, settings
from cleanfid.fid import frechet_distance as cleanfid_frechet
from references import fid_from_features

from ckpt_eval.analysis.checkpoint import checkpoint_metrics
from ckpt_eval.config import config_hash
from ckpt_eval.errors import CkptEvalError
from ckpt_eval.extract.inception import fingerprint as inception_fingerprint
from ckpt_eval.features.cache import load_features, save_features
from ckpt_eval.inputs.manifest import sealed
from ckpt_eval.inputs.prompts import pair_prompts
from ckpt_eval.jsonio import read_json, write_json
from ckpt_eval.metrics import fid as fid_metric
from ckpt_eval.metrics.clip_score import clip_scores
from ckpt_eval.provenance import package_versions

D = 16  # feature width: small keeps FID full rank and fast; the checks do not depend on 2048


def _manifest(
    name: str,
    n: int,
    sizes: list[tuple[int, int]] | None = None,
    notes: list[str | None] | None = None,
    skipped: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    sizes = sizes or [(64, 64)] * n
    notes = notes or [None] * n
    return {
        "name": name,
        "root": "/samples",
        "images": [
            {
                "path": f"/samples/{name}/img_{i:04d}.png",
                "file": f"{name}/img_{i:04d}.png",
                "sha256": f"{name}-{i:04d}".encode().hex().ljust(64, "0")[:64],
                "width": sizes[i][0],
                "height": sizes[i][1],
                "mode": "RGB",
                "note": notes[i],
            }
            for i in range(n)
        ],
        "skipped": skipped or [],
    }


def _pairs(manifest: dict[str, Any], prompts: list[str], fallback: list[bool] | None = None):
    fallback = fallback or [False] * len(prompts)
    pairs = [
        {"file": image["file"], "prompt": prompt, "fallback": fb}
        for image, prompt, fb in zip(manifest["images"], prompts, fallback, strict=True)
    ]
    return {
        "name": manifest["name"],
        "pairs": pairs,
        "fallback_count": sum(fallback),
        "prompts_without_image": [],
    }


def _features(n_real: int, n_fake: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n_real, D)).astype(np.float32)
    fake = rng.normal(0.3, 1.2, size=(n_fake, D)).astype(np.float32)
    return real, fake


def _direct_kid(real, fake, subsets: int, size: int, seed: int) -> tuple[float, float]:
    """Same seeded subsets as documented (choice without replacement, real then fake)."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = np.asarray(real, np.float64)[rng.choice(len(real), size, replace=False)]
        y = np.asarray(fake, np.float64)[rng.choice(len(fake), size, replace=False)]
        d = x.shape[1]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        off = ~np.eye(size, dtype=bool)
        values.append(
            kxx[off].mean() + kyy[off].mean() - 2 * kxy.mean()  # unbiased MMD²
        )
    return float(np.mean(values)), float(np.std(values))


NO_CLIP = {"available": False, "reason": "clip.required is false and the model is missing"}


@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")
def test_fid_and_kid_from_features() -> None:
    real, fake = _features(40, 30)
    manifest = _manifest("step-1500", 30)
    pairs = _pairs(manifest, ["p"] * 30)
    result = evaluate_features(manifest, pairs, real, fake, NO_CLIP, 7, 20, seed=3)

    assert result["name"] == "step-1500"
    assert result["step"] == 1500 and result["epoch"] is None
    assert result["n_images"] == 30 and result["n_real"] == 40
    assert result["fid"] == fid_from_features(real, fake)
    # independent check: clean-fid's Fréchet distance (scipy sqrtm) on float64 statistics
    r64, f64 = real.astype(np.float64), fake.astype(np.float64)
    expected_fid = cleanfid_frechet(
        r64.mean(0), np.cov(r64, rowvar=False), f64.mean(0), np.cov(f64, rowvar=False)
    )
    assert result["fid"] == pytest.approx(expected_fid, rel=1e-6)
    assert result["fid"] > 1.0  # the sets differ

    mean, std = _direct_kid(real, fake, 7, 20, seed=3)
    assert result["kid_mean"] == pytest.approx(mean, rel=1e-9)
    assert result["kid_std"] == pytest.approx(std, rel=1e-9)
    assert result["kid_subsets"] == 7 and result["kid_subset_size"] == 20
    # the seed matters: another seed draws other subsets (and other resamples)
    other = evaluate_features(manifest, pairs, real, fake, NO_CLIP, 7, 20, seed=4)
    assert other["kid_mean"] != result["kid_mean"]
    assert other["fid"] == result["fid"]
    assert other["fid_ci"] != result["fid_ci"]

    # 30 < 2048 images: the small-N notice, not the capped-KID one (20 <= 30)
    assert result["notices"] == [{"code": "fid.small_n", "n": 30, "rank": 29, "dim": 2048}]
    (warning,) = result["warnings"]
    assert "30 images" in warning and "rank at most 29" in warning and "2048" in warning


def test_kid_capped_warning() -> None:
    real, fake = _features(40, 12, seed=1)
    manifest = _manifest("step-2", 12)
    result = evaluate_features(
        manifest, _pairs(manifest, ["p"] * 12), real, fake, NO_CLIP, 5, 1000, 0
    )
    assert result["kid_subset_size"] == 12
    mean, std = _direct_kid(real, fake, 5, 12, seed=0)
    assert result["kid_mean"] == pytest.approx(mean, rel=1e-9)
    assert result["kid_std"] == pytest.approx(std, rel=1e-9)
    assert codes(result) == ["fid.small_n", "kid.capped"]
    capped = notice(result, "kid.capped")
    assert (capped["size"], capped["configured"]) == (12, 1000)
    assert "12 images" in capped["text"] and "kid.subset_size=1000" in capped["text"]


def test_small_n_notice_below_2048_images_only() -> None:
    """The FID metric's own notice at the boundary, then a whole evaluation of 2048 images."""
    rng = np.random.default_rng(5)
    real = rng.normal(size=(2048, 4))
    for n, expected in (
        (2047, [("fid.small_n", {"n": 2047, "rank": 2046, "dim": 2048})]),
        (2048, []),
    ):
        manifest = _manifest("step-9", n)
        data = checkpoint_data(
            manifest, _pairs(manifest, ["p"] * n), real, real[:n], NO_CLIP, settings()
        )
        outcome = fid_metric.MEASURE.compute(data)
        assert [(x.code, dict(x.params)) for x in outcome.notices] == expected

    fake = rng.normal(size=(2048, 4))
    manifest = _manifest("step-9", 2048)
    result = evaluate_features(
        manifest,
        _pairs(manifest, ["p"] * 2048),
        real,
        fake,
        NO_CLIP,
        1,
        2048,
        0,
        # an FID replicate of 2048 images costs a 2048 x 2048 eigendecomposition: 2 resamples
        resamples=2,
        # in 4 dimensions every sample has a real one within cosine 0.95: screen exact copies
        memorization={"threshold": 1.0},
    )
    assert result["notices"] == [] and result["warnings"] == []
    assert result["kid_subset_size"] == 2048
    assert result["fid"] == pytest.approx(fid_from_features(real, fake))
    assert result["fid_ci"] is not None and result["prdc"] is not None


def test_single_image_is_unranked() -> None:
    real, fake = _features(10, 1)
    manifest = _manifest("final", 1)
    result = evaluate_features(manifest, _pairs(manifest, ["p"]), real, fake, NO_CLIP, 5, 10, 0)
    assert result["fid"] is None
    assert result["kid_mean"] is None and result["kid_std"] is None
    assert result["kid_subsets"] == 0 and result["kid_subset_size"] == 0
    assert result["step"] is None and result["epoch"] is None
    assert result["fid_ci"] is None and result["kid_ci"] is None and result["clip_ci"] is None
    assert result["prdc"] is None and result["fid_infinity"] is None
    # one notice: no bootstrap, PRDC or FID-infinity notice on top of the unranked one
    assert result["notices"] == [{"code": "fid.too_few", "n": 1}]
    (warning,) = result["warnings"]
    assert "has 1 and is unranked" in warning


def test_clip_available_per_image_and_per_prompt() -> None:
    rng = np.random.default_rng(7)
    real, fake = _features(20, 6)
    image = rng.normal(size=(6, 8)).astype(np.float32)
    text = (image + rng.normal(scale=0.8, size=(6, 8))).astype(np.float32)
    text[4] = -image[4]  # one negative cosine: clipped to 0
    prompts = ["a cat", "a dog", "a cat", "<b>x</b>", "a dog", "a cat"]
    manifest = _manifest("e000003", 6)
    truncated = [{"prompt": "long", "tokens": 90}]
    clip = {"available": True, "reason": None, "image": image, "text": text, "truncated": truncated}
    result = evaluate_features(manifest, _pairs(manifest, prompts), real, fake, clip, 3, 6, 0)

    assert result["epoch"] == 3 and result["step"] is None
    expected = clip_scores(image, text)
    # and by hand, row by row
    for i in range(6):
        a, b = image[i].astype(np.float64), text[i].astype(np.float64)
        cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        assert expected[i] == pytest.approx(100 * max(cos, 0.0), rel=1e-12)
    assert expected[4] == 0.0
    scores = [row["clip_score"] for row in result["per_image"]]
    assert scores == pytest.approx(expected.tolist(), rel=1e-12)
    assert [row["file"] for row in result["per_image"]] == [i["file"] for i in manifest["images"]]
    assert [row["prompt"] for row in result["per_image"]] == prompts
    assert all(isinstance(s, float) for s in scores)

    assert result["clip_available"] is True and result["clip_reason"] is None
    assert result["clip_score_mean"] == pytest.approx(sum(scores) / 6)
    mean = sum(scores) / 6
    assert result["clip_score_std"] == pytest.approx(
        math.sqrt(sum((s - mean) ** 2 for s in scores) / 6)
    )
    groups = result["clip_per_prompt"]
    assert [g["prompt"] for g in groups] == ["a cat", "a dog", "<b>x</b>"]  # first appearance
    by_prompt = {g["prompt"]: g for g in groups}
    cat = [scores[0], scores[2], scores[5]]
    assert by_prompt["a cat"]["n"] == 3
    assert by_prompt["a cat"]["mean"] == pytest.approx(sum(cat) / 3)
    assert by_prompt["a cat"]["std"] == pytest.approx(float(np.std(cat)))
    assert by_prompt["a dog"]["n"] == 2
    assert by_prompt["a dog"]["mean"] == pytest.approx((scores[1] + scores[4]) / 2)
    assert by_prompt["<b>x</b>"] == {
        "prompt": "<b>x</b>",
        "mean": scores[3],
        "std": 0.0,
        "n": 1,
        "ci": None,  # one image: no interval
    }
    assert by_prompt["a cat"]["ci"]["level"] == 0.95  # the run's bootstrap.level
    assert result["truncated_prompts"] == truncated


def test_clip_unavailable() -> None:
    real, fake = _features(20, 4)
    manifest = _manifest("step-10", 4)
    result = evaluate_features(
        manifest, _pairs(manifest, list("abcd")), real, fake, NO_CLIP, 2, 4, 0
    )
    assert result["clip_available"] is False
    assert result["clip_reason"] == NO_CLIP["reason"]
    assert result["clip_score_mean"] is None and result["clip_score_std"] is None
    assert result["clip_per_prompt"] == [] and result["truncated_prompts"] == []
    assert [row["clip_score"] for row in result["per_image"]] == [None] * 4
    assert [row["prompt"] for row in result["per_image"]] == list("abcd")
    assert result["fid"] is not None  # FID/KID do not depend on CLIP
    assert set(result["memorization"]) == {"inception", "flag_share", "flagged"}


def test_fallback_sizes_conversions_skipped_and_duplicates() -> None:
    real, fake = _features(20, 5)
    sizes = [(64, 64), (32, 48), (64, 64), (32, 48), (64, 64)]
    notes = [None, "RGBA converted to RGB", "L converted to RGB", "RGBA converted to RGB", None]
    skipped = [{"path": "/samples/x/bad.png", "file": "x/bad.png", "reason": "truncated"}]
    manifest = _manifest("step-5", 5, sizes, notes, skipped)
    duplicates = [["step-5/img_0000.png", "step-5/img_0002.png", "step-5/img_0004.png"]]
    manifest["duplicates"] = duplicates
    pairs = _pairs(manifest, ["p", "fb", "p", "fb", "fb"], [False, True, False, True, True])
    pairs["prompts_without_image"] = ["step-5/gone.png"]
    result = evaluate_features(manifest, pairs, real, fake, NO_CLIP, 2, 5, 0)

    assert result["fallback_count"] == 3
    assert [row["fallback"] for row in result["per_image"]] == [False, True, False, True, True]
    assert result["image_sizes"] == {"64x64": 3, "32x48": 2}
    assert list(result["image_sizes"]) == ["64x64", "32x48"]  # most frequent first
    assert result["conversions"] == [
        {"note": "L converted to RGB", "count": 1},
        {"note": "RGBA converted to RGB", "count": 2},
    ]
    assert result["skipped_images"] == skipped
    assert result["prompts_without_image"] == ["step-5/gone.png"]
    assert result["duplicates"] == duplicates
    # the input stage's notices first, then the metrics' in registry order, the bootstrap's last
    assert codes(result) == [
        "input.fallback_prompt",
        "input.skipped",
        "input.duplicates",
        "fid.small_n",
        "prdc.too_few",  # 5 images, k = 5
        "bootstrap.too_few",
    ]
    fallback = notice(result, "input.fallback_prompt")
    assert fallback["count"] == 3 and "3 image(s)" in fallback["text"]
    assert notice(result, "input.skipped")["count"] == 1
    copies = notice(result, "input.duplicates")
    assert (copies["count"], copies["groups"]) == (3, 1)
    assert "3 images" in copies["text"] and "1 group(s)" in copies["text"]
    assert notice(result, "prdc.too_few")["k"] == 5
    too_few = notice(result, "bootstrap.too_few")
    assert (too_few["n"], too_few["min"]) == (5, 10) and "5 images" in too_few["text"]


def test_no_fallback_no_warning() -> None:
    real, fake = _features(20, 3)
    manifest = _manifest("step-5", 3)
    result = evaluate_features(
        manifest, _pairs(manifest, ["a", "b", "c"]), real, fake, NO_CLIP, 2, 3, 0
    )
    assert result["fallback_count"] == 0
    assert not any(c.startswith("input.") for c in codes(result))
    assert result["conversions"] == [] and result["skipped_images"] == []


# ---------------------------------------------------------------- checkpoint_metrics (files)


# what the bundled weights' feature files record (ckpt_eval.extract.inception.fingerprint)
def _pairing(manifest: dict[str, Any], prompts: list[str]) -> dict[str, Any]:
    """The metrics job's `pairing` parameter: each image of `manifest` with its prompt."""
    files = [image["file"] for image in manifest["images"]]
    return {
        "prompts": dict(zip(files, prompts, strict=True)),
        "seeds": {},
        "prompt_file": "prompts.csv",
        "fallback": None,
    }


INCEPTION = inception_fingerprint(None)
WEIGHTS = INCEPTION["weights_sha256"]


def _write_inputs(
    tmp_path: Path, clip_available: bool, weights_fake: str = WEIGHTS
) -> tuple[SimpleNamespace, dict[str, Any]]:
    real, fake = _features(25, 8, seed=11)
    real_manifest = _manifest("real", 25)
    manifest = _manifest("step-300", 8)
    prompts = ["a", "b", "a", "c", "a", "b", "c", "d"]
    pairing = _pairing(manifest, prompts)
    pairs = pair_prompts(manifest, **pairing)  # as the job pairs them
    rng = np.random.default_rng(2)
    image = rng.normal(size=(8, 6)).astype(np.float32)
    text = (image + rng.normal(size=(8, 6))).astype(np.float32)
    paths = SimpleNamespace(
        manifest=str(tmp_path / "manifest.json"),
        real_manifest=str(tmp_path / "real_manifest.json"),
        inception_real=str(tmp_path / "real.npz"),
        inception=str(tmp_path / "fake.npz"),
        clip=str(tmp_path / "clip.npz"),
        clip_real=str(tmp_path / "real_clip.npz"),
    )
    write_json(sealed(manifest), paths.manifest)
    write_json(sealed(real_manifest), paths.real_manifest)
    paths.pairing = pairing

    def meta(m: dict[str, Any], weights: str) -> dict[str, Any]:
        return {
            **INCEPTION,
            "set": m["name"],
            "weights_sha256": weights,
            "image_sha256": [i["sha256"] for i in m["images"]],
        }

    save_features(paths.inception_real, {"inception": real}, meta(real_manifest, WEIGHTS))
    save_features(paths.inception, {"inception": fake}, meta(manifest, weights_fake))
    clip_meta = {
        "set": "step-300",
        "image_sha256": [i["sha256"] for i in manifest["images"]],
        "available": clip_available,
        "reason": None if clip_available else "model missing",
        "model": "tiny",
        "revision": None,
    }
    real_clip_meta = {
        **clip_meta,
        "set": "real",
        "image_sha256": meta(real_manifest, "")["image_sha256"],
    }
    if clip_available:
        clip_meta["truncated"] = [{"prompt": "c", "tokens": 80}]
        save_features(paths.clip, {"image": image, "text": text}, clip_meta)
        real_image = rng.normal(size=(25, 6)).astype(np.float32)
        save_features(paths.clip_real, {"image": real_image}, real_clip_meta)
    else:
        real_image = None
        save_features(paths.clip, {}, clip_meta)
        save_features(paths.clip_real, {}, real_clip_meta)
    data = {
        "real": real,
        "fake": fake,
        "fake_weights": weights_fake,
        "image": image,
        "text": text,
        "manifest": manifest,
        "real_manifest": real_manifest,
        "pairs": pairs,
        "real_image": real_image,
    }
    return paths, data


def _settings(seed: int = 1, **overrides: Any) -> dict[str, Any]:
    """analysis_settings of a validated config: kid 4 subsets of 6 images, the given seed."""
    return settings(4, 6, seed, **overrides)


@pytest.mark.parametrize("clip_available", [True, False])
def test_checkpoint_metrics_from_files(tmp_path: Path, clip_available: bool) -> None:
    paths, data = _write_inputs(tmp_path, clip_available)
    result, replicates = checkpoint_metrics(paths, _settings(), paths.pairing)
    # how it was made: the job's settings and the feature files' sources, no timestamp
    made_by = result.pop("made_by")
    assert made_by["settings_sha256"] == config_hash(_settings())
    assert made_by["seed"] == 1
    assert made_by["inception_weights_sha256"] == data["fake_weights"]
    assert made_by["clip_model"] == ("tiny" if clip_available else None)
    assert made_by["packages"] == package_versions()
    assert not any("time" in key or "date" in key for key in made_by)
    assert replicates == {}  # 8 images: fewer than a bootstrap needs
    assert result["fid_ci"] is None
    assert codes(result) == ["fid.small_n", "bootstrap.too_few"]
    too_few = notice(result, "bootstrap.too_few")
    assert (too_few["n"], too_few["min"]) == (8, 10)
    assert "No confidence intervals: 8 images" in too_few["text"]
    # 8 samples of 16 dims: FID takes the 8 x 8 route
    # (ckpt_eval.metrics.fid.frechet_distance_to_rows)
    assert result["fid"] == pytest.approx(fid_from_features(data["real"], data["fake"]), rel=1e-9)
    mean, std = _direct_kid(data["real"], data["fake"], 4, 6, seed=1)
    assert result["kid_mean"] == pytest.approx(mean, rel=1e-9)
    assert result["kid_std"] == pytest.approx(std, rel=1e-9)
    assert result["n_images"] == 8 and result["n_real"] == 25
    assert result["clip_available"] is clip_available
    if clip_available:
        expected = clip_scores(data["image"], data["text"])
        assert [r["clip_score"] for r in result["per_image"]] == pytest.approx(expected.tolist())
        assert result["clip_score_mean"] == pytest.approx(float(expected.mean()))
        assert result["truncated_prompts"] == [{"prompt": "c", "tokens": 80}]
        assert [g["prompt"] for g in result["clip_per_prompt"]] == ["a", "b", "c", "d"]
    else:
        assert result["clip_reason"] == "model missing"
        assert result["clip_score_mean"] is None
    # the same as evaluating the arrays directly, notices and warnings included
    clip = (
        {
            "available": True,
            "reason": None,
            "image": data["image"],
            "text": data["text"],
            "truncated": [{"prompt": "c", "tokens": 80}],
        }
        if clip_available
        else {"available": False, "reason": "model missing"}
    )
    direct = evaluate_features(
        data["manifest"],
        data["pairs"],
        data["real"],
        data["fake"],
        clip,
        4,
        6,
        1,
        real_clip={"image": data["real_image"]} if clip_available else {},
        real_manifest=data["real_manifest"],
    )
    assert result == direct
    # the memorization screen in each space the files hold
    spaces = {"inception"} | ({"clip"} if clip_available else set())
    assert set(result["memorization"]) - {"flag_share", "flagged"} == spaces
    if clip_available:
        expected = _brute_nearest(data["image"], data["real_image"])
        assert result["memorization"]["clip"]["max_similarity"] == pytest.approx(max(expected))


def _brute_nearest(samples: np.ndarray, real: np.ndarray) -> list[float]:
    """Highest cosine similarity of each sample with any real row, one pair at a time."""
    out = []
    for s in np.asarray(samples, np.float64):
        best = -1.0
        for r in np.asarray(real, np.float64):
            best = max(best, float(s @ r / (np.linalg.norm(s) * np.linalg.norm(r))))
        out.append(best)
    return out


@pytest.mark.parametrize("which", ["manifest", "real_manifest"])
def test_checkpoint_metrics_refuses_mismatching_hashes(tmp_path: Path, which: str) -> None:
    paths, _ = _write_inputs(tmp_path, True)
    manifest = read_json(getattr(paths, which))
    manifest["images"][2]["sha256"] = "f" * 64  # the image changed after features were cached
    write_json(sealed(manifest), getattr(paths, which))
    with pytest.raises(CkptEvalError) as info:
        checkpoint_metrics(paths, _settings(), paths.pairing)
    assert "other images" in info.value.what
    expected_path = paths.inception if which == "manifest" else paths.inception_real
    assert info.value.path == expected_path


def test_checkpoint_metrics_refuses_mismatching_clip_file(tmp_path: Path) -> None:
    paths, data = _write_inputs(tmp_path, True)
    save_features(
        paths.clip,
        {"image": data["image"][:7], "text": data["text"][:7]},
        {"image_sha256": [i["sha256"] for i in data["manifest"]["images"][:7]], "available": True},
    )
    with pytest.raises(CkptEvalError) as info:
        checkpoint_metrics(paths, _settings(), paths.pairing)
    assert info.value.path == paths.clip


def test_checkpoint_metrics_refuses_other_inception_weights(tmp_path: Path) -> None:
    """A feature file from other weights is never used: it is removed, and the error says that
    running again recomputes it (the real set's file, which matches, stays)."""
    paths, _ = _write_inputs(tmp_path, False, weights_fake="cd" * 32)
    with pytest.raises(CkptEvalError) as info:
        checkpoint_metrics(paths, _settings(), paths.pairing)
    assert f"its weights_sha256 is '{'cd' * 32}', expected '{WEIGHTS}'" in info.value.what
    assert info.value.path == paths.inception and "run the same command again" in info.value.fix
    assert not Path(paths.inception).exists() and Path(paths.inception_real).exists()


@pytest.mark.parametrize("key", ["extractor", "preprocessing"])
def test_checkpoint_metrics_refuses_another_extractor_or_preprocessing(
    tmp_path: Path, key: str
) -> None:
    paths, _ = _write_inputs(tmp_path, False)
    arrays, meta = load_features(paths.inception_real)
    save_features(paths.inception_real, arrays, {**meta, key: "something older"})
    with pytest.raises(CkptEvalError) as info:
        checkpoint_metrics(paths, _settings(), paths.pairing)
    assert f"its {key} is 'something older'" in info.value.what
    assert not Path(paths.inception_real).exists()


def _analysis_inputs(tmp_path: Path, n_fake: int, copies: dict[int, int]) -> SimpleNamespace:
    """Inception-only files (no CLIP) with sample i an exact copy of real j for i, j in copies."""
    real, fake = _features(40, n_fake, seed=5)
    for i, j in copies.items():
        fake[i] = real[j]
    real_manifest = _manifest("real", 40)
    manifest = _manifest("step-700", n_fake)
    paths = SimpleNamespace(
        **{k: str(tmp_path / f"{k}.json") for k in ("manifest", "real_manifest")},
        **{
            k: str(tmp_path / f"{k}.npz")
            for k in ("inception_real", "inception", "clip", "clip_real")
        },
    )
    write_json(sealed(manifest), paths.manifest)
    write_json(sealed(real_manifest), paths.real_manifest)
    paths.pairing = _pairing(manifest, ["p"] * n_fake)
    for path, m, arrays in (
        (paths.inception_real, real_manifest, {"inception": real}),
        (paths.inception, manifest, {"inception": fake}),
        (paths.clip, manifest, {}),
        (paths.clip_real, real_manifest, {}),
    ):
        meta = {**INCEPTION, "image_sha256": [i["sha256"] for i in m["images"]]}
        save_features(path, arrays, {**meta, "available": False, "reason": "no model"})
    return paths


def test_intervals_prdc_and_memorization_of_a_checkpoint(tmp_path: Path) -> None:
    paths = _analysis_inputs(tmp_path, 30, copies={3: 7, 11: 7, 20: 0})
    settings = _settings(seed=2, bootstrap={"resamples": 200, "level": 0.9})
    result, replicates = checkpoint_metrics(paths, settings, paths.pairing)

    assert set(replicates) == {"fid", "kid"}  # no CLIP here
    assert all(len(v) == 200 for v in replicates.values())
    for metric, point in (("fid", result["fid"]), ("kid", result["kid_mean"])):
        ci = result[f"{metric}_ci"]
        assert ci["level"] == 0.9 and ci["low"] < point < ci["high"]
        # the interval is the replicates' 5%..95% range moved by their bias
        bias = float(np.mean(replicates[metric]) - point)
        low, high = np.quantile(replicates[metric], [0.05, 0.95]) - bias
        assert (ci["low"], ci["high"], ci["bias"]) == pytest.approx((low, high, bias))
    assert result["clip_ci"] is None
    # the same seed gives the same replicates; another seed others
    again, same = checkpoint_metrics(paths, settings, paths.pairing)
    assert np.array_equal(same["fid"], replicates["fid"]) and again == result
    _, other = checkpoint_metrics(
        paths, _settings(seed=3, bootstrap={"resamples": 200}), paths.pairing
    )
    assert not np.array_equal(other["fid"], replicates["fid"])

    assert result["prdc"]["k"] == 5 and result["prdc"]["n_real"] == 40
    assert 0.0 <= result["prdc"]["precision"] <= 1.0

    inception = result["memorization"]["inception"]
    assert inception["n_flagged"] == 3 and inception["share_flagged"] == pytest.approx(0.1)
    assert inception["max_similarity"] == 1.0
    # the three copies come first, ties by sample order, each named by its files
    top = [(p["sample"], p["real"], p["similarity"]) for p in inception["pairs"][:3]]
    assert top == [
        ("step-700/img_0003.png", "real/img_0007.png", 1.0),
        ("step-700/img_0011.png", "real/img_0007.png", 1.0),
        ("step-700/img_0020.png", "real/img_0000.png", 1.0),
    ]
    assert inception["pairs"][0]["real_path"] == "/samples/real/img_0007.png"
    assert len(inception["pairs"]) == 6  # memorization.pairs
    # 10% near copies is more than flag_share 5%: flagged, with a notice (no exact file copies:
    # the copied rows are features, the files differ)
    assert result["memorization"]["flagged"] == ["inception"]
    assert result["exact_real_copies"] == []
    assert codes(result) == ["fid.small_n", "memorization.flagged"]
    flagged = notice(result, "memorization.flagged")
    assert flagged["space"] == "inception" and flagged["share"] == pytest.approx(0.1)
    assert (flagged["threshold"], flagged["flag_share"]) == (0.95, 0.05)
    assert flagged["text"].startswith("Possible memorization: 10%")
    assert ">= 0.95" in flagged["text"] and "more than 5%" in flagged["text"]
    assert result["fid_infinity"] is None  # off by default


def test_small_checkpoints_get_no_intervals_or_prdc(tmp_path: Path) -> None:
    paths = _analysis_inputs(tmp_path, 5, copies={})
    result, replicates = checkpoint_metrics(paths, _settings(), paths.pairing)
    assert replicates == {} and result["fid_ci"] is None and result["prdc"] is None
    assert codes(result) == ["fid.small_n", "kid.capped", "prdc.too_few", "bootstrap.too_few"]
    prdc = notice(result, "prdc.too_few")
    assert prdc["k"] == 5 and "k=5" in prdc["text"]
    assert result["memorization"]["flagged"] == []


def test_fid_infinity_when_enabled(tmp_path: Path) -> None:
    paths = _analysis_inputs(tmp_path, 60, copies={})
    enabled = {"enabled": True, "min_images": 50, "points": 5, "min_fraction": 0.5}
    result, _ = checkpoint_metrics(paths, _settings(fid_infinity=enabled), paths.pairing)
    fi = result["fid_infinity"]
    assert fi["sizes"][-1] == 60 and len(fi["sizes"]) == 5
    # the last point is the full set: the checkpoint's own FID
    assert fi["fids"][-1] == pytest.approx(result["fid"], rel=1e-6)
    too_few = {**enabled, "min_images": 61}
    result, _ = checkpoint_metrics(paths, _settings(fid_infinity=too_few), paths.pairing)
    assert result["fid_infinity"] is None
    fi_notice = notice(result, "fid_infinity.too_few")
    assert (fi_notice["n"], fi_notice["min"]) == (60, 61)
    assert "60 images" in fi_notice["text"] and "61" in fi_notice["text"]


def test_a_subsampled_real_set_gives_fid_of_all_and_the_rest_on_the_kept_rows(
    tmp_path: Path,
) -> None:
    """A real set above max_real_features: its file holds kept rows and float64 statistics of
    all rows (as the extraction job writes it); FID uses all, KID and the rest the kept rows."""
    from ckpt_eval.features.cache import inception_set, streamed_arrays
    from ckpt_eval.features.moments import kept_rows, stream_rows
    from ckpt_eval.metrics.fid import frechet_distance, statistics

    paths = _analysis_inputs(tmp_path, 30, copies={})
    real, real_meta = load_features(paths.inception_real)
    all_rows = real["inception"]
    keep = kept_rows(len(all_rows), 12, seed=2)
    batches = (all_rows[i : i + 7] for i in range(0, len(all_rows), 7))
    streamed = stream_rows(batches, D, keep)
    save_features(paths.inception_real, streamed_arrays(streamed), real_meta)
    assert inception_set(load_features(paths.inception_real)[0]).count == 40

    settings = _settings(seed=2, bootstrap={"resamples": 100})
    result, replicates = checkpoint_metrics(paths, settings, paths.pairing)
    fake = load_features(paths.inception)[0]["inception"]
    full = frechet_distance(*statistics(all_rows), *statistics(fake))
    assert result["fid"] == pytest.approx(full, rel=1e-9)
    assert result["n_real"] == 40
    mean, _ = _direct_kid(all_rows[keep], fake, 4, 6, seed=2)
    assert result["kid_mean"] == pytest.approx(mean, rel=1e-9)
    assert result["prdc"]["n_real"] == 12
    assert len(replicates["fid"]) == 100
    assert codes(result)[0] == "input.real_subset"  # an input notice: before the metrics'
    subset = notice(result, "input.real_subset")
    assert (subset["count"], subset["kept"], subset["seed"]) == (40, 12, 2)
    assert "has 40 images" in subset["text"]
    assert "subset of 12 (max_real_features), drawn with seed 2" in subset["text"]
    # the memorization pairs name the real files the kept rows are, not the first twelve
    kept_files = {f"real/img_{i:04d}.png" for i in keep}
    pairs = result["memorization"]["inception"]["pairs"]
    assert pairs and all(p["real"] in kept_files for p in pairs)
    # the same as evaluating the kept rows with the whole set's statistics directly
    real_set = inception_set(load_features(paths.inception_real)[0])
    direct = evaluate_features(
        read_json(paths.manifest),
        pair_prompts(read_json(paths.manifest), **paths.pairing),
        real_set.rows,
        fake,
        {"available": False, "reason": "no model", "truncated": []},
        4,
        6,
        2,
        real_stats=(real_set.mean, real_set.covariance),
        n_real=real_set.count,
        real_manifest=read_json(paths.real_manifest),
        real_kept=real_set.index,
        bootstrap={"resamples": 100},
    )
    result.pop("made_by")
    assert result == direct


def test_a_copy_of_a_kept_real_row_is_found_by_the_memorization_screen(tmp_path: Path) -> None:
    from ckpt_eval.features.cache import streamed_arrays
    from ckpt_eval.features.moments import kept_rows, stream_rows

    keep = kept_rows(40, 12, seed=1)
    paths = _analysis_inputs(tmp_path, 30, copies={4: int(keep[5])})
    real, real_meta = load_features(paths.inception_real)
    streamed = stream_rows([real["inception"]], D, keep)
    save_features(paths.inception_real, streamed_arrays(streamed), real_meta)
    result, _ = checkpoint_metrics(paths, _settings(seed=1), paths.pairing)
    top = result["memorization"]["inception"]["pairs"][0]
    assert (top["sample"], top["real"], top["similarity"]) == (
        "step-700/img_0004.png",
        f"real/img_{int(keep[5]):04d}.png",
        1.0,
    )
