"""The case users have, end to end: 32 samples per checkpoint rendered from the same 32 prompts
and sources at every checkpoint, one clean checkpoint among damaged ones.

The hand-made report this tool replaces had exactly this, and an earlier version of this tool
put all checkpoints in one tier and then recommended the earliest, the most damaged one. The
workflow must recommend the clean checkpoint, compare every pair paired on 32 pairs, correct the
verdicts over the family, and say how many images would settle what stays open.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import snakemake
from PIL import Image

from ckpt_eval.demo import _blur, _load_sources, _noise, _random_crop, _to_uint8

N = 32
SIZE = 64
# training order; step-3000 is the clean one, the others blurred or noised
LADDER = {
    "step-1000": ("blur", 2.0),
    "step-2000": ("blur", 1.0),
    "step-3000": ("clean", 0.0),
    "step-4000": ("noise", 14.0),
}
BEST = "step-3000"


def _damage(pixels: np.ndarray, kind: str, amount: float, rng: np.random.Generator) -> np.ndarray:
    if kind == "blur":
        return _to_uint8(_blur(pixels.astype(np.float64), amount))
    if kind == "noise":
        return _to_uint8(_noise(pixels.astype(np.float64), amount, rng))
    return pixels


@pytest.fixture(scope="module")
def ladder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ladder")
    rng = np.random.default_rng(7)
    sources = _load_sources()
    (root / "real").mkdir()
    for i in range(120):
        img, _ = sources[i % len(sources)]
        Image.fromarray(_random_crop(img, SIZE, rng)).save(root / "real" / f"real_{i:03d}.png")
    # the 32 source crops every checkpoint renders, with their prompts, in one order
    drawn = [(sources[i % len(sources)], i) for i in range(N)]
    crops = [(_random_crop(img, SIZE, rng), prompt) for (img, prompt), _ in drawn]
    rows = []
    for name, (kind, amount) in LADDER.items():
        folder = root / "samples" / name
        folder.mkdir(parents=True)
        for i, (pixels, prompt) in enumerate(crops):
            out = _damage(pixels, kind, amount, np.random.default_rng(i))
            Image.fromarray(out).save(folder / f"img_{i:03d}.png")
            rows.append({"file": f"{name}/img_{i:03d}.png", "prompt": prompt})
    with open(root / "prompts.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "prompt"])
        writer.writeheader()
        writer.writerows(rows)
    config = {
        "run": "ladder",
        "real_images": "real",
        "samples": {"root": "samples"},
        "prompts": "prompts.csv",
        "device": "cpu",
        "num_workers": 0,
        "clip": {"model": "no-such-clip-model", "required": False},
        "report": {"thumbnails": 2},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    snakemake(root, root / "config.yaml")
    return root


@pytest.mark.workflow
def test_the_clean_checkpoint_is_recommended_from_paired_comparisons(ladder: Path) -> None:
    result = json.loads((ladder / "results/ladder/consolidated_results.json").read_text())
    rec = result["recommendation"]
    assert rec["checkpoint"] == BEST, rec["reasons"]
    rows = {r["name"]: r for r in result["checkpoints"]}
    # every pair of checkpoints shares the 32 (prompt, position) keys: all comparisons paired
    family = result["significance"]["family"]
    assert family["paired"] == family["pairs_compared"] == 6
    assert family["comparisons"] == 6 * len(family["metrics"])
    for name, row in rows.items():
        if name != BEST:
            for c in row["vs_top"].values():
                assert c["pairing"] == "paired" and c["pairs"] == N
    # the heaviest damage is told apart from the clean checkpoint after the correction
    worst = rows["step-1000"]["vs_top"]["kid"]
    assert worst["significant"] and worst["better"] == BEST and worst["p_adjusted"] < 0.05
    # the recommendation is in the first tier and never a checkpoint worse on every metric
    assert BEST in result["significance"]["tiers"][0]
    assert rec["alternative"] is None or rec["alternative"] in result["significance"]["tiers"][0]


@pytest.mark.workflow
def test_the_report_says_how_it_compared_and_what_more_images_would_do(ladder: Path) -> None:
    result = json.loads((ladder / "results/ladder/consolidated_results.json").read_text())
    markdown = (ladder / "results/ladder/report.md").read_text(encoding="utf-8")
    assert "All 6 pairs of checkpoints were compared paired (by prompt and position)" in markdown
    assert "Holm's method" in markdown
    advice = result["significance"]["family"]["sample_size"]
    assert advice["best"] == BEST and advice["n_images"] == N
    if advice["separated"]:
        assert f"{advice['runner_up']} is already told apart from {BEST}" in markdown
    else:
        assert f"about {advice['n_needed']} images per checkpoint (now {N})" in markdown
    # 32 images against 2048 dimensions: the small-sample preset is suggested
    assert "ranking: {preset: small-sample}" in markdown
