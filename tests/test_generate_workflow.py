"""The generate stage through the workflow: a base model and the diffusers training script's
LoRA checkpoints become rendered samples that the organize and prompts stages take up (the stages
after them treat them as any samples, see test_workflow.py), and a rerun after a stop renders
only what is missing. Run up to the prompts stage only, to keep the test short."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import snakemake, write_images
from diffusion_fixture import make_lora, make_tiny_pipeline
from PIL import Image

from ckpt_eval.generate.plan import BASELINE

pytestmark = pytest.mark.workflow

PROMPTS = ["a photo of a dog", "a red car parked in front of a house"]
CHECKPOINTS = [BASELINE, "step-000100", "step-000200", "step-000300"]


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """checkpoint-100: LoRA A, checkpoint-200: LoRA B, checkpoint-300: LoRA A again; the
    workflow run up to every checkpoint's prompt pairing."""
    root = tmp_path_factory.mktemp("generate")
    base = make_tiny_pipeline(root / "base")
    a = make_lora(base, root / "out" / "checkpoint-100", seed=1)
    make_lora(base, root / "out" / "checkpoint-200", seed=2)
    (root / "out" / "checkpoint-300").mkdir()
    shutil.copy(a, root / "out" / "checkpoint-300" / a.name)
    write_images(root / "real", 6, seed=1, size=(32, 32))
    config = {
        "run": "t",
        "real_images": "real",
        "samples": {"root": "out", "layout": "diffusers"},
        "generate": {
            "base_model": "base",
            "prompts": PROMPTS,
            "images_per_prompt": 2,
            "steps": 2,
            "width": 32,
            "height": 32,
            "negative_prompt": "blurry",
        },
        "device": "cpu",
        "feature_threads": 1,  # two generate jobs at once on two cores
        "num_workers": 0,
        "clip": {"model": "no-such-clip-model", "required": False},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    snakemake(root, root / "config.yaml", *(f"results/t/prompts/{n}.json" for n in CHECKPOINTS))
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
        pairs = json.loads((out / f"prompts/{name}.json").read_text())["pairs"]
        assert [p["prompt"] for p in pairs] == [PROMPTS[0]] * 2 + [PROMPTS[1]] * 2
        assert not any(p["fallback"] for p in pairs)
    # the rest of the workflow is planned for every checkpoint, the baseline first, and
    # nothing is rendered again
    done = snakemake(project, project / "config.yaml", "--dry-run")
    stats = (done.stdout + done.stderr).split("Job stats:")[1].split("\n\n")[0]
    counts = dict(line.split() for line in stats.splitlines()[3:] if line.strip())
    assert "generate" not in counts
    assert counts["metrics_checkpoint"] == counts["inception_checkpoint"] == str(len(CHECKPOINTS))
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
