"""Pair each image of one checkpoint with its prompt."""

import _checkout  # noqa: F401  (this checkout's ckpt_eval on sys.path)

from ckpt_eval.inputs.manifest import read_manifest
from ckpt_eval.inputs.prompts import pair_prompts
from ckpt_eval.jobs import run_job
from ckpt_eval.jsonio import write_json


def main(smk) -> None:
    pairs = pair_prompts(
        read_manifest(smk.input.manifest),
        smk.params.prompts,
        smk.params.prompt_file,
        smk.params.fallback,
        smk.params.seeds,
    )
    write_json(pairs, smk.output[0])


run_job(snakemake, main)  # noqa: F821
