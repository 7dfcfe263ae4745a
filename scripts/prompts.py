"""Pair each image of one checkpoint with its prompt."""

from ckpt_eval.cli import run_job
from ckpt_eval.manifest import read_json, write_json
from ckpt_eval.prompts import pair_prompts, read_prompt_file


def main(smk) -> None:
    prompts = read_prompt_file(smk.input.prompts)
    pairs = pair_prompts(read_json(smk.input.manifest), prompts, smk.input.prompts,
                         smk.params.fallback)
    write_json(pairs, smk.output[0])


run_job(snakemake, main)  # noqa: F821
