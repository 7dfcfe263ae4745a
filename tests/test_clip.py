"""CLIP loading and embeddings on the offline tiny CLIP fixture, checked against torchmetrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_images

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.extract import clip as clip_embed
from ckpt_eval.inputs.images import load_rgb
from ckpt_eval.metrics.clip_score import clip_scores

try:  # tests/ as a package
    from .clip_fixture import MAX_LENGTH, PROJECTION_DIM, as_embedding, torchmetrics_loader
except ImportError:  # rootdir-less import (tests/ on sys.path, no __init__.py)
    from clip_fixture import MAX_LENGTH, PROJECTION_DIM, as_embedding, torchmetrics_loader

CPU = torch.device("cpu")
LONG_PROMPT = " ".join(f"word{i % 7} photograph" for i in range(100))  # 200 words
PROMPTS = [
    "a photo of a cat sitting on the sofa",
    "an oil painting of a mountain landscape at sunset",
    "a red car",
    "Zyzzyva's café, 42 robots!",
    "a bird standing on a tree branch in winter",
    "two people walking on the beach",
]
# With the tiny random model "1 2 3" and "green field" give positive cosines, the rest negative
SCORE_PROMPTS = ["1 2 3", "a dog", "green field", "horse", "green field", "painting of a woman"]


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hub offline mode: the env vars plus the constant huggingface_hub read at import time."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def loaded(tiny_clip: Path, offline: None):
    return clip_embed.load_clip(str(tiny_clip), CPU)


@pytest.fixture(scope="module")
def image_paths(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("clip_images")
    # different sizes and aspect ratios: resize + centre crop are exercised
    return (
        write_images(folder / "a", 3, seed=11, size=(48, 40))
        + write_images(folder / "b", 2, seed=12, size=(33, 70))
        + write_images(folder / "c", 1, seed=13, size=(100, 100))
    )


def test_load_clip_from_folder(tiny_clip: Path, offline: None) -> None:
    from transformers import CLIPModel, CLIPProcessor

    net, processor, info = clip_embed.load_clip(str(tiny_clip), CPU)
    assert isinstance(net, CLIPModel)
    assert isinstance(processor, CLIPProcessor)
    assert not net.training  # eval mode: no dropout, deterministic
    assert info["model"] == str(tiny_clip)
    assert info["projection_dim"] == PROJECTION_DIM
    assert isinstance(info["projection_dim"], int)
    assert "revision" in info
    assert next(net.parameters()).device == CPU


@pytest.mark.parametrize("kind", ["missing folder", "unknown hub id"])
def test_load_clip_failure_is_a_user_error(tmp_path: Path, offline: None, kind: str) -> None:
    model = str(tmp_path / "no-such-clip") if kind == "missing folder" else "nobody/no-such-clip"
    with pytest.raises(CkptEvalError) as info:
        clip_embed.load_clip(model, CPU)
    error = info.value
    assert model in error.what
    assert error.fix is not None
    assert "clip.model" in error.fix and "clip.required" in error.fix
    assert "Traceback" not in str(error)


def test_load_clip_folder_without_model_files(tmp_path: Path, offline: None) -> None:
    """An existing folder that holds no model: the error names it, no hub lookup needed."""
    (tmp_path / "empty").mkdir()
    with pytest.raises(CkptEvalError) as info:
        clip_embed.load_clip(str(tmp_path / "empty"), CPU)
    assert "clip.model" in info.value.fix


def test_embedding_shapes_and_batch_size_invariance(loaded, image_paths: list[Path]) -> None:
    net, processor, _ = loaded
    images = {b: clip_embed.embed_images(image_paths, net, processor, CPU, b) for b in (1, 4, 64)}
    texts = {b: clip_embed.embed_texts(PROMPTS, net, processor, CPU, b) for b in (1, 4, 64)}
    for arrays, n in ((images, len(image_paths)), (texts, len(PROMPTS))):
        for array in arrays.values():
            assert array.shape == (n, PROJECTION_DIM)
            assert array.dtype == np.float32
            assert np.isfinite(array).all()
        np.testing.assert_allclose(arrays[4], arrays[1], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(arrays[64], arrays[1], rtol=1e-4, atol=1e-5)
    # rows follow the input order: distinct inputs give distinct rows
    assert not np.allclose(images[1][0], images[1][1])
    assert not np.allclose(texts[1][0], texts[1][1])


def test_embeddings_match_a_direct_model_call(loaded, image_paths: list[Path]) -> None:
    """Same preprocessing and pooling as calling the model by hand on one input at a time."""
    net, processor, _ = loaded
    from PIL import Image

    ours_img = clip_embed.embed_images(image_paths[:2], net, processor, CPU, 2)
    ours_txt = clip_embed.embed_texts(PROMPTS[:2], net, processor, CPU, 2)
    with torch.no_grad():
        for i in range(2):
            pixels = processor(
                images=[Image.fromarray(load_rgb(image_paths[i]))], return_tensors="pt"
            )
            direct = as_embedding(net.get_image_features(**pixels))[0].numpy()
            np.testing.assert_allclose(ours_img[i], direct, rtol=1e-4, atol=1e-5)
            tokens = processor.tokenizer([PROMPTS[i]], return_tensors="pt")
            direct = as_embedding(net.get_text_features(**tokens))[0].numpy()
            np.testing.assert_allclose(ours_txt[i], direct, rtol=1e-4, atol=1e-5)


def test_distinct_prompts_keep_first_appearance_order() -> None:
    distinct, index = clip_embed.distinct_prompts(["b", "a", "b", "c", "a", "b"])
    assert distinct == ["b", "a", "c"]
    assert index.tolist() == [0, 1, 0, 2, 1, 0]
    assert [distinct[i] for i in index] == ["b", "a", "b", "c", "a", "b"]
    empty, none = clip_embed.distinct_prompts([])
    assert empty == [] and none.tolist() == []


def test_the_job_encodes_each_prompt_once(
    loaded, image_paths: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint's images repeat their prompts (one per seed): the text tower sees each
    prompt once, and every image still gets its own prompt's embedding, as if each were
    encoded alone."""
    net, processor, _ = loaded
    prompts = [PROMPTS[0], LONG_PROMPT, PROMPTS[0], PROMPTS[2], LONG_PROMPT, PROMPTS[0]]
    seen: list[int] = []
    forward = net.get_text_features

    def counted(**inputs):
        seen.append(int(inputs["input_ids"].shape[0]))
        return forward(**inputs)

    monkeypatch.setattr(net, "get_text_features", counted)
    arrays, meta = clip_embed.extract("clip", (net, processor), image_paths, prompts, CPU, 64)
    assert sum(seen) == 3  # three distinct prompts, six images
    monkeypatch.setattr(net, "get_text_features", forward)
    assert arrays["text"].shape == (6, PROJECTION_DIM) and arrays["text"].dtype == np.float32
    for row, prompt in enumerate(prompts):
        alone = clip_embed.embed_texts([prompt], net, processor, CPU, 1)[0]
        np.testing.assert_allclose(arrays["text"][row], alone, rtol=1e-4, atol=1e-5)
    assert [t["prompt"] for t in meta["truncated"]] == [LONG_PROMPT]


def test_token_counts_flag_long_prompt(loaded) -> None:
    _, processor, _ = loaded
    short = "a photo of a cat"
    counts = clip_embed.token_counts(processor, [short, LONG_PROMPT, ""])
    # start and end tokens around the BPE pieces
    assert counts[0] == len(processor.tokenizer.tokenize(short)) + 2
    assert counts[0] <= clip_embed.MAX_TOKENS
    assert counts[1] > clip_embed.MAX_TOKENS
    assert counts[1] == len(processor.tokenizer.tokenize(LONG_PROMPT)) + 2
    assert counts[2] == 2


def test_long_prompt_is_truncated_to_77_tokens(loaded) -> None:
    """The embedding of a long prompt is that of its first 76 tokens plus the end token."""
    net, processor, _ = loaded
    tok = processor.tokenizer
    ours = clip_embed.embed_texts([LONG_PROMPT, "a red car"], net, processor, CPU, 2)
    ids = tok(LONG_PROMPT)["input_ids"]
    assert len(ids) > MAX_LENGTH
    cut = ids[: MAX_LENGTH - 1] + [tok.eos_token_id]
    with torch.no_grad():
        direct = as_embedding(
            net.get_text_features(
                input_ids=torch.tensor([cut]), attention_mask=torch.ones(1, MAX_LENGTH, dtype=int)
            )
        )[0].numpy()
    np.testing.assert_allclose(ours[0], direct, rtol=1e-4, atol=1e-5)


def test_clip_scores_match_torchmetrics(tiny_clip: Path, offline, image_paths) -> None:
    """Per image, our score equals max(torchmetrics' per-sample 100 * cos, 0).

    torchmetrics 1.9's `_clip_score_update` returns the per-sample scores before its mean is
    clamped; only short prompts are used (torchmetrics cuts long ones without an end token).
    """
    from torchmetrics.functional.multimodal.clip_score import _clip_score_update
    from torchmetrics.multimodal.clip_score import CLIPScore

    net, processor, _ = clip_embed.load_clip(str(tiny_clip), CPU)
    ours = clip_scores(
        clip_embed.embed_images(image_paths, net, processor, CPU, 4),
        clip_embed.embed_texts(SCORE_PROMPTS, net, processor, CPU, 4),
    )

    metric = CLIPScore(model_name_or_path=torchmetrics_loader(tiny_clip))
    tensors = [torch.tensor(load_rgb(p)).permute(2, 0, 1).contiguous() for p in image_paths]
    per_sample, n = _clip_score_update(tensors, SCORE_PROMPTS, metric.model, metric.processor)
    assert n == len(SCORE_PROMPTS)
    expected = torch.clamp(per_sample.detach(), min=0).double().numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-3)

    # the random model gives both signs, so the per-image clamp is exercised on both sides
    assert (per_sample > 0).any() and (per_sample < 0).any()

    # and the metric itself, one image at a time, reports the same clamped value
    for i in (int(per_sample.argmax()), int(per_sample.argmin())):
        single = CLIPScore(model_name_or_path=torchmetrics_loader(tiny_clip))
        single.update(tensors[i].unsqueeze(0), [SCORE_PROMPTS[i]])
        assert float(single.compute()) == pytest.approx(ours[i], rel=1e-4, abs=1e-3)


def test_folder_weights_sha256_follows_the_weight_files(tmp_path: Path) -> None:
    folder = tmp_path / "clip"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert clip_embed.folder_weights_sha256(folder) is None  # no weight file
    (folder / "model.safetensors").write_bytes(b"weights v1")
    first = clip_embed.folder_weights_sha256(folder)
    assert first is not None and len(first) == 64
    (folder / "config.json").write_text('{"edited": true}')  # not a weight file
    assert clip_embed.folder_weights_sha256(folder) == first
    (folder / "model.safetensors").write_bytes(b"weights v2")
    assert clip_embed.folder_weights_sha256(folder) != first


def test_a_pickled_model_folder_is_never_loaded(
    tmp_path: Path, tiny_clip: Path, offline: None
) -> None:
    """The same model saved as pytorch_model.bin (a pickle) is refused: loading it could run
    code from the folder. The message says what to do."""
    import shutil

    from transformers import CLIPModel

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_clip, folder)
    (folder / "model.safetensors").unlink()
    # transformers 5 writes only safetensors; the pickle is what older versions wrote
    torch.save(CLIPModel.from_pretrained(tiny_clip).state_dict(), folder / "pytorch_model.bin")
    assert (folder / "pytorch_model.bin").exists() and not (folder / "model.safetensors").exists()
    with pytest.raises(CkptEvalError) as info:
        clip_embed.load_clip(str(folder), CPU)
    assert "safetensors" in info.value.fix


class _Recorder:
    """A stand-in model class: records each from_pretrained call and always fails."""

    calls: list[dict] = []

    @classmethod
    def from_pretrained(cls, source: str, **kwargs):
        cls.calls.append(kwargs)
        raise OSError(f"{source} is not in the cache")


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> type[_Recorder]:
    import huggingface_hub.constants

    from ckpt_eval.extract import hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.delenv("ALL_PROXY", raising=False)
    monkeypatch.delenv("all_proxy", raising=False)
    hub._connection_error.cache_clear()
    monkeypatch.setattr(_Recorder, "calls", [])
    yield _Recorder
    hub._connection_error.cache_clear()


def test_an_unreachable_hub_fails_at_once(
    monkeypatch: pytest.MonkeyPatch, recorder: type[_Recorder]
) -> None:
    """Not in the cache and no connection to the hub: no online attempt (huggingface_hub would
    retry for ~45 s), and the message says both."""
    import socket

    from ckpt_eval.extract import hub

    def refused(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(socket, "create_connection", refused)
    with pytest.raises(hub.NotLoaded) as info:
        hub.from_pretrained(recorder, "nobody/some-model", use_safetensors=True)
    assert recorder.calls == [{"use_safetensors": True, "local_files_only": True}]
    assert "not in the local Hugging Face cache" in str(info.value)
    assert "cannot be reached" in str(info.value) and "Name or service" in str(info.value)


def test_a_reachable_hub_is_tried_after_the_cache(
    monkeypatch: pytest.MonkeyPatch, recorder: type[_Recorder]
) -> None:
    import socket

    from ckpt_eval.extract import hub

    class Connection:
        def close(self) -> None:
            pass

    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: Connection())
    with pytest.raises(hub.NotLoaded) as info:
        hub.from_pretrained(recorder, "nobody/some-model")
    assert recorder.calls == [{"local_files_only": True}, {}]
    assert "nobody/some-model is not in the cache" in str(info.value)  # the last error


def test_a_missing_folder_is_not_looked_up_on_the_hub(
    tmp_path: Path, recorder: type[_Recorder]
) -> None:
    from ckpt_eval.extract import hub

    with pytest.raises(hub.NotLoaded) as info:
        hub.from_pretrained(recorder, str(tmp_path / "models" / "clip"))
    assert recorder.calls == []
    assert "no such folder" in str(info.value)


def test_a_processor_from_another_folder(tmp_path: Path, offline: None) -> None:
    """PickScore's case: the weights' folder holds no processor; `processor` names the one."""
    from clip_fixture import make_tiny_clip, make_tiny_clip_processor
    from transformers import CLIPProcessor

    weights = make_tiny_clip(tmp_path / "weights", seed=4, with_processor=False)
    processor_dir = make_tiny_clip_processor(tmp_path / "processor", image_size=32)
    with pytest.raises(CkptEvalError) as info:  # the folder alone lacks the processor
        clip_embed.load_clip(str(weights), CPU, section="pickscore")
    assert "pickscore.model" in info.value.fix
    net, processor, info_ = clip_embed.load_clip(
        str(weights), CPU, str(processor_dir), section="pickscore"
    )
    assert isinstance(processor, CLIPProcessor)
    assert info_["processor"] == str(processor_dir) and info_["model"] == str(weights)
    assert net.config.projection_dim == PROJECTION_DIM


def test_cmmd_pixels_crop_the_centre_square_then_resize_bicubic() -> None:
    """An image whose two halves differ: the crop keeps the centre, the resize is PIL's."""
    from PIL import Image

    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, size=(30, 50, 3), dtype=np.uint8)  # landscape 50 x 30
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    ours = clip_embed.cmmd_pixels(image, 12, mean, std)
    assert ours.shape == (3, 12, 12) and ours.dtype == np.float32
    square = image[:, 10:40]  # (50 - 30) // 2 = 10 columns off each side
    by_hand = np.asarray(Image.fromarray(square).resize((12, 12), Image.BICUBIC)) / 255.0
    by_hand = (by_hand - np.array(mean)) / np.array(std)
    np.testing.assert_allclose(ours, by_hand.transpose(2, 0, 1), rtol=1e-5, atol=1e-5)
