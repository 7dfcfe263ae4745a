"""Render one checkpoint's samples (base model + its LoRA) for the rest of the workflow."""

import _checkout  # noqa: F401  (this checkout's ckpt_eval on sys.path)

from ckpt_eval.generate.pipeline import generate_job
from ckpt_eval.jobs import run_job


def main(smk) -> None:
    lora = smk.input[0] if len(smk.input) else None  # no input: the base model alone
    generate_job(smk.params.checkpoint, lora, smk.params.settings, smk.output[0], smk.params.device)


run_job(snakemake, main, torch_job=True)  # noqa: F821
