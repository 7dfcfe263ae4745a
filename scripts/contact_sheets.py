"""Draw the prompt x checkpoint grid's contact sheets (results/<run>/grids/grid-001.jpg, ...)."""

import _checkout  # noqa: F401  (this checkout's ckpt_eval on sys.path)

from ckpt_eval.jobs import run_job
from ckpt_eval.report.grid import contact_sheet_files


def main(smk) -> None:
    contact_sheet_files(smk.input.json, smk.input.manifests, smk.output.grids)


run_job(snakemake, main)  # noqa: F821
