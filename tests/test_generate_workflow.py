"""The generate stage through the workflow: a base model and the diffusers training script's
LoRA checkpoints become rendered samples that the features stage takes up (organized, paired
with their prompts; the stages after it treat them as any samples, see test_workflow.py), and a
rerun after a stop renders only what is missing."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import snakemake, write_images
from diffusion_fixture import make_lora, make_tiny_pipeline
from PIL import Image

from ckpt_eval.features.cache import load_features
from ckpt_eval.generate.plan import BASELINE

pytestmark = pytest.mark.workflow

PROMPTS = ["a photo of a dog", "a red car parked in front of a house"]
CHECKPOINTS = [BASELINE, "step-000100", "step-000200", "step-000300"]


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def generate_config(**generate: object) -> dict:
    """The diffusers checkpoints under out/ rendered from the tiny base model at 32x32 in 2
    steps, on the CPU, without a CLIP model."""
    return {
        "run": "t",
        "real_images": "real",
        "samples": {"root": "out", "layout": "diffusers"},
        "generate": {
            "base_model": "base",
            "prompts": PROMPTS,
            "steps": 2,
            "width": 32,
            "height": 32,
            **generate,
        },
        "device": "cpu",
        "feature_threads": 1,  # two generate jobs at once on two cores
        "num_workers": 0,
        "clip": {"model": "no-such-clip-model", "required": False},
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """checkpoint-100: LoRA A, checkpoint-200: LoRA B, checkpoint-300: LoRA A again; the
    workflow run up to every checkpoint's manifest (its Inception job's) and prompt pairing (its
    CLIP features: no CLIP model, so they record the prompts they would embed)."""
    root = tmp_path_factory.mktemp("generate")
    base = make_tiny_pipeline(root / "base")
    a = make_lora(base, root / "out" / "checkpoint-100", seed=1)
    make_lora(base, root / "out" / "checkpoint-200", seed=2)
    (root / "out" / "checkpoint-300").mkdir()
    shutil.copy(a, root / "out" / "checkpoint-300" / a.name)
    write_images(root / "real", 6, seed=1, size=(32, 32))
    config = generate_config(images_per_prompt=2, negative_prompt="blurry")
    (root / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    paired = [f"results/t/features/clip/checkpoint_{n}.npz" for n in CHECKPOINTS]
    organized = [f"results/t/manifests/checkpoint_{n}.json" for n in CHECKPOINTS]
    snakemake(root, root / "config.yaml", *paired, *organized)
    return root


def generated(root: Path, name: str) -> list[Path]:
    return sorted((root / "results" / "t" / "generated" / name).glob("*.png"))


def test_generated_images_are_the_samples_each_with_its_own_prompt(project: Path) -> None:
    out = project / "results/t"
    for name in CHECKPOINTS:
        manifest = json.loads((out / f"manifests/checkpoint_{name}.json").read_text())
        assert [i["file"] for i in manifest["images"]] == [
            f"{name}/p00{p}-i00{i}.png" for p in range(2) for i in range(2)
        ]
        _, meta = load_features(out / f"features/clip/checkpoint_{name}.npz")
        assert meta["prompts"] == [PROMPTS[0]] * 2 + [PROMPTS[1]] * 2
    # the rest of the workflow is planned for every checkpoint, the baseline first, and
    # nothing is rendered again
    done = snakemake(project, project / "config.yaml", "--dry-run")
    stats = (done.stdout + done.stderr).split("Job stats:")[1].split("\n\n")[0]
    counts = dict(line.split() for line in stats.splitlines()[3:] if line.strip())
    assert "generate" not in counts
    # each checkpoint's Inception job ran (it writes the manifest)
    assert "inception_checkpoint" not in counts
    assert counts["metrics_checkpoint"] == str(len(CHECKPOINTS))
    assert counts["report"] == "1"


def test_images_have_sidecars_and_differ_only_by_the_lora(project: Path) -> None:
    images = {name: generated(project, name) for name in CHECKPOINTS}
    assert all(len(found) == 4 for found in images.values())
    for name, found in images.items():
        for image in found:
            sidecar = json.loads(image.with_suffix(".json").read_text())
            assert sidecar["checkpoint"] == name
            assert sidecar["negative_prompt"] == "blurry"
            assert sidecar["size"] == [32, 32]
            assert sidecar["prompt"] == PROMPTS[sidecar["prompt_index"]]
            assert (sidecar["lora_sha256"] is None) == (name == BASELINE)
            with Image.open(image) as png:
                assert json.loads(png.text["image_seed"]) == sidecar["image_seed"]
    a, b, a_again, base = (
        images[n] for n in ("step-000100", "step-000200", "step-000300", BASELINE)
    )
    for k in range(4):
        assert not np.array_equal(pixels(a[k]), pixels(b[k]))  # another LoRA, same seed
        assert np.array_equal(pixels(a[k]), pixels(a_again[k]))  # same LoRA, another job
        assert not np.array_equal(pixels(a[k]), pixels(base[k]))


def test_a_stopped_generation_resumes_with_what_is_missing(project: Path, tmp_path: Path) -> None:
    """As after a kill or an out-of-memory stop: some images on disk, no record. The rerun
    renders the rest, the same bytes as before; nothing else is rerun."""
    shutil.copytree(project, tmp_path / "p", symlinks=True)
    root = tmp_path / "p"
    folder = root / "results/t/generated/step-000200"
    before = {p.name: p.read_bytes() for p in generated(root, "step-000200")}
    (folder / "images.json").unlink()
    (folder / "p001-i001.png").unlink()
    (folder / "p001-i001.json").unlink()
    target = "results/t/generated/step-000200/images.json"
    snakemake(root, root / "config.yaml", target)
    record = json.loads((folder / "images.json").read_text())
    assert (record["rendered"], record["reused"]) == (1, 3)
    assert {p.name: p.read_bytes() for p in generated(root, "step-000200")} == before
    log = (root / "results/t/logs/generate/step-000200.log").read_text()
    assert "rendered 1 image(s)" in log
    # nothing changed: nothing runs
    done = snakemake(root, root / "config.yaml", target, "--dry-run")
    assert "Nothing to be done" in done.stdout + done.stderr


def test_the_run_goes_on_to_evaluate_and_report_every_checkpoint(project: Path) -> None:
    """The whole run from the rendered images: every checkpoint and the baseline are measured,
    the baseline is a reference the others are tested against, and the report is written."""
    snakemake(project, project / "config.yaml")
    out = project / "results/t"
    result = json.loads((out / "consolidated_results.json").read_text())
    rows = {r["name"]: r for r in result["checkpoints"]}
    assert sorted(rows) == sorted(CHECKPOINTS)
    assert all(r["n_images"] == 4 and r["fid"] is not None for r in rows.values())
    assert result["recommendation"]["checkpoint"] in CHECKPOINTS[1:]
    assert any(f"({BASELINE})" in reason for reason in result["recommendation"]["reasons"])
    html = (out / "report.html").read_text(encoding="utf-8")
    assert all(name in html for name in CHECKPOINTS)
    # no sweep: the candidates are the checkpoints, and nothing names a scale
    assert not any("lora_scale" in r for r in result["checkpoints"])
    assert "lora_scale" not in result["recommendation"]
    assert "lora_scale" not in (out / "metrics.csv").read_text().splitlines()[0]


# --- a LoRA strength sweep ---------------------------------------------------------------------

SCALES = [0.0, 0.5, 1.0]
SWEEP = [BASELINE] + [f"step-{s:06d}@{x}" for s in (100, 200) for x in ("0.0", "0.5", "1.0")]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two LoRA checkpoints at three scales (scale 0 = the LoRA switched off), 10 images each
    (enough for bootstrap intervals), run to the report."""
    root = tmp_path_factory.mktemp("sweep")
    base = make_tiny_pipeline(root / "base")
    make_lora(base, root / "out" / "checkpoint-100", seed=1)
    make_lora(base, root / "out" / "checkpoint-200", seed=2)
    write_images(root / "real", 12, seed=1, size=(32, 32))
    config = generate_config(images_per_prompt=5, lora_scales=SCALES)
    config["bootstrap"] = {"resamples": 200}
    (root / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    snakemake(root, root / "config.yaml")
    return root


def test_a_strength_sweep_ranks_and_compares_every_checkpoint_at_every_scale(sweep: Path) -> None:
    out = sweep / "results/t"
    result = json.loads((out / "consolidated_results.json").read_text())
    rows = result["checkpoints"]
    # candidates sorted by step, then scale; the baseline once, first
    assert [r["name"] for r in rows] == SWEEP
    by_name = {r["name"]: r for r in rows}
    assert "lora_scale" not in by_name[BASELINE]
    for row in rows[1:]:
        checkpoint, scale = row["name"].split("@")
        assert (row["lora_checkpoint"], row["lora_scale"]) == (checkpoint, float(scale))
        assert row["step"] == int(checkpoint.removeprefix("step-"))
        assert row["n_images"] == 10 and row["fid_ci"] is not None
    # every candidate ranked, by its score
    ranked = sorted(rows, key=lambda r: r["rank"])
    assert [r["rank"] for r in ranked] == list(range(1, len(SWEEP) + 1))
    assert [r["score"] for r in ranked] == sorted((r["score"] for r in rows), reverse=True)
    # the same prompts and seeds for every candidate: every comparison is paired
    seeds = {tuple((i["prompt"], i["seed"]) for i in r["per_image"]) for r in rows}
    assert len(seeds) == 1
    family = result["significance"]["family"]
    assert family["paired"] == family["pairs_compared"] == len(SWEEP) * (len(SWEEP) - 1) // 2
    # scale 0 is the LoRA switched off: the base model's pixels, so its FID exactly
    for step in (100, 200):
        assert by_name[f"step-{step:06d}@0.0"]["fid"] == by_name[BASELINE]["fid"]
        assert by_name[f"step-{step:06d}@1.0"]["fid"] != by_name[BASELINE]["fid"]
    # the previous checkpoint of a candidate is the one before it at the same scale
    later = by_name["step-000200@0.5"]["vs_previous"]["fid"]
    expected = by_name["step-000200@0.5"]["fid"] - by_name["step-000100@0.5"]["fid"]
    assert later["difference"] == pytest.approx(expected)
    # the recommendation names the checkpoint and its scale
    rec = result["recommendation"]
    assert rec["checkpoint"] == f"{rec['lora_checkpoint']}@{rec['lora_scale']:.1f}"
    assert rec["checkpoint"] in SWEEP[1:] and rec["step"] == by_name[rec["checkpoint"]]["step"]
    assert any(
        f"Ship {rec['lora_checkpoint']} at LoRA scale" in reason for reason in rec["reasons"]
    )
    assert {o["lora_scale"] for o in rec["other_scales"]} == set(SCALES) - {rec["lora_scale"]}
    # the CSV and both reports show the scale
    with open(out / "metrics.csv", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    header = list(table[0])
    assert header[header.index("epoch") + 1 : header.index("epoch") + 3] == [
        "lora_checkpoint",
        "lora_scale",
    ]
    assert [(r["name"], r["lora_scale"]) for r in table] == [
        (r["name"], str(r.get("lora_scale", ""))) for r in rows
    ]
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "| Step | LoRA scale | Images |" in markdown
    assert f"(step {rec['step']}, LoRA scale {rec['lora_scale']})" in markdown
    assert '<button type="button" class="sort">LoRA scale</button></th>' in (
        out / "report.html"
    ).read_text(encoding="utf-8")


def test_adding_a_scale_adds_its_candidates_and_reruns_no_other(sweep: Path) -> None:
    config = yaml.safe_load((sweep / "config.yaml").read_text())
    config["generate"]["lora_scales"] = [*SCALES, 1.5]
    (sweep / "wider.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    done = snakemake(sweep, sweep / "wider.yaml", "--dry-run")
    stats = (done.stdout + done.stderr).split("Job stats:")[1].split("\n\n")[0]
    counts = dict(line.split() for line in stats.splitlines()[3:] if line.strip())
    assert counts["generate"] == counts["metrics_checkpoint"] == "2"  # step-000100@1.5, ...@1.5
    assert "step-000100@1.5" in done.stdout + done.stderr
