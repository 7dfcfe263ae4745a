import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir)))

from ckpt_eval.config import validate_config
from ckpt_eval.discover import discover_checkpoints, list_images
from ckpt_eval.inception import weights_path
from ckpt_eval.prompts import prompts_of_checkpoint, read_prompt_file

validate_config(config)

OUT = f"results/{config['run']}"
LOGS = f"{OUT}/logs"
ENV = "../../envs/ckpt-eval.yaml"
EXTENSIONS = config["samples"]["extensions"]
CHECKPOINTS = discover_checkpoints(config["samples"]["root"], EXTENSIONS)
REAL_IMAGES = [str(p) for p in list_images(config["real_images"], EXTENSIONS)]
INCEPTION_WEIGHTS = str(weights_path(config["fid"]["inception_weights"]))
PROMPTS = read_prompt_file(config["prompts"])


wildcard_constraints:
    ckpt="[^/]+",


def checkpoint_images(wildcards):
    """The checkpoint's own image files: editing one reruns that checkpoint only."""
    return [str(p) for p in CHECKPOINTS[wildcards.ckpt]]


def checkpoint_prompts(wildcards):
    """Only this checkpoint's prompts, as a parameter: editing the prompt file reruns just the
    checkpoints whose prompts changed."""
    return prompts_of_checkpoint(PROMPTS, wildcards.ckpt)


def per_checkpoint(pattern):
    return expand(pattern, ckpt=list(CHECKPOINTS))
