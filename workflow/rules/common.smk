import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir)))

from ckpt_eval.config import validate_config
from ckpt_eval.discover import discover_checkpoints, list_images
from ckpt_eval.inception import weights_path

validate_config(config)

OUT = f"results/{config['run']}"
LOGS = f"{OUT}/logs"
ENV = "../../envs/ckpt-eval.yaml"
EXTENSIONS = config["samples"]["extensions"]
CHECKPOINTS = discover_checkpoints(config["samples"]["root"], EXTENSIONS)
REAL_IMAGES = [str(p) for p in list_images(config["real_images"], EXTENSIONS)]
INCEPTION_WEIGHTS = str(weights_path(config["fid"]["inception_weights"]))


wildcard_constraints:
    ckpt="[^/]+",


def checkpoint_images(wildcards):
    """The checkpoint's own image files: editing one reruns that checkpoint only."""
    return [str(p) for p in CHECKPOINTS[wildcards.ckpt]]


def per_checkpoint(pattern):
    return expand(pattern, ckpt=list(CHECKPOINTS))
