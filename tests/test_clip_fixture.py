"""The offline tiny CLIP fixture loads and behaves like a hub CLIP checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from PIL import Image
from transformers.modeling_outputs import BaseModelOutputWithPooling

try:  # tests/ as a package
    from .clip_fixture import (
        IMAGE_SIZE,
        MAX_LENGTH,
        PROJECTION_DIM,
        as_embedding,
        make_tiny_clip,
        torchmetrics_loader,
    )
except ImportError:  # rootdir-less import (tests/ on sys.path, no __init__.py)
    from clip_fixture import (
        IMAGE_SIZE,
        MAX_LENGTH,
        PROJECTION_DIM,
        as_embedding,
        make_tiny_clip,
        torchmetrics_loader,
    )

PROMPTS = ["a photo of a cat on a sofa", "An Astronaut riding a Zyzzyva, 8k, trending!"]


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hub offline mode: the env vars plus the constant huggingface_hub read at import time."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_clip(tmp_path_factory.mktemp("tiny_clip") / "clip", seed=0)


def _images(n: int = 2, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8), "RGB") for _ in range(n)
    ]


def _load(folder: Path):
    model = transformers.CLIPModel.from_pretrained(folder).eval()
    processor = transformers.CLIPProcessor.from_pretrained(folder)
    return model, processor


@torch.no_grad()
def _embed(model, processor, images, prompts) -> tuple[torch.Tensor, torch.Tensor]:
    img_in = processor(images=images, return_tensors="pt")
    txt_in = processor(
        text=prompts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
    )
    return (
        as_embedding(model.get_image_features(**img_in)),
        as_embedding(model.get_text_features(**txt_in)),
    )


def test_loads_offline_and_embeds(clip_dir: Path, offline: None) -> None:
    model, processor = _load(clip_dir)
    auto = transformers.AutoProcessor.from_pretrained(clip_dir)
    assert isinstance(model, transformers.CLIPModel)
    assert isinstance(processor, transformers.CLIPProcessor)
    assert isinstance(auto, transformers.CLIPProcessor)
    assert isinstance(processor.tokenizer, transformers.CLIPTokenizer)
    assert isinstance(processor.image_processor, transformers.CLIPImageProcessor)
    assert len(processor.tokenizer) == model.config.text_config.vocab_size
    assert processor.tokenizer.model_max_length == MAX_LENGTH
    assert model.config.projection_dim == PROJECTION_DIM

    img_in = processor(images=_images(), return_tensors="pt")
    assert img_in["pixel_values"].shape == (2, 3, IMAGE_SIZE, IMAGE_SIZE)

    img, txt = _embed(model, processor, _images(), PROMPTS)
    for emb in (img, txt):
        assert emb.shape == (2, PROJECTION_DIM)
        assert torch.isfinite(emb).all()
        assert emb.norm(dim=-1).min() > 0


def test_feature_methods_return_output_with_projected_pooler(clip_dir: Path, offline) -> None:
    """transformers 5: BaseModelOutputWithPooling, pooler_output = projected embedding."""
    model, processor = _load(clip_dir)
    inputs = processor(text=PROMPTS, images=_images(), padding=True, return_tensors="pt")
    with torch.no_grad():
        img = model.get_image_features(pixel_values=inputs["pixel_values"])
        txt = model.get_text_features(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
        )
        as_tuple = model.get_image_features(pixel_values=inputs["pixel_values"], return_dict=False)
        full = model(**inputs)
    if isinstance(img, torch.Tensor):  # transformers 4.x
        pytest.skip("feature methods return tensors (transformers < 5)")
    assert isinstance(img, BaseModelOutputWithPooling)
    assert isinstance(txt, BaseModelOutputWithPooling)
    assert img.pooler_output.shape == txt.pooler_output.shape == (2, PROJECTION_DIM)
    n_patches = (IMAGE_SIZE // model.config.vision_config.patch_size) ** 2
    assert img.last_hidden_state.shape == (2, 1 + n_patches, 32)
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[1], img.pooler_output)
    # forward's embeds are the same projections, L2-normalised
    torch.testing.assert_close(
        full.image_embeds, img.pooler_output / img.pooler_output.norm(dim=-1, keepdim=True)
    )
    torch.testing.assert_close(
        full.text_embeds, txt.pooler_output / txt.pooler_output.norm(dim=-1, keepdim=True)
    )


def test_long_prompt_truncated_to_77_tokens(clip_dir: Path, offline) -> None:
    model, processor = _load(clip_dir)
    tok = processor.tokenizer
    long_prompt = " ".join(f"word{i % 7} photograph" for i in range(100))  # 200 words
    assert len(tok(long_prompt)["input_ids"]) > MAX_LENGTH
    enc = processor(
        text=[long_prompt],
        truncation=True,
        max_length=MAX_LENGTH,
        padding=True,
        return_tensors="pt",
    )
    ids = enc["input_ids"]
    assert ids.shape == (1, MAX_LENGTH)
    assert ids[0, 0].item() == tok.bos_token_id
    assert ids[0, -1].item() == tok.eos_token_id
    with torch.no_grad():
        emb = as_embedding(model.get_text_features(**enc))
    assert emb.shape == (1, PROJECTION_DIM) and torch.isfinite(emb).all()


def test_tokenizer_handles_arbitrary_text(clip_dir: Path, offline) -> None:
    tok = transformers.AutoTokenizer.from_pretrained(clip_dir)
    text = "Zyzzyva's café — 42 ROBOTS!? 🚀 naïve"
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    assert tok.eos_token_id not in ids[1:-1]  # unk is <|endoftext|>: nothing became unk
    assert max(ids) < len(tok)
    assert tok.decode(ids, skip_special_tokens=True).replace(" ", "") == text.lower().replace(
        " ", ""
    )
    batch = tok(["a", "a much longer prompt"], padding=True)
    assert batch["input_ids"][0][-1] == tok.pad_token_id == tok.eos_token_id


def test_deterministic_for_same_seed(tmp_path: Path, offline) -> None:
    a = make_tiny_clip(tmp_path / "a", seed=3)
    b = make_tiny_clip(tmp_path / "b", seed=3)
    c = make_tiny_clip(tmp_path / "c", seed=4)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()
    emb = {}
    for name, folder in (("a", a), ("b", b), ("c", c)):
        model, processor = _load(folder)
        emb[name] = _embed(model, processor, _images(), PROMPTS)
    for x, y in zip(emb["a"], emb["b"], strict=True):
        assert torch.equal(x, y)
    for x, y in zip(emb["a"], emb["c"], strict=True):
        assert not torch.allclose(x, y)


def test_legacy_and_modern_eos_pooling_agree(tmp_path: Path, offline) -> None:
    legacy = make_tiny_clip(tmp_path / "legacy", seed=1, legacy_token_ids=True)
    modern = make_tiny_clip(tmp_path / "modern", seed=1, legacy_token_ids=False)
    assert transformers.CLIPConfig.from_pretrained(legacy).text_config.eos_token_id == 2
    txt = [_embed(*_load(folder), _images(), PROMPTS)[1] for folder in (legacy, modern)]
    torch.testing.assert_close(txt[0], txt[1])


def test_torchmetrics_clipscore_via_loader(clip_dir: Path, offline) -> None:
    """torchmetrics' CLIPScore on the fixture (through the loader) matches our embeddings.

    torchmetrics reports max(mean_i(100 * cos_i), 0): the mean is clamped, not each pair.
    """
    clip_score_mod = pytest.importorskip("torchmetrics.multimodal.clip_score")
    pool = ["a cat", "a dog", "red", "1 2 3", "qwerty", "x", "painting of a woman", "horse"]
    images = torch.randint(
        0, 256, (2, 3, 40, 50), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    img, txt = _embed(*_load(clip_dir), list(images), pool)
    cos = torch.nn.functional.normalize(img, dim=-1) @ torch.nn.functional.normalize(txt, dim=-1).T
    best, worst = cos.argmax(dim=1), cos.argmin(dim=1)
    assert (cos.max(dim=1).values > 0).all(), "need a positive pair for a non-trivial check"

    def score(choice: torch.Tensor) -> torch.Tensor:
        metric = clip_score_mod.CLIPScore(model_name_or_path=torchmetrics_loader(clip_dir))
        metric.update(images, [pool[int(j)] for j in choice])
        return metric.compute()

    expected_best = torch.clamp(100 * cos[torch.arange(2), best].mean(), min=0)
    torch.testing.assert_close(score(best), expected_best, rtol=1e-4, atol=1e-4)
    assert expected_best > 0
    torch.testing.assert_close(score(worst), torch.tensor(0.0))
