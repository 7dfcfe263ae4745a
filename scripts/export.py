"""Export the run's metrics, recommendation and images to one experiment tracker."""

import _checkout  # noqa: F401  (this checkout's ckpt_eval on sys.path)

from ckpt_eval.export import export_files
from ckpt_eval.jobs import run_job


def main(smk) -> None:
    export_files(
        smk.wildcards.tracker,
        smk.input.json,
        smk.params.grids,
        smk.input.plots,
        smk.output[0],
    )


run_job(snakemake, main)  # noqa: F821
