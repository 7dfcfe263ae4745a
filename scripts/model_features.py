"""A model extractor's features of one set (rules `<key>_checkpoint` and `<key>_real`): the set
organized in the job (its manifest, made as its Inception job makes it), then image embeddings,
and a checkpoint's prompt embeddings where the extractor embeds prompts."""

import _checkout  # noqa: F401  (this checkout's ckpt_eval on sys.path)

from ckpt_eval.extract.feature_jobs import model_features, model_set
from ckpt_eval.features.extractors import extractor_of_rule
from ckpt_eval.jobs import run_job


def main(smk) -> None:
    enabled = smk.params.get("enabled", True)
    model_features(
        extractor_of_rule(smk.rule).key,
        model_set(smk.params.organize, smk.input.status, smk.threads, enabled),
        smk.params.get("pairing"),
        smk.input.status,
        smk.output[0],
        smk.params.device,
        smk.params.batch_size,
        enabled,
    )


run_job(snakemake, main, torch_job=True)  # noqa: F821
