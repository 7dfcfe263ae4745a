"""Render report.md, the self-contained report.html and the charts."""

import _checkout  # noqa: F401  (this checkout's ckpt_eval on sys.path)

from ckpt_eval.jobs import run_job
from ckpt_eval.report.render import render_files


def main(smk) -> None:
    render_files(
        smk.input.json,
        smk.input.manifests,
        smk.config,
        smk.output.md,
        smk.output.html,
        smk.output.plots,
        smk.params.grids,
    )


run_job(snakemake, main)  # noqa: F821
