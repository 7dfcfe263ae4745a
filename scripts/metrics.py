"""All metrics of one checkpoint from its cached features, and its bootstrap replicates."""

import _checkout  # noqa: F401  (this checkout's ckpt_eval on sys.path)

from ckpt_eval.analysis.checkpoint import checkpoint_metrics
from ckpt_eval.features.cache import save_features
from ckpt_eval.jobs import run_job
from ckpt_eval.jsonio import write_json


def main(smk) -> None:
    result, replicates = checkpoint_metrics(
        smk.input, smk.params.settings, smk.params.pairing, smk.params.workflow_dir, smk.threads
    )
    save_features(smk.output.replicates, replicates, {"set": result["name"]})
    write_json(result, smk.output.metrics)


run_job(snakemake, main)  # noqa: F821
