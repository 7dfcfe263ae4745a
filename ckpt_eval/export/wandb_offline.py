"""Weights & Biases in offline mode: one run under results/<run>/export/wandb/wandb/, with every
scalar logged at its checkpoint's step, the grids and charts as images at the latest step, and
the recommendation in the run's summary. Nothing is sent: `wandb sync <that offline-run-...
folder>` uploads it later, from a machine that may.
"""

from __future__ import annotations

import os
from pathlib import Path

from ckpt_eval.export.facts import PREFIX, ExportFacts


def write(facts: ExportFacts, folder: Path) -> None:
    # offline whatever the user's environment says; no error reports, no console capture
    os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_ERROR_REPORTING="false")
    import wandb

    run = wandb.init(
        mode="offline",
        dir=str(folder),
        project=facts.run,
        name=facts.run,
        config={"axis": facts.axis, "checkpoints": [p.checkpoint for p in facts.points]},
        settings=wandb.Settings(console="off", x_disable_stats=True, disable_git=True),
    )
    try:
        for point in facts.points:
            run.log(point.scalars, step=point.step)
        if facts.images:
            run.log(
                {tag: wandb.Image(str(path)) for tag, path in facts.images}, step=facts.last_step
            )
        rec = facts.recommendation
        run.summary[f"{PREFIX}recommendation"] = rec["checkpoint"]
        run.summary[f"{PREFIX}recommended_step"] = rec["step"]
        run.summary[f"{PREFIX}summary"] = rec["summary"]
        run.summary[f"{PREFIX}reasons"] = facts.markdown()
    finally:
        run.finish()
        # finish() returns before wandb's service process has flushed the run file; teardown
        # waits for that process to end, so the job's output is complete when the job ends
        wandb.teardown()
