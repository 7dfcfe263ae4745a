"""The model extractors of the registry (cmmd, dinov2, pickscore beside clip): what a config
turns on, and each one's feature files on tiny random models saved with `save_pretrained` and
loaded by path through the real jobs, checked against a direct transformers forward on pixels
preprocessed by hand here; a missing model (optional: the files say why; required: an error
naming the config key); and the workflow planning and running them only when enabled."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from conftest import make_project, snakemake, write_images
from PIL import Image

from ckpt_eval.config import validate_config
from ckpt_eval.errors import CkptEvalError
from ckpt_eval.extract.feature_jobs import model_features, model_status
from ckpt_eval.extract.hub import folder_weights_sha256
from ckpt_eval.features.cache import load_features
from ckpt_eval.features.extractors import (
    CMMD_PREPROCESSING,
    DINOV2_PREPROCESSING,
    EXTRACTORS,
    PICKSCORE_PREPROCESSING,
    enabled_extractors,
    extractor_of_rule,
    feature_paths,
    model_extractors,
)
from ckpt_eval.inputs.manifest import build_manifest
from ckpt_eval.inputs.prompts import pair_prompts
from ckpt_eval.jsonio import read_json, write_json

try:  # tests/ as a package
    from .clip_fixture import (
        PROJECTION_DIM,
        as_embedding,
        hub_offline,
        make_tiny_clip,
        make_tiny_clip_processor,
    )
except ImportError:  # rootdir-less import (tests/ on sys.path, no __init__.py)
    from clip_fixture import (
        PROJECTION_DIM,
        as_embedding,
        hub_offline,
        make_tiny_clip,
        make_tiny_clip_processor,
    )

LONG_PROMPT = " ".join(f"word{i % 7} photograph" for i in range(100))  # > 77 tokens
CMMD_SIZE = 42  # the tiny CMMD CLIP's image size (ViT-L/14@336 in real life): 3 x 3 patches of 14
DINO_WIDTH = 32
# CLIP's and ImageNet's normalisation, written out (the references hard-code them too)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def tiny_config(**sections) -> dict:
    config = {"run": "t", "real_images": "r", "samples": {"root": "s"}, "prompts": "p.csv"}
    return validate_config({**config, **sections})


def make_tiny_dinov2(folder: Path, seed: int = 0) -> Path:
    """A tiny random Dinov2Model and, beside it, the BitImageProcessor facebook/dinov2-* carry
    (shortest edge 256 bicubic, centre crop 224, ImageNet mean/std), which we do not use."""
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    config = Dinov2Config(
        hidden_size=DINO_WIDTH,
        num_hidden_layers=2,
        num_attention_heads=2,
        mlp_ratio=2,
        patch_size=14,
        image_size=28,  # position embeddings of 2 x 2 patches, interpolated to 16 x 16 at 224
    )
    torch.manual_seed(seed)
    Dinov2Model(config).eval().save_pretrained(folder)
    BitImageProcessor(
        size={"shortest_edge": 256},
        crop_size={"height": 224, "width": 224},
        image_mean=list(IMAGENET_MEAN),
        image_std=list(IMAGENET_STD),
    ).save_pretrained(folder)
    return folder


offline = pytest.fixture(hub_offline)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "cmmd": make_tiny_clip(root / "cmmd", seed=1, image_size=CMMD_SIZE, patch_size=14),
        "dinov2": make_tiny_dinov2(root / "dinov2"),
        # PickScore's weights and, elsewhere, the processor they were trained with
        "pickscore": make_tiny_clip(root / "pickscore", seed=2, with_processor=False),
        "pickscore_processor": make_tiny_clip_processor(root / "pickscore-processor"),
    }


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Four images of one checkpoint (landscape, portrait, square: crops and resizes are
    exercised), their manifest and how they meet their prompts (the jobs' `pairing`)."""
    root = tmp_path_factory.mktemp("extractor_images")
    samples = root / "samples"
    paths = write_images(samples / "step-10", 2, seed=5, size=(48, 40))
    paths += write_images(root / "tall", 1, seed=6, size=(31, 64))
    paths += write_images(root / "square", 1, seed=7, size=(57, 57))
    for i, path in enumerate(paths[2:], start=2):
        paths[i] = path.rename(samples / "step-10" / f"img_{i:03d}.png")
    manifest = build_manifest("step-10", paths, samples)
    prompts = {f"step-10/{p.name}": f"a photo number {i}" for i, p in enumerate(paths)}
    prompts["step-10/img_001.png"] = LONG_PROMPT
    write_json(manifest, root / "manifest.json")
    pairing = {"prompts": prompts, "seeds": {}, "prompt_file": "prompts.csv", "fallback": None}
    return {"manifest": root / "manifest.json", "pairing": pairing}


def image_prompts(images: dict[str, Any]) -> list[str]:
    """Each image's prompt, in the manifest's order (the pairing the jobs make)."""
    pairs = pair_prompts(read_json(images["manifest"]), **images["pairing"])["pairs"]
    return [p["prompt"] for p in pairs]


def manifest_paths(images: dict[str, Any]) -> list[str]:
    return [image["path"] for image in read_json(images["manifest"])["images"]]


def run_jobs(
    key: str, tmp_path: Path, model: str, images: dict[str, Any], processor: str | None = None
) -> tuple[dict, dict[str, np.ndarray], dict]:
    """The `<key>_model` then `<key>_checkpoint` job: status, arrays and meta."""
    status = tmp_path / key / "model.json"
    model_status(key, model, True, "cpu", status, processor)
    out = tmp_path / key / "checkpoint_step-10.npz"
    model_features(key, images["manifest"], images["pairing"], status, out, "cpu", batch_size=3)
    arrays, meta = load_features(out)
    return read_json(status), arrays, meta


# -- the registry (plan-time) -------------------------------------------------------------


def test_only_clip_is_on_by_default() -> None:
    config = tiny_config()
    assert [e.key for e in enabled_extractors(config)] == ["inception", "clip"]
    assert [e.key for e in model_extractors(config)] == ["clip"]
    for key in ("cmmd", "dinov2", "pickscore"):
        assert config[key]["enabled"] is False and config[key]["required"] is False
    assert config["cmmd"]["model"] == "openai/clip-vit-large-patch14-336"
    assert config["dinov2"]["model"] == "facebook/dinov2-base"
    assert config["pickscore"]["model"] == "yuvalkirstain/PickScore_v1"
    assert config["pickscore"]["processor"] == "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"


def test_enabled_extractors_and_their_feature_paths() -> None:
    config = tiny_config(
        cmmd={"enabled": True, "batch_size": 4},
        dinov2={"enabled": True, "model": "/models/dino"},
        pickscore={"enabled": True, "processor": "/models/laion"},
    )
    assert [e.key for e in model_extractors(config)] == ["clip", "cmmd", "dinov2", "pickscore"]
    paths = feature_paths("out", config, "step-1")
    assert paths == {
        "inception": "out/features/inception/checkpoint_step-1.npz",
        "inception_real": "out/features/inception/real.npz",
        "clip": "out/features/clip/checkpoint_step-1.npz",
        "clip_real": "out/features/clip/real.npz",
        "cmmd": "out/features/cmmd/checkpoint_step-1.npz",
        "cmmd_real": "out/features/cmmd/real.npz",
        "dinov2": "out/features/dinov2/checkpoint_step-1.npz",
        "dinov2_real": "out/features/dinov2/real.npz",
        "pickscore": "out/features/pickscore/checkpoint_step-1.npz",  # no real set
    }
    cmmd, dinov2, pickscore = (EXTRACTORS[k] for k in ("cmmd", "dinov2", "pickscore"))
    assert cmmd.batch_size(config) == 4 and dinov2.batch_size(config) == config["batch_size"]
    assert dinov2.model(config) == "/models/dino" and dinov2.processor(config) is None
    assert pickscore.processor(config) == "/models/laion"
    assert [e.key for e in model_extractors(config) if e.prompts] == ["clip", "pickscore"]
    assert pickscore.arrays == ("image", "text", "logit_scale")
    assert cmmd.arrays == dinov2.arrays == ("image",)


def test_clip_is_always_on_and_its_real_set_follows_memorization_clip() -> None:
    clip = EXTRACTORS["clip"]
    off = tiny_config(memorization={"clip": False}, clip={"required": False})
    assert clip in enabled_extractors(off)
    # the real set's file is still made (no arrays, saying why), as before the registry
    assert clip.real(off) and not clip.real_enabled(off)
    assert clip.real_off == "memorization.clip is false"
    assert clip.real_enabled(tiny_config())


def test_the_extractor_of_a_generated_rule() -> None:
    assert extractor_of_rule("clip_model").key == "clip"
    assert extractor_of_rule("dinov2_checkpoint").key == "dinov2"
    assert extractor_of_rule("cmmd_real").key == "cmmd"
    for rule in ("inception_real", "metrics_checkpoint", "clip_other"):
        with pytest.raises(ValueError):
            extractor_of_rule(rule)


# -- CMMD ---------------------------------------------------------------------------------


def cmmd_by_hand(path: str) -> np.ndarray:
    """google-research cmmd: centre crop to a square, PIL bicubic to the model size, / 255,
    CLIP mean/std (its own resize to that size afterwards changes nothing)."""
    image = Image.open(path).convert("RGB")
    w, h = image.size
    side = min(w, h)
    top, left = (h - side) // 2, (w - side) // 2
    image = image.crop((left, top, left + side, top + side))
    x = np.asarray(image.resize((CMMD_SIZE, CMMD_SIZE), Image.BICUBIC)).astype(np.float32) / 255.0
    x = (x - np.array(CLIP_MEAN, np.float32)) / np.array(CLIP_STD, np.float32)
    return x.transpose(2, 0, 1)


def test_cmmd_embeddings_follow_the_reference_preprocessing(
    tmp_path: Path, models: dict[str, Path], images: dict[str, Any], offline: None
) -> None:
    from transformers import CLIPModel

    status, arrays, meta = run_jobs("cmmd", tmp_path, str(models["cmmd"]), images)
    assert status["available"] is True and status["image_size"] == CMMD_SIZE
    assert status["weights_sha256"] == folder_weights_sha256(models["cmmd"])
    assert set(arrays) == {"image"}  # no prompts, however the checkpoint has them
    assert arrays["image"].shape == (4, PROJECTION_DIM) and arrays["image"].dtype == np.float32

    net = CLIPModel.from_pretrained(models["cmmd"]).eval()
    pixels = torch.from_numpy(np.stack([cmmd_by_hand(p) for p in manifest_paths(images)]))
    assert pixels.shape[-2:] == (CMMD_SIZE, CMMD_SIZE)  # the model's size, not 224 or 336
    with torch.no_grad():
        direct = as_embedding(net.get_image_features(pixel_values=pixels)).numpy()
    np.testing.assert_allclose(arrays["image"], direct, rtol=1e-4, atol=1e-5)
    # raw projected embeddings: the metric L2-normalises them
    assert not np.allclose(np.linalg.norm(arrays["image"], axis=1), 1.0, atol=1e-3)

    assert meta["available"] is True and meta["reason"] is None
    assert meta["extractor"] == f"cmmd:{models['cmmd']}"
    assert meta["preprocessing"] == CMMD_PREPROCESSING and meta["image_size"] == CMMD_SIZE
    assert meta["image_sha256"] == [i["sha256"] for i in read_json(images["manifest"])["images"]]
    assert "truncated" not in meta


# -- DINOv2 -------------------------------------------------------------------------------


def dinov2_by_hand(path: str) -> np.ndarray:
    """dgm-eval's DINOv2 transform: bicubic resize of the PIL image to 224 x 224, to [0, 1],
    ImageNet mean/std."""
    image = Image.open(path).convert("RGB").resize((224, 224), Image.BICUBIC)
    x = np.asarray(image).astype(np.float32) / 255.0
    x = (x - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    return x.transpose(2, 0, 1)


def test_dinov2_cls_features_on_dgm_evals_preprocessing(
    tmp_path: Path, models: dict[str, Path], images: dict[str, Any], offline: None
) -> None:
    from transformers import AutoImageProcessor, Dinov2Model

    status, arrays, meta = run_jobs("dinov2", tmp_path, str(models["dinov2"]), images)
    assert status["available"] is True and status["hidden_size"] == DINO_WIDTH
    assert set(arrays) == {"image"}
    assert arrays["image"].shape == (4, DINO_WIDTH) and arrays["image"].dtype == np.float32

    net = Dinov2Model.from_pretrained(models["dinov2"]).eval()
    pixels = torch.from_numpy(np.stack([dinov2_by_hand(p) for p in manifest_paths(images)]))
    with torch.no_grad():
        output = net(pixel_values=pixels)
    cls = output.last_hidden_state[:, 0].numpy()
    np.testing.assert_allclose(arrays["image"], cls, rtol=1e-4, atol=1e-5)
    # the CLS token after the final layer norm (dgm-eval's x_norm_clstoken) is transformers'
    # pooler output
    np.testing.assert_allclose(arrays["image"], output.pooler_output.numpy(), rtol=1e-4, atol=1e-5)

    # the folder's own image processor (resize to 256, centre crop 224) would give other
    # features: it is not what the file holds
    processor = AutoImageProcessor.from_pretrained(models["dinov2"])
    pil = [Image.open(p).convert("RGB") for p in manifest_paths(images)]
    with torch.no_grad():
        theirs = net(**processor(images=pil, return_tensors="pt")).last_hidden_state[:, 0]
    assert not np.allclose(arrays["image"], theirs.numpy(), rtol=1e-3, atol=1e-3)

    assert meta["preprocessing"] == DINOV2_PREPROCESSING and meta["image_size"] == 224
    assert meta["extractor"] == f"dinov2:{models['dinov2']}"


# -- PickScore ----------------------------------------------------------------------------


def test_pickscore_uses_its_own_processor_and_records_the_logit_scale(
    tmp_path: Path, models: dict[str, Path], images: dict[str, Any], offline: None
) -> None:
    from transformers import CLIPModel, CLIPProcessor

    model, processor_dir = str(models["pickscore"]), str(models["pickscore_processor"])
    status, arrays, meta = run_jobs("pickscore", tmp_path, model, images, processor_dir)
    assert status["available"] is True
    assert status["processor"] == processor_dir and status["model"] == model
    assert set(arrays) == {"image", "text", "logit_scale"}
    assert arrays["image"].shape == arrays["text"].shape == (4, PROJECTION_DIM)
    assert arrays["logit_scale"].shape == (1,) and arrays["logit_scale"].dtype == np.float32

    # PickScore's reference: the processor of another repository, prompts cut at 77 tokens
    net = CLIPModel.from_pretrained(model).eval()
    processor = CLIPProcessor.from_pretrained(processor_dir)
    pil = [Image.open(p).convert("RGB") for p in manifest_paths(images)]
    prompts = image_prompts(images)
    with torch.no_grad():
        image = as_embedding(net.get_image_features(**processor(images=pil, return_tensors="pt")))
        tokens = processor(
            text=prompts, padding=True, truncation=True, max_length=77, return_tensors="pt"
        )
        text = as_embedding(net.get_text_features(**tokens))
    np.testing.assert_allclose(arrays["image"], image.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(arrays["text"], text.numpy(), rtol=1e-4, atol=1e-5)
    assert arrays["logit_scale"][0] == pytest.approx(
        float(net.logit_scale.detach().exp()), rel=1e-6
    )

    assert meta["processor"] == processor_dir
    assert meta["preprocessing"] == PICKSCORE_PREPROCESSING
    assert [t["prompt"] for t in meta["truncated"]] == [LONG_PROMPT]
    assert meta["truncated"][0]["tokens"] > 77


def test_the_pickscore_model_folder_alone_is_not_enough(
    tmp_path: Path, models: dict[str, Path], offline: None
) -> None:
    """Its weights' folder holds no processor; a missing processor folder is named."""
    missing = str(tmp_path / "no-processor")
    with pytest.raises(CkptEvalError) as info:
        model_status(
            "pickscore", str(models["pickscore"]), True, "cpu", tmp_path / "s.json", missing
        )
    assert missing in info.value.what and "processor" in info.value.what
    assert "pickscore.processor" in info.value.fix and "pickscore.required" in info.value.fix
    assert not (tmp_path / "s.json").exists()


# -- models that cannot be loaded ---------------------------------------------------------


@pytest.mark.parametrize("key", ["cmmd", "dinov2", "pickscore"])
def test_an_optional_model_that_cannot_be_loaded_says_why_in_every_file(
    tmp_path: Path, images: dict[str, Any], offline: None, key: str
) -> None:
    missing = str(tmp_path / f"no-such-{key}")
    status_path = tmp_path / "model.json"
    processor = "nobody/no-processor" if key == "pickscore" else None
    model_status(key, missing, False, "cpu", status_path, processor)
    status = read_json(status_path)
    assert status["available"] is False and status["model"] == missing
    assert status["reason"].startswith(f"{key}.required is false")
    assert missing in status["reason"]
    pairing = images["pairing"] if EXTRACTORS[key].prompts else None
    for name, manifest in (("checkpoint", images["manifest"]), ("real", images["manifest"])):
        out = tmp_path / f"{name}.npz"
        model_features(
            key, manifest, pairing if name == "checkpoint" else None, status_path, out, "cpu", 2
        )
        arrays, meta = load_features(out)
        # the prompts its text embeddings would have been made from, as a computed file has
        prompted = name == "checkpoint" and EXTRACTORS[key].prompts
        assert meta.get("prompts") == (image_prompts(images) if prompted else None)
        assert arrays == {}  # never a silent zero
        assert meta["available"] is False and meta["reason"] == status["reason"]
        assert meta["image_sha256"] == [
            i["sha256"] for i in read_json(images["manifest"])["images"]
        ]


@pytest.mark.parametrize("key", ["cmmd", "dinov2", "pickscore"])
def test_a_required_model_that_cannot_be_loaded_names_the_config_key(
    tmp_path: Path, offline: None, key: str
) -> None:
    out = tmp_path / "model.json"
    with pytest.raises(CkptEvalError) as info:
        model_status(key, "nobody/no-such-model", True, "cpu", out, None)
    assert "nobody/no-such-model" in info.value.what
    assert f"{key}.model at a local folder" in info.value.fix
    assert f"{key}.required: false" in info.value.fix
    assert "safetensors" in info.value.fix
    assert not out.exists()


# -- the workflow -------------------------------------------------------------------------


def planned_rules(root: Path, config: Path) -> dict[str, int]:
    done = snakemake(root, config, "--dry-run", "--quiet", "rules")
    counts: dict[str, int] = {}
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def with_sections(config: Path, **sections) -> Path:
    data = yaml.safe_load(config.read_text())
    data.update(sections)
    config.write_text(yaml.safe_dump(data))
    return config


NEW_RULES = {
    "cmmd_model": 1,
    "cmmd_checkpoint": 2,
    "cmmd_real": 1,
    "dinov2_model": 1,
    "dinov2_checkpoint": 2,
    "dinov2_real": 1,
    "pickscore_model": 1,
    "pickscore_checkpoint": 2,
}


@pytest.mark.workflow
def test_the_new_rules_are_planned_only_when_enabled(tmp_path: Path) -> None:
    config = make_project(tmp_path, {"step-1": 2, "step-2": 2}, n_real=3)
    plan = planned_rules(tmp_path, config)
    assert {"clip_model": 1, "clip_checkpoint": 2, "clip_real": 1}.items() <= plan.items()
    assert not [r for r in plan if re.match(r"(cmmd|dinov2|pickscore)_", r)]

    on = {"enabled": True, "model": "some/model"}
    with_sections(config, cmmd=on, dinov2=on, pickscore=on)
    plan = planned_rules(tmp_path, config)
    assert {k: plan.get(k) for k in NEW_RULES} == NEW_RULES
    assert "pickscore_real" not in plan
    assert plan["metrics_checkpoint"] == 2


@pytest.mark.workflow
def test_a_run_with_every_model_extractor_on_tiny_local_models(
    tmp_path: Path, models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # one checkpoint: each feature job costs ~4 s of torch and transformers imports here
    config = make_project(tmp_path, {"step-1": 3}, n_real=4)
    with_sections(
        config,
        cmmd={"enabled": True, "model": str(models["cmmd"]), "required": True},
        dinov2={"enabled": True, "model": str(models["dinov2"]), "required": True},
        pickscore={
            "enabled": True,
            "model": str(models["pickscore"]),
            "processor": str(models["pickscore_processor"]),
            "required": True,
        },
    )
    snakemake(tmp_path, config, env={"HF_HUB_OFFLINE": "1"})
    out = tmp_path / "results" / "t"
    assert (out / "consolidated_results.json").is_file() and (out / "report.html").is_file()
    widths = {"cmmd": PROJECTION_DIM, "dinov2": DINO_WIDTH, "pickscore": PROJECTION_DIM}
    for key, width in widths.items():
        assert read_json(out / "features" / key / "model.json")["available"] is True
        arrays, meta = load_features(out / "features" / key / "checkpoint_step-1.npz")
        assert meta["available"] is True and arrays["image"].shape == (3, width)
        if key == "pickscore":
            assert arrays["text"].shape == (3, width) and arrays["logit_scale"].shape == (1,)
            assert not (out / "features" / key / "real.npz").exists()
        else:
            real, _ = load_features(out / "features" / key / "real.npz")
            assert real["image"].shape == (4, width)
    # the new metrics reach the results through the registry, and their models the provenance
    result = read_json(out / "consolidated_results.json")
    row = result["checkpoints"][0]
    for field in ("cmmd", "fd_dinov2", "kd_dinov2_mean", "dino_nearest", "pickscore_mean"):
        assert isinstance(row[field], float), field
    recorded = result["provenance"]["models"]
    assert set(recorded) == {"clip", "cmmd", "dinov2", "pickscore"}
    for key in ("cmmd", "dinov2", "pickscore"):
        assert recorded[key]["available"] is True and recorded[key]["weights_sha256"]
        assert recorded[key]["model"] == str(models[key])
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| CMMD |" in report or " CMMD " in report
    # the workflow's feature files are the jobs' own: the same numbers as calling them here
    monkeypatch.chdir(tmp_path)  # the manifests' paths are relative to the project
    status = out / "features" / "dinov2" / "model.json"
    again = tmp_path / "again.npz"
    manifest = out / "manifests" / "checkpoint_step-1.json"
    model_features("dinov2", manifest, None, status, again, "cpu", 32)
    np.testing.assert_array_equal(
        load_features(again)[0]["image"],
        load_features(out / "features" / "dinov2" / "checkpoint_step-1.npz")[0]["image"],
    )
