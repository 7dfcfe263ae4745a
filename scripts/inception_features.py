"""One image set's manifest, then its Inception features (the real set or one checkpoint)."""

import _checkout  # noqa: F401  (this checkout's ckpt_eval on sys.path)

from ckpt_eval.extract.feature_jobs import inception_features, organized
from ckpt_eval.jobs import run_job
from ckpt_eval.jsonio import write_json


def main(smk) -> None:
    p = smk.params
    manifest = organized(p.organize, smk.threads)
    write_json(manifest, smk.output.manifest)
    inception_features(
        manifest,
        smk.output.features,
        p.weights,
        p.device,
        p.batch_size,
        p.num_workers,
        **(getattr(p, "subset", None) or {}),
        network_file=smk.input.network,
    )


run_job(snakemake, main, torch_job=True)  # noqa: F821
