"""The whole workflow in a temp dir: outputs, contracts, errors, and incremental reruns."""

from __future__ import annotations

import json
import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml
from cleanfid.fid import frechet_distance as cleanfid_frechet
from conftest import REPO, make_project, only_own_script, snakemake, write_images
from PIL import Image

from ckpt_eval.features.cache import load_features

pytestmark = pytest.mark.workflow


def planned_jobs(root: Path) -> dict[str, list[str]]:
    """Snakemake's own dry-run plan: rule -> the checkpoints (wildcards) it would run for."""
    done = snakemake(root, root / "config.yaml", "--dry-run")
    plan: dict[str, list[str]] = {}
    rule = None
    for line in done.stdout.splitlines():
        if match := re.match(r"^(?:local)?rule (\w+):", line.strip()):
            rule = match.group(1)
            plan.setdefault(rule, [])
        elif rule and (match := re.match(r"wildcards: ckpt=(\S+)", line.strip())):
            plan[rule].append(match.group(1))
    return plan


def test_results_follow_the_contract(finished: Path) -> None:
    out = finished / "results" / "t"
    result = json.loads((out / "consolidated_results.json").read_text())
    names = [c["name"] for c in result["checkpoints"]]
    assert names == ["step-100", "checkpoint-200", "e000003"]  # steps first, then epochs
    for row in result["checkpoints"]:
        for key in (
            "name",
            "step",
            "n_images",
            "fid",
            "kid_mean",
            "kid_std",
            "clip_score_mean",
            "clip_score_std",
            "rank",
        ):
            assert key in row
        assert (out / f"metrics_checkpoint_{row['name']}.json").is_file()
    assert {r["rank"] for r in result["checkpoints"]} == {1, 2, 3}
    assert result["recommendation"]["checkpoint"] in names
    assert result["recommendation"]["reasons"]
    assert result["provenance"]["inception_weights_sha256"].startswith("7ff4a85c")
    assert result["provenance"]["config_sha256"]
    csv_lines = (out / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("rank,name,step")
    assert len(csv_lines) == 4


def test_fid_in_results_matches_clean_fid_on_the_cached_features(finished: Path) -> None:
    out = finished / "results" / "t"
    real, _ = load_features(out / "features" / "inception" / "real.npz")
    result = json.loads((out / "consolidated_results.json").read_text())
    for row in result["checkpoints"]:
        fake, _ = load_features(out / "features" / "inception" / f"checkpoint_{row['name']}.npz")
        r = real["inception"].astype(np.float64)
        f = fake["inception"].astype(np.float64)
        expected = cleanfid_frechet(
            r.mean(0), np.cov(r, rowvar=False), f.mean(0), np.cov(f, rowvar=False)
        )
        assert row["fid"] == pytest.approx(expected, rel=1e-5)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for key, value in attrs:
            if key in ("src", "href") and value:
                self.sources.append(value)

    def handle_data(self, data):
        self.text.append(data)


def test_html_report_is_self_contained_and_says_clip_was_not_computed(finished: Path) -> None:
    html = (finished / "results" / "t" / "report.html").read_text()
    parser = _Collector()
    parser.feed(html)
    text = " ".join(parser.text)
    for section in (
        "Executive summary",
        "Methodology",
        "Results",
        "Per-checkpoint analysis",
        "Recommendation",
        "Insights",
        "Provenance",
    ):
        assert section in text
    assert "CLIP score was not computed" in text
    assert all(s.startswith(("data:", "#")) for s in parser.sources), parser.sources
    assert sum(s.startswith("data:image/png") for s in parser.sources) >= 2  # FID, KID charts
    assert sum(s.startswith("data:image/jpeg") for s in parser.sources) >= 6  # thumbnails
    assert parser.tags.count("script") == 1  # its own, and no other can run:
    only_own_script(html)
    md = (finished / "results" / "t" / "report.md").read_text()
    assert "](plots/fid.png)" in md and (finished / "results" / "t" / "plots" / "fid.png").is_file()


def test_rerun_with_nothing_changed_runs_nothing(finished: Path) -> None:
    done = snakemake(finished, finished / "config.yaml", "--dry-run")
    assert "Nothing to be done" in done.stdout + done.stderr


def test_changing_or_adding_a_checkpoint_reruns_only_that_checkpoint(
    tmp_path: Path, finished: Path
) -> None:
    root = tmp_path / "copy"
    shutil.copytree(finished, root, symlinks=True)
    Image.new("RGB", (48, 40), (200, 10, 10)).save(
        root / "samples" / "checkpoint-200" / "img_001.png"
    )
    plan = planned_jobs(root)
    per_checkpoint = {r: v for r, v in plan.items() if v}
    assert set(per_checkpoint) == {
        "inception_checkpoint",
        "clip_checkpoint",
        "metrics_checkpoint",
    }
    assert all(v == ["checkpoint-200"] for v in per_checkpoint.values())
    assert "inception_real" not in plan
    assert {"consolidate", "report"} <= set(plan)

    snakemake(root, root / "config.yaml")
    paths = write_images(root / "samples" / "step-400", 4, seed=9)
    with open(root / "prompts.csv", "a", encoding="utf-8") as handle:
        for path in paths:
            handle.write(f"step-400/{path.name},a new prompt\n")
    plan = planned_jobs(root)
    assert plan["inception_checkpoint"] == ["step-400"]
    assert plan["metrics_checkpoint"] == ["step-400"]
    assert plan["clip_checkpoint"] == ["step-400"]
    # the prompt file changed, but only the new checkpoint's prompts: nothing else reruns
    assert "inception_real" not in plan and "clip_real" not in plan


def test_editing_one_prompt_reruns_only_what_embeds_or_scores_it(
    tmp_path: Path, finished: Path
) -> None:
    """Prompts are a parameter of the jobs that pair them (CLIP's features, the metrics): an
    edited prompt reruns those of its checkpoint, and no manifest or Inception features."""
    root = tmp_path / "copy"
    shutil.copytree(finished, root, symlinks=True)
    lines = (root / "prompts.csv").read_text(encoding="utf-8").splitlines()
    edited = next(i for i, line in enumerate(lines) if line.startswith("checkpoint-200/"))
    lines[edited] = lines[edited].split(",", 1)[0] + ",an edited prompt"
    (root / "prompts.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    plan = planned_jobs(root)
    assert {r: v for r, v in plan.items() if v} == {
        "clip_checkpoint": ["checkpoint-200"],
        "metrics_checkpoint": ["checkpoint-200"],
    }
    assert {"consolidate", "report"} <= set(plan)
    assert not {"inception_checkpoint", "clip_real"} & set(plan)


def test_an_image_put_back_from_a_backup_is_seen_though_older_than_the_results(
    tmp_path: Path, finished: Path
) -> None:
    """Image files are not Snakemake inputs but a parameter of their set's Inception job (their
    paths, sizes and modification times, ckpt_eval/inputs/fingerprint.py): a real image
    replaced by another with an old modification time, which comparing modification times
    would not see, reruns the real set's Inception job (its manifest with it) and every
    checkpoint's metrics, and no checkpoint's extraction."""
    import os

    root = tmp_path / "copy"
    shutil.copytree(finished, root, symlinks=True)
    image = sorted((root / "real").iterdir())[0]
    with Image.open(image) as original:
        shape = original.size
    Image.new("RGB", shape, (255, 90, 30)).save(image)
    os.utime(image, (1_000_000_000, 1_000_000_000))  # 2001: older than every result
    plan = planned_jobs(root)
    assert "inception_real" in plan and "inception_checkpoint" not in plan
    assert set(plan["metrics_checkpoint"]) == {p.name for p in (root / "samples").iterdir()}


def test_a_wrong_config_key_stops_before_any_work(tmp_path: Path) -> None:
    config = make_project(tmp_path, {"step-1": 3})
    data = yaml.safe_load(config.read_text())
    data["samples"]["layot"] = "folders"
    data["kid"]["subsets"] = "many"
    config.write_text(yaml.safe_dump(data))
    done = snakemake(tmp_path, config, check=False)
    assert done.returncode != 0
    message = done.stdout + done.stderr
    assert "samples.layot" in message and "kid.subsets" in message
    assert not (tmp_path / "results").exists()


def test_an_image_without_prompt_is_an_error_naming_it(tmp_path: Path) -> None:
    config = make_project(tmp_path, {"step-1": 3, "step-2": 3})
    lines = (tmp_path / "prompts.csv").read_text().splitlines()
    (tmp_path / "prompts.csv").write_text("\n".join(x for x in lines if "step-2/img_001" not in x))
    done = snakemake(tmp_path, config, check=False)
    assert done.returncode != 0
    assert "step-2/img_001.png" in done.stdout + done.stderr
    assert "fallback_prompt" in done.stdout + done.stderr


def test_fallback_prompt_and_skipped_images_are_shown_in_the_report(tmp_path: Path) -> None:
    config = make_project(
        tmp_path,
        {"step-1": 3, "step-2": 3},
        fallback_prompt="a generic picture",
        on_bad_image="skip",
    )
    lines = (tmp_path / "prompts.csv").read_text().splitlines()
    (tmp_path / "prompts.csv").write_text("\n".join(x for x in lines if "step-2/img_001" not in x))
    (tmp_path / "samples" / "step-1" / "broken.png").write_bytes(b"not an image at all")
    snakemake(tmp_path, config)
    result = json.loads((tmp_path / "results" / "t" / "consolidated_results.json").read_text())
    rows = {r["name"]: r for r in result["checkpoints"]}
    assert rows["step-1"]["n_images"] == 3
    assert rows["step-1"]["skipped_images"][0]["path"].endswith("broken.png")
    assert rows["step-2"]["fallback_count"] == 1
    html = (tmp_path / "results" / "t" / "report.html").read_text()
    assert "broken.png" in html
    assert "step-2/img_001.png</code> had no prompt" in html


def test_clip_through_a_local_model_folder(tmp_path: Path, tiny_clip: Path) -> None:
    """The real loading path of a hub model, on a small random model saved to disk."""
    import torch
    from clip_fixture import as_embedding
    from transformers import CLIPModel, CLIPProcessor

    config = make_project(
        tmp_path, {"step-1": 3, "step-2": 4}, clip={"model": str(tiny_clip), "required": True}
    )
    snakemake(tmp_path, config)
    result = json.loads((tmp_path / "results" / "t" / "consolidated_results.json").read_text())
    assert result["clip"]["computed"]
    assert result["ranking"]["weights_used"]["clip_used"]
    model = CLIPModel.from_pretrained(tiny_clip).eval()
    processor = CLIPProcessor.from_pretrained(tiny_clip)
    for name in ("step-1", "step-2"):
        metrics = json.loads(
            (tmp_path / "results" / "t" / f"metrics_checkpoint_{name}.json").read_text()
        )
        for row in metrics["per_image"]:
            image = Image.open(tmp_path / "samples" / row["file"]).convert("RGB")
            with torch.no_grad():
                a = as_embedding(
                    model.get_image_features(**processor(images=[image], return_tensors="pt"))
                )
                b = as_embedding(
                    model.get_text_features(
                        **processor(text=[row["prompt"]], return_tensors="pt", padding=True)
                    )
                )
            cos = torch.nn.functional.cosine_similarity(a, b).item()
            assert row["clip_score"] == pytest.approx(100 * max(cos, 0.0), abs=1e-3)
        scores = [r["clip_score"] for r in metrics["per_image"]]
        assert metrics["clip_score_mean"] == pytest.approx(np.mean(scores))


def test_required_clip_that_cannot_load_stops_with_a_fix(tmp_path: Path) -> None:
    config = make_project(
        tmp_path, {"step-1": 3}, clip={"model": str(tmp_path / "missing-model"), "required": True}
    )
    done = snakemake(tmp_path, config, check=False)
    assert done.returncode != 0
    assert "clip.model at a local folder" in done.stdout + done.stderr


def test_demo_recommends_the_checkpoint_that_is_best_by_construction(
    tmp_path: Path, repo: Path
) -> None:
    """The bundled demo, as `make demo` runs it (offline, so CLIP is reported as not computed)."""
    from ckpt_eval.demo import BEST_CHECKPOINT

    shutil.copytree(repo / "demo", tmp_path / "demo")
    shutil.copy(repo / "config.yaml", tmp_path / "config.yaml")
    snakemake(tmp_path, tmp_path / "config.yaml")
    result = json.loads((tmp_path / "results" / "demo" / "consolidated_results.json").read_text())
    assert result["recommendation"]["checkpoint"] == BEST_CHECKPOINT
    assert result["recommendation"]["overfitting"]["flagged"]
    assert not result["clip"]["computed"]
    html = (tmp_path / "results" / "demo" / "report.html").read_text()
    assert "CLIP score was not computed" in html
    # measured, not asserted: every other checkpoint differs significantly from the best one,
    # and FID worsens significantly after it
    rec = result["recommendation"]
    assert rec["method"] == "significance"
    assert result["significance"]["tiers"][0] == [BEST_CHECKPOINT]
    assert all(w["significant"] for w in rec["overfitting"]["worse_after"])
    rows = {r["name"]: r for r in result["checkpoints"]}
    best = rows[BEST_CHECKPOINT]
    assert best["fid_ci"]["low"] < best["fid"] < best["fid_ci"]["high"]
    # the clean held-out crops are the most faithful and diverse; the degraded ones are not
    assert best["prdc"]["precision"] == max(r["prdc"]["precision"] for r in rows.values())
    assert best["prdc"]["coverage"] == max(r["prdc"]["coverage"] for r in rows.values())
    # the closest pairs are shown side by side: one sample and one real thumbnail per pair
    pairs = sum(len(r["memorization"]["inception"]["pairs"]) for r in rows.values())
    assert html.count('<div class="pairs">') == len(rows) and pairs == 6 * len(rows)


def test_fid_end_to_end_equals_clean_fid_compute_fid(finished: Path) -> None:
    """clean-fid's whole path (its own file listing, reading, resizing, batching) on the same
    folders, pointed at the same weights: clean-fid loads /tmp/inception-2015-12-05.pt and calls
    its `layers`, so a TorchScript wrapper around the bundled layers is put there."""
    import torch

    sys.path.insert(0, str(REPO / "bench"))
    from cleanfid import fid as cleanfid
    from cleanfid_compat import cleanfid_uses_bundled_weights

    result = json.loads((finished / "results" / "t" / "consolidated_results.json").read_text())
    with cleanfid_uses_bundled_weights():
        for row in result["checkpoints"]:
            expected = cleanfid.compute_fid(
                str(finished / "real"),
                str(finished / "samples" / row["name"]),
                mode="clean",
                device=torch.device("cpu"),
                num_workers=0,
                use_dataparallel=False,
                verbose=False,
            )
            assert row["fid"] == pytest.approx(expected, rel=1e-3)


def test_a_real_set_above_max_real_features_is_streamed(tmp_path: Path) -> None:
    """FID from the statistics of every real image, accumulated while extracting; the rest on
    a seeded subset of rows, and each checkpoint says so."""
    import torch

    from ckpt_eval.extract import inception
    from ckpt_eval.metrics.fid import frechet_distance, statistics

    config = make_project(tmp_path, {"step-1": 5, "step-2": 5}, n_real=12, max_real_features=10)
    snakemake(tmp_path, config)
    out = tmp_path / "results" / "t"
    arrays, _ = load_features(out / "features" / "inception" / "real.npz")
    assert arrays["inception"].shape == (10, 2048) and int(arrays["inception_count"]) == 12
    cpu = torch.device("cpu")
    layers, _ = inception.load_inception(inception.bundled_weights_path(), cpu)
    real_paths = sorted((tmp_path / "real").glob("*.png"))
    real = inception.extract(real_paths, inception.fast_copy(layers, cpu), cpu, 32, 0)
    result = json.loads((out / "consolidated_results.json").read_text())
    for row in result["checkpoints"]:
        fake, _ = load_features(out / "features" / "inception" / f"checkpoint_{row['name']}.npz")
        expected = frechet_distance(*statistics(real), *statistics(fake["inception"]))
        assert row["fid"] == pytest.approx(expected, rel=1e-6)
        assert row["n_real"] == 12
        assert any("random subset of 10 (max_real_features)" in w for w in row["warnings"])
