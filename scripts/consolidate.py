"""Rank all checkpoints and recommend one: consolidated_results.json and metrics.csv."""

import _checkout  # noqa: F401  (this checkout's ckpt_eval on sys.path)

from ckpt_eval.analysis.consolidate import consolidate_files
from ckpt_eval.jobs import run_job


def main(smk) -> None:
    consolidate_files(
        smk.input.metrics,
        smk.input.replicates,
        smk.input.manifests,
        smk.input.inception_real,
        smk.input.clip_status,
        smk.config,
        smk.output.json,
        smk.output.csv,
        smk.params.workflow_dir,
        smk.input.models,
    )


run_job(snakemake, main)  # noqa: F821
