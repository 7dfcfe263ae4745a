"""Export to trackers: the scalars are every registry metric at each checkpoint's step, and each
tracker's files read back through that tracker's own reader (TensorBoard's event_accumulator,
the MLflow client, the records of W&B's offline run file) give the results' numbers."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from checkpoint_eval import config, evaluate_arrays, through_every_output, write_png
from conftest import REPO, SNAKEMAKE, make_project
from PIL import Image
from wandb_records import read_offline_run

from ckpt_eval.analysis.checkpoint import analysis_settings
from ckpt_eval.errors import CkptEvalError
from ckpt_eval.export import TRACKERS, check_installed, enabled, export_files
from ckpt_eval.export.facts import PREFIX, export_facts
from ckpt_eval.jsonio import write_json
from ckpt_eval.metrics.registry import quantities
from ckpt_eval.report.prose import recommendation_summary
from ckpt_eval.report.render import write_charts

STEPS = {"step-100": 100, "step-200": 200, "step-300": 300}


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """results/<run>/ of three checkpoints evaluated from arrays (step-100 the closest to the
    real set), with the report's charts and one grid contact sheet (JPEG, as the report writes
    them)."""
    out = tmp_path_factory.mktemp("results")
    run_config = config()
    rng = np.random.default_rng(0)
    real = rng.normal(size=(30, 8))
    png, rows, replicates = write_png(out), [], {}
    for name, shift in zip(STEPS, (0.0, 1.0, 2.0), strict=True):
        row, reps = evaluate_arrays(
            name, rng.normal(size=(20, 8)) + shift, real, analysis_settings(run_config), image=png
        )
        rows.append(row)
        replicates[name] = reps
    made = through_every_output(rows, replicates, run_config, out)
    write_json(made.result, out / "consolidated_results.json")
    write_charts(made.pngs, out / "plots")
    (out / "grids").mkdir()
    Image.new("RGB", (30, 20), (200, 40, 10)).save(out / "grids" / "grid-001.jpg", quality=95)
    return out


def exported(run_folder: Path, key: str, folder: Path) -> Path:
    export_files(
        key,
        run_folder / "consolidated_results.json",
        run_folder / "grids",
        run_folder / "plots",
        folder / key,
    )
    return folder / key


def result(run_folder: Path) -> dict:
    return json.loads((run_folder / "consolidated_results.json").read_text())


def expected_scalars(row: dict) -> dict[str, float]:
    """Straight from the row: each registry quantity's point and interval ends, score, rank."""
    out = {}
    for q in quantities():
        if q.value(row) is not None:
            out[PREFIX + q.key] = q.value(row)
        if q.ci(row):
            out[PREFIX + q.key + "_ci_low"] = q.ci(row)["low"]
            out[PREFIX + q.key + "_ci_high"] = q.ci(row)["high"]
    return {**out, PREFIX + "score": row["score"], PREFIX + "rank": row["rank"]}


def test_scalars_are_every_registry_metric_at_the_step(run_folder: Path) -> None:
    facts = export_facts(
        run_folder / "consolidated_results.json", run_folder / "grids", run_folder / "plots"
    )
    rows = {r["name"]: r for r in result(run_folder)["checkpoints"]}
    assert facts.axis == "step" and not facts.skipped
    assert [(p.checkpoint, p.step) for p in facts.points] == list(STEPS.items())
    for point in facts.points:
        assert point.scalars == pytest.approx(expected_scalars(rows[point.checkpoint]))
        # FID and KID with their intervals at least; nothing a registry metric lacks
        assert {PREFIX + "fid", PREFIX + "fid_ci_low", PREFIX + "kid_ci_high"} <= set(point.scalars)
    assert facts.recommendation["checkpoint"] == result(run_folder)["recommendation"]["checkpoint"]
    assert [tag for tag, _ in facts.images][0] == "grids/grid-001"
    assert "charts/fid" in [tag for tag, _ in facts.images]


def test_epochs_are_the_axis_when_no_checkpoint_has_a_step(
    run_folder: Path, tmp_path: Path
) -> None:
    data = result(run_folder)
    for i, row in enumerate(data["checkpoints"]):
        row["step"], row["epoch"] = None, (i + 1 if i < 2 else None)
    write_json(data, tmp_path / "r.json")
    facts = export_facts(tmp_path / "r.json", tmp_path / "no-grids", tmp_path / "no-plots")
    assert facts.axis == "epoch"
    assert [p.step for p in facts.points] == [1, 2]
    assert facts.skipped == ("step-300",)
    assert facts.images == ()


def test_each_lora_scale_of_a_sweep_is_its_own_series(run_folder: Path, tmp_path: Path) -> None:
    """Candidates `<checkpoint>@<scale>` share their checkpoint's step: each scale gets its own
    tags, so no tag has two values at one step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = result(run_folder)
    names = ["step-100@0.5", "step-100@1.0", "step-200@0.5"]
    for row, name, step in zip(data["checkpoints"], names, (100, 100, 200), strict=True):
        row["name"], row["step"] = name, step
    write_json(data, tmp_path / "sweep.json")
    facts = export_facts(tmp_path / "sweep.json", tmp_path / "none", tmp_path / "none")
    by_tag: dict[str, list[int]] = {}
    for point in facts.points:
        for tag in point.scalars:
            by_tag.setdefault(tag, []).append(point.step)
    assert by_tag[PREFIX + "scale-0.5/fid"] == [100, 200]
    assert by_tag[PREFIX + "scale-1.0/fid"] == [100]
    assert all(len(steps) == len(set(steps)) for steps in by_tag.values())
    export_files("tensorboard", tmp_path / "sweep.json", tmp_path, tmp_path, tmp_path / "tb")
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0})
    events.Reload()
    fid = events.Scalars(PREFIX + "scale-0.5/fid")
    assert [(s.step, s.value) for s in fid] == [
        (r["step"], pytest.approx(r["fid"], rel=1e-6))
        for r in data["checkpoints"]
        if r["name"].endswith("@0.5")
    ]


def test_tensorboard_reads_back(run_folder: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = exported(run_folder, "tensorboard", tmp_path)
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    rows = result(run_folder)["checkpoints"]
    for tag in expected_scalars(rows[0]):
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == list(STEPS.values())
        assert [s.value for s in scalars] == pytest.approx(
            [expected_scalars(r)[tag] for r in rows], rel=1e-6
        )
    images = events.Tags()["images"]
    assert "grids/grid-001" in images and "charts/fid" in images
    (grid,) = events.Images("grids/grid-001")
    assert (grid.step, grid.width, grid.height) == (300, 30, 20)
    assert grid.encoded_image_string == (run_folder / "grids" / "grid-001.jpg").read_bytes()
    (text,) = events.Tensors(PREFIX + "recommendation")
    assert recommendation_summary(result(run_folder)) in text.tensor_proto.string_val[0].decode()
    assert json.loads((folder / "export.json").read_text())["steps"] == STEPS


def test_tensorboard_gets_each_image_as_its_file_or_as_an_rgb_png(tmp_path: Path) -> None:
    """TensorBoard's summary names L, LA, RGB and RGBA: such a file (a JPEG sheet, a PNG chart)
    goes as it is; another (a palette PNG, 16-bit grey) as an RGB PNG of the same pixels."""
    from ckpt_eval.export.tensorboard_events import COLORSPACE, encoded

    sheet = tmp_path / "sheet.jpg"
    Image.new("RGB", (30, 20), (200, 40, 10)).save(sheet, quality=95)
    assert encoded(sheet) == (30, 20, COLORSPACE["RGB"], sheet.read_bytes())
    palette = Image.new("P", (7, 5), 3)
    palette.putpalette([0, 0, 0] * 3 + [10, 200, 30])
    palette.save(tmp_path / "palette.png")
    width, height, colorspace, data = encoded(tmp_path / "palette.png")
    assert (width, height, colorspace) == (7, 5, COLORSPACE["RGB"])
    with Image.open(io.BytesIO(data)) as png:
        assert (png.format, png.mode) == ("PNG", "RGB")
        assert np.array_equal(np.asarray(png), np.asarray(palette.convert("RGB")))


def test_mlflow_reads_back(
    run_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    folder = exported(run_folder, "mlflow", tmp_path)
    client = MlflowClient(tracking_uri=folder.resolve().as_uri())
    (experiment,) = [e for e in client.search_experiments() if e.name == "t"]
    (run,) = client.search_runs([experiment.experiment_id])
    rows = result(run_folder)["checkpoints"]
    for tag in expected_scalars(rows[0]):
        history = client.get_metric_history(run.info.run_id, tag)
        assert [m.step for m in history] == list(STEPS.values())
        assert [m.value for m in history] == pytest.approx([expected_scalars(r)[tag] for r in rows])
    rec = result(run_folder)["recommendation"]
    assert run.data.tags[PREFIX + "recommendation"] == rec["checkpoint"]
    assert run.info.status == "FINISHED"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"grids", "charts", "recommendation.md", "consolidated_results.json"} <= artifacts
    assert "grids/grid-001.jpg" in {a.path for a in client.list_artifacts(run.info.run_id, "grids")}


def test_wandb_offline_run_reads_back(run_folder: Path, tmp_path: Path) -> None:
    folder = exported(run_folder, "wandb", tmp_path)
    (run_dir,) = (folder / "wandb").glob("offline-run-*")
    run = read_offline_run(run_dir)
    assert (run.project, run.name) == ("t", "t")
    rows = result(run_folder)["checkpoints"]
    for tag in expected_scalars(rows[0]):
        assert [run.history[s].get(tag) for s in STEPS.values()] == pytest.approx(
            [expected_scalars(r)[tag] for r in rows]
        )
    # an image is logged as nested keys (wandb's `image-file` object): its type and file
    assert run.history[300]["grids/grid-001/_type"] == "image-file"
    assert (run_dir / "files" / run.history[300]["grids/grid-001/path"]).is_file()
    assert run.history[300]["charts/fid/_type"] == "image-file"
    assert (
        run.summary[PREFIX + "recommendation"] == result(run_folder)["recommendation"]["checkpoint"]
    )


@pytest.mark.parametrize("key", list(TRACKERS))
def test_a_missing_package_is_named(
    key: str, run_folder: Path, tmp_path: Path, monkeypatch
) -> None:
    tracker = TRACKERS[key]
    monkeypatch.setitem(sys.modules, tracker.module, None)  # `import <module>` now fails
    with pytest.raises(CkptEvalError) as raised:
        check_installed(config(export={key: True}))
    assert f"pip install {tracker.package}=={tracker.version}" in str(raised.value)
    assert f"export.{key}: false" in str(raised.value)
    with pytest.raises(CkptEvalError, match=f"pip install {tracker.package}"):
        exported(run_folder, key, tmp_path)
    check_installed(config())  # off: nothing is asked for


def test_each_tracker_is_off_by_default_and_one_key() -> None:
    from ckpt_eval.config import load_schema

    section = load_schema()["properties"]["export"]["properties"]
    assert list(section) == list(TRACKERS)
    assert all(section[k]["default"] is False and section[k]["type"] == "boolean" for k in section)
    assert enabled(config()) == []
    assert enabled(config(export={"wandb": True, "tensorboard": True})) == ["tensorboard", "wandb"]


def test_the_install_hint_is_the_pin_of_requirements_dev() -> None:
    """The error's `pip install` names the pin of requirements-dev.txt, and so do the schema's
    description and docs/watch.md."""
    from ckpt_eval.config import load_schema

    schema = load_schema()["properties"]["export"]["properties"]
    pins = (REPO / "requirements-dev.txt").read_text().splitlines()
    for tracker in TRACKERS.values():
        assert f"{tracker.package}=={tracker.version}" in pins
        assert tracker.install.split()[-1] in (REPO / "docs" / "watch.md").read_text()
        assert tracker.install in " ".join(schema[tracker.key]["description"].split())


@pytest.mark.workflow
def test_a_missing_tracker_package_stops_the_plan(tmp_path: Path) -> None:
    """Planning stops before any job when export.wandb is on and wandb cannot be imported
    (hidden by a sitecustomize that refuses it)."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'wandb':\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
    )
    project = make_project(tmp_path / "p", {"step-100": 3}, export={"wandb": True})
    done = subprocess.run(
        [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--configfile", str(project), "-n", "-c1"],
        capture_output=True,
        text=True,
        cwd=tmp_path / "p",
        env=dict(os.environ, PYTHONPATH=f"{hide}{os.pathsep}{REPO}"),
    )
    assert done.returncode != 0
    assert "pip install wandb==0.31.0" in done.stdout + done.stderr
    assert not (tmp_path / "p" / "results").exists()
