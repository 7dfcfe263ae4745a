"""All metrics of one checkpoint from its cached features."""

from ckpt_eval.cli import run_job
from ckpt_eval.evaluate import checkpoint_metrics
from ckpt_eval.manifest import write_json


def main(smk) -> None:
    result = checkpoint_metrics(
        smk.input, smk.params.kid["subsets"], smk.params.kid["subset_size"], smk.params.seed
    )
    write_json(result, smk.output[0])


run_job(snakemake, main)  # noqa: F821
