"""Find out once whether a model extractor's model loads (rule `<key>_model`), so its feature
jobs do not each retry the network."""

import _checkout  # noqa: F401  (this checkout's ckpt_eval on sys.path)

from ckpt_eval.extract.feature_jobs import model_status
from ckpt_eval.features.extractors import extractor_of_rule
from ckpt_eval.jobs import run_job


def main(smk) -> None:
    model_status(
        extractor_of_rule(smk.rule).key,
        smk.params.model,
        smk.params.required,
        smk.params.device,
        smk.output[0],
        smk.params.get("processor"),
    )


run_job(snakemake, main, torch_job=True)  # noqa: F821
