"""MLflow: one run in a local file store (results/<run>/export/mlflow/), with every scalar as a
metric at its checkpoint's step, the recommendation as tags and `recommendation.md`, and the
grids, charts and consolidated_results.json as artifacts.

Open it with `mlflow ui --backend-store-uri results/<run>/export/mlflow`. MLflow 3 keeps the
file store in maintenance mode and refuses it unless MLFLOW_ALLOW_FILE_STORE is set; it is set
for this process (and `mlflow migrate-filestore` moves the run into a database if wanted).
Telemetry is switched off: the workflow reaches no network.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ckpt_eval.export.facts import PREFIX, ExportFacts

# MLflow's limit of metrics per log_batch call
BATCH = 1000


def write(facts: ExportFacts, folder: Path) -> None:
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=folder.resolve().as_uri())
    experiment = client.create_experiment(facts.run)
    rec = facts.recommendation
    tags = {
        f"{PREFIX}recommendation": str(rec["checkpoint"]),
        f"{PREFIX}recommended_step": str(rec["step"]),
        f"{PREFIX}summary": rec["summary"],
        f"{PREFIX}axis": facts.axis,
    }
    run = client.create_run(experiment, run_name=facts.run, tags=tags)
    run_id = run.info.run_id
    stamp = int(time.time() * 1000)
    metrics = [
        Metric(tag, value, stamp, point.step)
        for point in facts.points
        for tag, value in point.scalars.items()
    ]
    for start in range(0, len(metrics), BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + BATCH])
    client.log_text(run_id, facts.markdown(), "recommendation.md")
    for tag, path in facts.images:
        client.log_artifact(run_id, str(path), artifact_path=tag.rsplit("/", 1)[0])
    client.log_artifact(run_id, str(facts.result_path))
    client.set_terminated(run_id)
