"""The run's Inception network, checked and folded once, for every Inception job to load."""

import _checkout  # noqa: F401  (this checkout's ckpt_eval on sys.path)

from ckpt_eval.extract.feature_jobs import inception_network
from ckpt_eval.jobs import run_job


def main(smk) -> None:
    inception_network(smk.params.weights, smk.output[0])


run_job(snakemake, main, torch_job=True)  # noqa: F821
