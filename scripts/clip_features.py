"""CLIP image and prompt embeddings of one checkpoint."""

from ckpt_eval.cli import run_job
from ckpt_eval.features import clip_features


def main(smk) -> None:
    clip_features(
        smk.input.manifest,
        smk.input.pairs,
        smk.input.status,
        smk.output[0],
        smk.params.device,
        smk.params.batch_size,
    )


run_job(snakemake, main)  # noqa: F821
