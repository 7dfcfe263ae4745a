"""One image set's manifest, then its Inception features (the real set or one checkpoint)."""

import _checkout  # noqa: F401  (this checkout's ckpt_eval on sys.path)

from ckpt_eval.extract.feature_jobs import inception_features, organize
from ckpt_eval.jobs import run_job


def main(smk) -> None:
    p, image_set = smk.params, smk.params.organize
    name, images, root = image_set["name"], image_set["images"], image_set["root"]
    organize(name, images, root, image_set["on_bad_image"], smk.threads, smk.output.manifest)
    inception_features(
        smk.output.manifest,
        smk.output.features,
        p.weights,
        p.device,
        p.batch_size,
        p.num_workers,
        **(getattr(p, "subset", None) or {}),
        network_file=smk.input.network,
    )


run_job(snakemake, main, torch_job=True)  # noqa: F821
