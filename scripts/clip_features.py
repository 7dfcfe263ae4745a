"""CLIP image embeddings of one set, and prompt embeddings of a checkpoint."""

import _checkout  # noqa: F401  (this checkout's ckpt_eval on sys.path)

from ckpt_eval.extract.feature_jobs import clip_features
from ckpt_eval.jobs import run_job


def main(smk) -> None:
    clip_features(
        smk.input.manifest,
        smk.input.get("pairs"),
        smk.input.status,
        smk.output[0],
        smk.params.device,
        smk.params.batch_size,
        smk.params.get("enabled", True),
    )


run_job(snakemake, main, exit_when_done=True)  # noqa: F821
