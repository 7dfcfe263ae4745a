"""Find out once whether the CLIP model loads, so checkpoint jobs do not each retry the network."""

import _checkout  # noqa: F401  (this checkout's ckpt_eval on sys.path)

from ckpt_eval.extract.feature_jobs import clip_model_status
from ckpt_eval.jobs import run_job


def main(smk) -> None:
    clip_model_status(smk.params.model, smk.params.required, smk.params.device, smk.output[0])


run_job(snakemake, main, exit_when_done=True)  # noqa: F821
