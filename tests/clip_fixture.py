"""Offline tiny random CLIP checkpoint for tests.

``make_tiny_clip(folder)`` writes a randomly initialised, very small CLIP model plus its
processor (tokenizer + image processor) into ``folder`` with ``save_pretrained`` so that the
real product code path works unchanged and without network access::

    model = transformers.CLIPModel.from_pretrained(folder)
    processor = transformers.CLIPProcessor.from_pretrained(folder)  # or AutoProcessor

exactly like ``"openai/clip-vit-large-patch14"`` from the hub (same classes, same tokenizer
pipeline: lower-casing, CLIP pre-tokenisation regex, byte-level BPE with ``</w>`` word suffix,
``<|startoftext|>`` / ``<|endoftext|>`` specials, ``model_max_length=77``; same CLIP
mean/std normalisation, bicubic resize of the shortest edge + centre crop).

Files written by transformers 5: ``config.json``, ``model.safetensors``, ``tokenizer.json``,
``tokenizer_config.json`` and ``processor_config.json`` (the image-processor settings are
nested in it; no separate ``preprocessor_config.json``, ``vocab.json`` or ``merges.txt``).
``CLIPImageProcessor``/``AutoImageProcessor``/``AutoTokenizer.from_pretrained(folder)`` load
them too. ``CLIPImageProcessor`` is the torchvision backend in transformers 5.

``hub_offline(monkeypatch)`` puts the hub in offline mode for one test (a model loads from its
folder or not at all); a test module makes it its fixture with
``offline = pytest.fixture(hub_offline)``.

Tokenizer: the vocabulary is built by hand like CLIP's: the 256 byte-level symbols, the same
256 symbols with ``</w>``, a few hundred BPE merges learned (deterministically, in pure
Python) from a handful of sentences, and finally ``<|startoftext|>`` and ``<|endoftext|>`` as
the two highest ids. Since every byte has a token, any text (unknown words, digits,
punctuation, non-ASCII) tokenises without ``unk``. ``text_config.vocab_size`` equals
``len(tokenizer)``; pad == eos == unk == ``<|endoftext|>`` (as in CLIP).

Text config token ids: by default (``legacy_token_ids=True``) the text config carries the
legacy ``bos/pad/eos_token_id = 0/1/2`` that the original ``openai/clip-vit-*`` hub configs
still have. With ``eos_token_id == 2`` transformers pools the text embedding at
``input_ids.argmax(-1)`` (the highest id, which is ``<|endoftext|>`` both in the real vocab
and here) -- the same code path as the real model. ``legacy_token_ids=False`` writes the
tokenizer's real ids instead (post-#24773 convention: pool at the first ``eos_token_id``).
Both give identical embeddings for properly tokenised input (one that ends with the end
token, e.g. after ``truncation=True``).

What the feature methods return with transformers 5.x (checked with 5.24.0)
---------------------------------------------------------------------------
``CLIPModel.get_image_features(pixel_values=...)`` and
``CLIPModel.get_text_features(input_ids=..., attention_mask=...)`` do **not** return a tensor
any more (in transformers 4.x they returned the projected ``(batch, projection_dim)``
tensor). They return a ``transformers.modeling_outputs.BaseModelOutputWithPooling`` whose

* ``pooler_output`` is the *projected* embedding, shape ``(batch, projection_dim)``, i.e.
  exactly what 4.x returned (``visual_projection`` / ``text_projection`` already applied,
  NOT L2-normalised);
* ``last_hidden_state`` is the un-projected encoder output ``(batch, seq, hidden)``
  (vision: ``seq = 1 + (image_size / patch_size) ** 2``; text: token length).

With ``return_dict=False`` they return a plain tuple ``(last_hidden_state, pooler_output)``
(``@can_return_tuple``), so ``[0]`` is *not* the embedding. Code that must work on 4.x and
5.x can use :func:`as_embedding` below (or the equivalent
``out if isinstance(out, torch.Tensor) else out.pooler_output``).
``CLIPModel(**inputs)`` (forward) still returns ``CLIPOutput`` with ``image_embeds`` /
``text_embeds`` (projected and L2-normalised) and ``logits_per_image``.

torchmetrics 1.9 ``CLIPScore`` / ``clip_score`` use the feature methods' result as a tensor
(``features.norm(...)``) and so fail on transformers 5 with ``AttributeError:
'BaseModelOutputWithPooling' object has no attribute 'norm'``. A string
``model_name_or_path`` is only accepted if it contains "openai" (else ``ValueError``); a
callable returning ``(model, processor)`` is accepted as is. :func:`torchmetrics_loader`
returns such a callable whose model unwraps ``pooler_output``.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import torch
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPProcessor,
    CLIPTokenizer,
)

IMAGE_SIZE = 32
PATCH_SIZE = 8
PROJECTION_DIM = 16
MAX_LENGTH = 77
NUM_MERGES = 300

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"

_CORPUS = (
    "a photo of a cat sitting on the sofa",
    "a photo of a dog running in the park",
    "an oil painting of a mountain landscape at sunset",
    "a portrait of a woman with red hair, digital art",
    "a red car parked in front of a house",
    "a bowl of fruit on a wooden table, studio lighting",
    "the city skyline at night with bright lights",
    "a close-up photograph of a flower in the rain",
    "two people walking on the beach near the ocean",
    "a watercolor illustration of a small boat on a lake",
    "an astronaut riding a horse on the moon, highly detailed",
    "a bird standing on a tree branch in winter",
)

# Same pre-tokenisation regex as transformers' CLIPTokenizer (specials + words + digits + punct).
_WORD_RE = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|[^\s\w]+|_+")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable unicode char mapping (same order as CLIP's vocab.json)."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def _learn_bpe(
    corpus: tuple[str, ...], num_merges: int
) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Deterministic CLIP-style byte-level BPE: vocab (without specials) and merges."""
    byte_enc = _bytes_to_unicode()
    base = list(byte_enc.values())
    vocab_tokens = base + [c + "</w>" for c in base]

    word_freq: Counter[tuple[str, ...]] = Counter()
    for line in corpus:
        for word in _WORD_RE.findall(line.lower()):
            symbols = [byte_enc[b] for b in word.encode("utf-8")]
            symbols[-1] += "</w>"
            word_freq[tuple(symbols)] += 1

    merges: list[tuple[str, str]] = []
    known = set(vocab_tokens)
    for _ in range(num_merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for word, freq in word_freq.items():
            for pair in zip(word, word[1:], strict=False):
                pairs[pair] += freq
        if not pairs:
            break
        # most frequent pair, ties broken lexicographically -> fully deterministic
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merged = best[0] + best[1]
        merges.append(best)
        if merged not in known:
            known.add(merged)
            vocab_tokens.append(merged)
        new_freq: Counter[tuple[str, ...]] = Counter()
        for word, freq in word_freq.items():
            out: list[str] = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(merged)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            new_freq[tuple(out)] += freq
        word_freq = new_freq

    return {tok: i for i, tok in enumerate(vocab_tokens)}, merges


def make_tiny_tokenizer() -> CLIPTokenizer:
    """Tiny CLIP tokenizer (fast/tokenizers-backed) that handles arbitrary text offline."""
    vocab, merges = _learn_bpe(_CORPUS, NUM_MERGES)
    vocab[BOS_TOKEN] = len(vocab)
    vocab[EOS_TOKEN] = len(vocab)  # highest id, as in CLIP (49407)
    return CLIPTokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=EOS_TOKEN,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        model_max_length=MAX_LENGTH,
    )


def tiny_text_config(
    tokenizer: CLIPTokenizer, hidden_size: int, legacy_token_ids: bool = True
) -> dict[str, int]:
    """The text tower of every tiny model here (the CLIP model's, the pipeline's encoder).

    `legacy_token_ids`: bos/pad/eos ids 0/1/2 as in the openai/clip-vit-* hub configs, which
    do not match their tokenizer's; else the tokenizer's own ids.
    """
    if legacy_token_ids:
        token_ids = {"bos_token_id": 0, "pad_token_id": 1, "eos_token_id": 2}
    else:
        token_ids = {
            "bos_token_id": tokenizer.bos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        }
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden_size,
        "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": MAX_LENGTH,
        **token_ids,
    }


def make_tiny_clip(
    folder: Path,
    seed: int = 0,
    legacy_token_ids: bool = True,
    image_size: int = IMAGE_SIZE,
    patch_size: int = PATCH_SIZE,
    with_processor: bool = True,
) -> Path:
    """Save a tiny random ``CLIPModel`` + ``CLIPProcessor`` to ``folder`` and return it.

    Same ``seed`` -> identical weights and tokenizer -> identical embeddings. The vision input
    is ``image_size`` x ``image_size`` (default ``IMAGE_SIZE``), the embeddings have
    ``PROJECTION_DIM`` dimensions. ``with_processor=False`` saves the model only (PickScore's
    weights come without the processor they were trained with: see
    :func:`make_tiny_clip_processor`).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    tokenizer = make_tiny_tokenizer()
    config = CLIPConfig(
        text_config={
            **tiny_text_config(tokenizer, hidden_size=32, legacy_token_ids=legacy_token_ids),
            "projection_dim": PROJECTION_DIM,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": patch_size,
            "num_channels": 3,
            "projection_dim": PROJECTION_DIM,
        },
        projection_dim=PROJECTION_DIM,
    )

    torch.manual_seed(seed)
    model = CLIPModel(config).eval()

    model.save_pretrained(folder)
    if with_processor:
        make_tiny_clip_processor(folder, image_size)
    return folder


def make_tiny_clip_processor(folder: Path, image_size: int = IMAGE_SIZE) -> Path:
    """Save only a ``CLIPProcessor`` (the tiny tokenizer; shortest-edge resize and centre crop
    to ``image_size``, CLIP mean/std) to ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
    )
    CLIPProcessor(image_processor=image_processor, tokenizer=make_tiny_tokenizer()).save_pretrained(
        folder
    )
    return folder


def hub_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hub offline mode: the env vars plus the constant huggingface_hub read at import time."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def as_embedding(out: object) -> torch.Tensor:
    """Projected embedding from ``get_{image,text}_features`` on transformers 4.x or 5.x."""
    if isinstance(out, torch.Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    if pooled is None:
        raise TypeError(f"unexpected CLIP feature output: {type(out).__name__}")
    return pooled


class _TensorFeatures(torch.nn.Module):
    """CLIPModel whose ``get_*_features`` return the projected tensor (transformers 4 style)."""

    def __init__(self, model: CLIPModel) -> None:
        super().__init__()
        self.model = model
        self.config = model.config

    def get_image_features(self, *args, **kwargs) -> torch.Tensor:
        return as_embedding(self.model.get_image_features(*args, **kwargs))

    def get_text_features(self, *args, **kwargs) -> torch.Tensor:
        return as_embedding(self.model.get_text_features(*args, **kwargs))


def torchmetrics_loader(folder: Path):
    """``model_name_or_path`` callable for torchmetrics' CLIPScore loading ``folder``."""

    def load() -> tuple[_TensorFeatures, CLIPProcessor]:
        model = CLIPModel.from_pretrained(folder).eval()
        return _TensorFeatures(model), CLIPProcessor.from_pretrained(folder)

    return load
