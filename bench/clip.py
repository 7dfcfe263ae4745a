"""Figure `clip`: the CLIP job's path against the bare image forward of ViT-L/14.

With CLIP on, its image tower is the run's cost: ViT-L/14 at 224 pixels does over ten times
the work of Inception per image. The model here has the architecture of
openai/clip-vit-large-patch14 with random weights (no weights may be downloaded), saved with
`save_pretrained` and loaded by path through `ckpt_eval.extract.clip.load` as the job loads a
model; its tokenizer is the tests' small byte-level one (`tests/clip_fixture.py`), which splits
prompts into more tokens than CLIP's, so the text side is, if anything, overstated.

One checkpoint's images of the bench set (256x256 PNG) with their prompts, 2 torch threads,
batch 32, interleaved:

- **image forward alone**: `get_image_features` on pixel tensors made beforehand: the work no
  arrangement can avoid;
- **the job's path**: `ckpt_eval.extract.clip.extract` as `model_features` calls it: decode,
  the processor's resize/crop/normalise, the image forward, token counts and the text forward
  of each distinct prompt;
- **every prompt encoded**: the same with one text forward per image, as before distinct
  prompts were encoded once.

Target (issue 18): the job's path at the image forward's speed, at least 0.9 x.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import REPO, Context, Target, interleaved, median, yes_no
from data import RUN_CHECKPOINTS, bench_data
from PIL import Image

from ckpt_eval.extract import clip as clip_embed
from ckpt_eval.inputs.images import load_rgb

NAME = "clip"
BATCH = 32
TARGET = 0.9
VIT_L14 = {
    "vision": {
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "patch_size": 14,
        "image_size": 224,
    },
    "text": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12},
    "projection_dim": 768,
}


def model_folder(workdir: Path) -> Path:
    """A ViT-L/14-shaped CLIP of random weights with a processor, saved once into `workdir`."""
    folder = workdir / "clip-vit-l14-random"
    if (folder / "model.safetensors").exists():
        return folder
    sys.path.insert(0, str(REPO / "tests"))
    from clip_fixture import make_tiny_clip_processor, make_tiny_tokenizer, tiny_text_config
    from transformers import CLIPConfig, CLIPModel

    text = tiny_text_config(make_tiny_tokenizer(), hidden_size=VIT_L14["text"]["hidden_size"])
    text.update(VIT_L14["text"], num_attention_heads=12, projection_dim=VIT_L14["projection_dim"])
    config = CLIPConfig(
        text_config=text,
        vision_config={**VIT_L14["vision"], "projection_dim": VIT_L14["projection_dim"]},
        projection_dim=VIT_L14["projection_dim"],
    )
    torch.manual_seed(0)
    CLIPModel(config).eval().save_pretrained(folder)
    make_tiny_clip_processor(folder, VIT_L14["vision"]["image_size"])
    return folder


def _every_prompt(loaded: tuple[Any, Any], paths: list[Path], prompts: list[str]) -> None:
    """The job's work before distinct prompts: one text forward per image."""
    net, processor = loaded
    cpu = torch.device("cpu")
    clip_embed.embed_images(paths, net, processor, cpu, BATCH)
    clip_embed.token_counts(processor, prompts)
    clip_embed.embed_texts(prompts, net, processor, cpu, BATCH)


def run(ctx: Context) -> dict[str, Any]:
    torch.set_num_threads(ctx.threads)
    data = bench_data(ctx.workdir, ctx.quick)
    checkpoint = RUN_CHECKPOINTS[-1]
    rows = data.prompt_rows((checkpoint,))
    n = 8 if ctx.quick else 32
    prompt_of = {Path(file).name: prompt for file, prompt in rows}
    paths = data.images(data.checkpoint(checkpoint))[:n]
    prompts = [prompt_of[p.name] for p in paths]
    cpu = torch.device("cpu")
    folder = model_folder(ctx.workdir)
    start = time.perf_counter()
    loaded, _ = clip_embed.load("clip", str(folder), None, cpu)
    load_seconds = time.perf_counter() - start
    net, processor = loaded
    pixels = [
        processor(
            images=[Image.fromarray(load_rgb(p)) for p in paths[i : i + BATCH]],
            return_tensors="pt",
        )["pixel_values"]
        for i in range(0, len(paths), BATCH)
    ]

    @torch.no_grad()
    def forward() -> None:
        for batch in pixels:
            net.get_image_features(pixel_values=batch)

    def job() -> None:
        clip_embed.extract("clip", loaded, paths, prompts, cpu, BATCH)

    clip_embed.embed_images(paths[:2], net, processor, cpu, 2)  # warm-up
    times = interleaved(
        {
            "image forward alone": forward,
            "the job's path": job,
            "every prompt encoded": lambda: _every_prompt(loaded, paths, prompts),
        },
        max(2, ctx.repeats),
    )
    arrays, _ = clip_embed.extract("clip", loaded, paths, prompts, cpu, BATCH)
    every = clip_embed.embed_texts(prompts, net, processor, cpu, BATCH)
    return {
        "n_images": len(paths),
        "n_prompts": len(set(prompts)),
        "threads": ctx.threads,
        "load_seconds": load_seconds,
        "times": times,
        "ratio": median(times["image forward alone"]) / median(times["the job's path"]),
        "ratio_per_repeat": median(
            [
                f / j
                for f, j in zip(times["image forward alone"], times["the job's path"], strict=True)
            ]
        ),
        "text_difference": float(np.abs(arrays["text"] - every).max()),
    }


def targets(r: dict[str, Any]) -> list[Target]:
    return [
        Target(
            "CLIP ViT-L/14 job's path over its bare image forward",
            f"{r['ratio']:.2f} x",
            f">= {TARGET} x",
            r["ratio"] >= TARGET,
        )
    ]


def markdown(r: dict[str, Any], ctx: Context) -> str:
    met = yes_no(targets(r)[0])
    lines = [
        f"## CLIP's image path (target: the job's path >= {TARGET} x the bare image forward)",
        "",
        f"`python bench/run.py clip` - {r['n_images']} images of one checkpoint of the bench "
        f"set (256x256 PNG, {r['n_prompts']} distinct prompts), CLIP of ViT-L/14's "
        f"architecture with random weights loaded from a folder ({r['load_seconds']:.1f} s), "
        f"batch {BATCH}, {r['threads']} torch threads, median of {max(2, ctx.repeats)} "
        "interleaved runs (min-max).",
        "",
        "| path | images/s | seconds per run |",
        "|---|---:|---:|",
    ]
    for name, seconds in r["times"].items():
        lines.append(
            f"| {name} | {r['n_images'] / median(seconds):.2f} | {median(seconds):.1f} "
            f"({min(seconds):.1f}-{max(seconds):.1f}) |"
        )
    lines += [
        "",
        f"**The job's path runs at {r['ratio']:.2f} x the image forward's speed** (median of "
        f"the per-run ratios {r['ratio_per_repeat']:.2f}). Target met: {met}. The text "
        "embeddings of distinct prompts encoded once differ from one text forward per image by "
        f"at most {r['text_difference']:.1e} (other batches, other padding).",
    ]
    return "\n".join(lines) + "\n"
