"""Inception features of one image set (the real set or one checkpoint)."""

import _checkout  # noqa: F401  (this checkout's ckpt_eval on sys.path)

from ckpt_eval.extract.feature_jobs import inception_features
from ckpt_eval.jobs import run_job


def main(smk) -> None:
    inception_features(
        smk.input.manifest,
        smk.output[0],
        smk.params.weights,
        smk.params.device,
        smk.params.batch_size,
        smk.params.num_workers,
        **(getattr(smk.params, "subset", None) or {}),
        network_file=smk.input.network,
    )


run_job(snakemake, main, torch_job=True)  # noqa: F821
