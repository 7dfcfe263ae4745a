"""CLIP image embeddings of one set, and prompt embeddings of a checkpoint."""

import _checkout  # noqa: F401  (this checkout's ckpt_eval on sys.path)

from ckpt_eval.cli import run_job
from ckpt_eval.features import clip_features


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
