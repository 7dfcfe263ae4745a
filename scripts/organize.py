"""Write the manifest of one image set (the real set or one checkpoint), sealed: the jobs that
read it refuse one edited by hand (`ckpt_eval.inputs.manifest.read_manifest`)."""

import _checkout  # noqa: F401  (this checkout's ckpt_eval on sys.path)

from ckpt_eval.inputs.manifest import build_manifest
from ckpt_eval.jobs import run_job
from ckpt_eval.jsonio import write_json


def main(smk) -> None:
    manifest = build_manifest(
        smk.params.name, smk.params.images, smk.params.root, smk.params.on_bad_image, smk.threads
    )
    write_json(manifest, smk.output[0])


run_job(snakemake, main)  # noqa: F821
