"""Figure 1: extraction efficiency, absolute throughput, and the machine's ceiling.

- full path: `ckpt_eval.extract.inception.extract` on image files (read, decode, clean resize in
  DataLoader workers, forward), as the feature jobs run it;
- bare forward: the same network on the same images already resized and normalised, batch by
  batch, nothing else;
- efficiency = full path images/s over bare forward images/s (target: at least 0.9);
- the same two for the TorchScript network as shipped (before the eager copy), and the full path
  with 0 and 1 DataLoader workers: what the optimisations were measured against;
- the fp32 GEMM ceiling: the best of torch.mm and numpy on 4096^3 and of 1x1 convolutions (GEMMs
  through oneDNN, the library that runs the network's convolutions) on the network's feature map
  sizes, on the same threads; the bare forward's share of it, at 11.42 GFLOP per image (the
  convolutions' multiply-adds x 2);
- CLIP ViT-L/14 image embeddings per second (`ckpt_eval.extract.clip.embed_images`), with random
  weights of the real architecture (the model is not on this machine; speed does not depend on
  the weights' values).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from common import Context, interleaved, median
from data import bench_data

from ckpt_eval.extract import inception

NAME = "extraction"
GFLOP_PER_IMAGE = 11.42  # convolutions of the FID Inception at 299x299, counted per layer
BATCH = 32


def _pre_resized(paths: list, fmt: torch.memory_format) -> list[torch.Tensor]:
    dataset = inception.CleanResizeDataset(paths)
    rows = [dataset[i] for i in range(len(paths))]
    batches = []
    for start in range(0, len(rows), BATCH):
        x = torch.stack(rows[start : start + BATCH]).permute(0, 3, 1, 2)
        batches.append(x.contiguous(memory_format=fmt))
    return batches


def _bare(net: torch.nn.Module, batches: list[torch.Tensor]) -> None:
    with torch.inference_mode():
        for x in batches:
            net(x).reshape(-1, inception.DIM).numpy()


# 1x1 convolutions are GEMMs ([batch*H*W, C] x [C, K]) run by oneDNN, the library that runs the
# network's convolutions; on feature maps of the network's sizes (35x35, 17x17, 8x8) with channel
# counts like its layers', at batch 32. The best rate of all is the ceiling.
CONV_SHAPES = ((32, 288, 35, 384), (32, 768, 17, 768), (32, 2048, 8, 2048))


def _gemm_rates(repeats: int) -> dict[str, float]:
    """GFLOP/s of fp32 matrix products (median of `repeats`): a 4096^3 product through torch.mm
    (MKL) and numpy (OpenBLAS), and the network's 1x1 convolution shapes through oneDNN."""
    n = 4096
    a, b = torch.randn(n, n), torch.randn(n, n)
    an, bn = a.numpy(), b.numpy()
    runs: dict[str, Any] = {
        "torch.mm 4096^3 (MKL)": lambda: a @ b,
        "numpy 4096^3 (OpenBLAS)": lambda: an @ bn,
    }
    flops = {name: 2 * n**3 for name in runs}
    for batch, c, hw, k in CONV_SHAPES:
        x = torch.randn(batch, c, hw, hw).contiguous(memory_format=torch.channels_last)
        w = torch.randn(k, c, 1, 1)
        name = f"1x1 conv {c}->{k} at {hw}x{hw}, batch {batch} (oneDNN)"
        runs[name] = _conv(x, w)
        flops[name] = 2 * batch * hw * hw * c * k
    for fn in runs.values():
        fn()  # warm-up
    times = interleaved(runs, repeats)
    return {name: flops[name] / median(t) / 1e9 for name, t in times.items()}


def _conv(x: torch.Tensor, w: torch.Tensor) -> Any:
    def run() -> None:
        with torch.inference_mode():
            torch.nn.functional.conv2d(x, w)

    return run


def _clip_rate(paths: list, repeats: int, workdir: Path) -> float:
    """CLIP ViT-L/14 image embeddings per second: figure `clip`'s model (the real
    architecture, random weights), loaded from its folder as the jobs load one."""
    from clip import model_folder

    from ckpt_eval.extract import clip as clip_embed

    cpu = torch.device("cpu")
    (net, processor), _ = clip_embed.load("clip", str(model_folder(workdir)), None, cpu)
    clip_embed.embed_images(paths[:4], net, processor, cpu, 4)  # warm-up
    run = {"clip": lambda: clip_embed.embed_images(paths, net, processor, cpu, BATCH)}
    return len(paths) / median(interleaved(run, repeats)["clip"])


def run(ctx: Context) -> dict[str, Any]:
    torch.set_num_threads(ctx.threads)
    data = bench_data(ctx.workdir, ctx.quick)
    paths = data.images(data.real)[: 64 if ctx.quick else 160]
    cpu = torch.device("cpu")
    layers, _ = inception.load_inception(inception.bundled_weights_path(), cpu)
    fast = inception.fast_copy(layers, cpu)
    fast_batches = _pre_resized(paths, torch.channels_last)
    ts_batches = _pre_resized(paths, torch.contiguous_format)

    def full(net: torch.nn.Module, workers: int) -> Any:
        return lambda: inception.extract(paths, net, cpu, BATCH, workers, desc="bench")

    # the jobs' worker count: config num_workers (2) capped on the CPU by the spare CPUs
    workers = inception.decode_workers(2, cpu)
    runs = {
        "bare forward": lambda: _bare(fast, fast_batches),
        "full path": full(fast, workers),
        "TorchScript bare forward": lambda: _bare(layers, ts_batches),
        "TorchScript full path": full(layers, workers),
    }
    for other in (0, 1, 2):
        if other != workers:
            runs[f"full path, {other} worker{'s' if other != 1 else ''}"] = full(fast, other)
    _bare(fast, fast_batches[:1])
    _bare(layers, ts_batches[:1])  # warm-up: oneDNN builds its kernels on first use
    times = interleaved(runs, ctx.repeats)
    rates = {name: len(paths) / median(t) for name, t in times.items()}
    ratios = [b / f for b, f in zip(times["bare forward"], times["full path"], strict=True)]
    gemm = _gemm_rates(ctx.repeats)
    clip_paths = paths[: 16 if ctx.quick else 64]
    return {
        "n_images": len(paths),
        "threads": ctx.threads,
        "workers": workers,
        "rates": rates,
        "times": times,
        "efficiency": rates["full path"] / rates["bare forward"],
        "efficiency_per_repeat": median(ratios),
        "gemm": gemm,
        "ceiling": max(gemm.values()),
        "clip_rate": _clip_rate(clip_paths, max(2, ctx.repeats // 2), ctx.workdir),
        "clip_images": len(clip_paths),
        "fast_is_eager": fast is not layers,
    }


def markdown(r: dict[str, Any], ctx: Context) -> str:
    rates = r["rates"]
    share = rates["bare forward"] * GFLOP_PER_IMAGE / r["ceiling"]
    met = "yes" if r["efficiency"] >= 0.9 else "NO"
    lines = [
        "## 1. Extraction efficiency (target: full path >= 0.9 x bare forward)",
        "",
        f"`python bench/run.py extraction` - {r['n_images']} real images of the bench set "
        f"(256x256 PNG), batch {BATCH}, {r['threads']} torch threads (`feature_threads`), "
        f"median of {ctx.repeats} interleaved runs. The full path decodes as the jobs do: "
        f"{r['workers']} DataLoader workers here (`num_workers: 2`, capped on the CPU by the "
        "CPUs left beside the torch threads, `ckpt_eval.extract.inception.decode_workers`); the "
        "other "
        "worker counts are for comparison.",
        "",
        "| path | images/s | seconds per run, median (min-max) |",
        "|---|---:|---:|",
    ]
    for name, rate in rates.items():
        seconds = r["times"][name]
        lines.append(
            f"| {name} | {rate:.1f} | {median(seconds):.2f} "
            f"({min(seconds):.2f}-{max(seconds):.2f}) |"
        )
    lines += [
        "",
        f"**Efficiency: {r['efficiency']:.2f}** (full path {rates['full path']:.1f} images/s "
        f"over bare forward {rates['bare forward']:.1f}; median of the per-run ratios "
        f"{r['efficiency_per_repeat']:.2f}). Target met: {met}.",
        "",
        f"Absolute, on this CPU: Inception {rates['full path']:.1f} images/s from files "
        f"({rates['TorchScript full path']:.1f} with the TorchScript network as shipped, "
        f"{rates['full path'] / rates['TorchScript full path']:.2f}x); CLIP ViT-L/14 image "
        f"embeddings {r['clip_rate']:.1f} images/s ({r['clip_images']} images, batch "
        f"{BATCH}, random weights of the real architecture).",
        "",
        "fp32 GEMM throughput on the same threads (the ceiling):",
        "",
        "| GEMM | GFLOP/s |",
        "|---|---:|",
        *(f"| {name} | {rate:.0f} |" for name, rate in r["gemm"].items()),
        "",
        f"The bare forward runs at {rates['bare forward'] * GFLOP_PER_IMAGE:.0f} GFLOP/s "
        f"({GFLOP_PER_IMAGE} GFLOP per image): **{100 * share:.0f}% of the best GEMM rate** "
        f"({r['ceiling']:.0f} GFLOP/s, the fastest matrix product measured here).",
    ]
    return "\n".join(lines) + "\n"
