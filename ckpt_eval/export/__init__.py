"""Export a run's results to the experiment trackers people already watch their training in.

One small module per tracker (`tensorboard_events`, `mlflow_store`, `wandb_offline`), each with
`write(facts, folder)`, behind the registry below: the `export:` section of the config has one
key per entry, the workflow's `export` rule one job per enabled entry, and the message for a
missing package names the entry's pinned package. What is exported is decided once, in
`ckpt_eval.export.facts` (every metric of the metrics registry at each checkpoint's step, the
recommendation, the grids and charts as images), so the trackers cannot drift apart.

Nothing here imports a tracker's package: planning (common.smk) only asks whether it is
installed, and the export job imports it.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ckpt_eval.errors import CkptEvalError


@dataclass(frozen=True)
class Tracker:
    """One tracker: its config key (`export.<key>`, and `results/<run>/export/<key>/`), the
    package whose import name `module` it needs (pinned as `package==version` in
    requirements-dev.txt) and the module of this package that writes it."""

    key: str
    label: str
    module: str
    package: str
    version: str
    writer: str

    @property
    def install(self) -> str:
        return f"pip install {self.package}=={self.version}"


TRACKERS: dict[str, Tracker] = {
    t.key: t
    for t in (
        # tensorboard's own event writer: no torch import (tensorboardX imports torch whenever
        # it is installed), and whoever opens the files in TensorBoard has this package already
        Tracker(
            "tensorboard",
            "TensorBoard",
            "tensorboard",
            "tensorboard",
            "2.21.0",
            "tensorboard_events",
        ),
        Tracker("mlflow", "MLflow", "mlflow", "mlflow-skinny", "3.17.2", "mlflow_store"),
        Tracker("wandb", "Weights & Biases", "wandb", "wandb", "0.31.0", "wandb_offline"),
    )
}


def enabled(config: Mapping[str, Any]) -> list[str]:
    """The trackers the (validated) config turns on, in registry order."""
    section = config.get("export") or {}
    return [key for key in TRACKERS if section.get(key)]


def missing_package(key: str) -> CkptEvalError:
    tracker = TRACKERS[key]
    return CkptEvalError(
        f"export.{key} is on, but the {tracker.label} package `{tracker.module}` is not installed.",
        fix=f"`{tracker.install}` in the environment that runs the workflow, or set "
        f"export.{key}: false.",
    )


def installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it (plan time stays fast)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules
        return False


def check_installed(config: Mapping[str, Any]) -> None:
    """Stop before any work when an enabled tracker's package is missing, naming it."""
    for key in enabled(config):
        if not installed(TRACKERS[key].module):
            raise missing_package(key)


def export_files(
    key: str,
    result_path: str | Path,
    grids_dir: str | Path,
    plots_dir: str | Path,
    folder: str | Path,
) -> None:
    """The export job: write tracker `key`'s files for the run into `folder` (made anew)."""
    from ckpt_eval.export.facts import export_facts
    from ckpt_eval.jsonio import write_json

    tracker = TRACKERS[key]
    try:
        importlib.import_module(tracker.module)
    except ImportError as exc:
        raise missing_package(key) from exc
    facts = export_facts(result_path, grids_dir, plots_dir)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    importlib.import_module(f"{__name__}.{tracker.writer}").write(facts, folder)
    write_json({"tracker": key, **facts.record()}, folder / "export.json")
