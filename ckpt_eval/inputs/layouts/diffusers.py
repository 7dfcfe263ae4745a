"""The diffusers example training scripts: checkpoints only, no samples on disk.

`examples/text_to_image/train_text_to_image_lora.py` (and its siblings) save
`<output_dir>/checkpoint-<global step>/` with `accelerator.save_state` (the LoRA scripts also write
`pytorch_lora_weights.safetensors` there) and send validation images to the trackers only. So
this reader lists the checkpoints and says that samples must be generated before evaluating.
"""

from __future__ import annotations

from pathlib import Path

from ckpt_eval.inputs.layouts.base import Detection, Found, Options
from ckpt_eval.inputs.layouts.simpletuner import checkpoint_folders

TITLE = "diffusers example scripts"


def detect(root: Path, extensions: tuple[str, ...]) -> Detection | None:
    folders = checkpoint_folders(root)
    if not folders:
        return None
    return Detection("diffusers", 0, 0, f"{len(folders)} checkpoint-<step>/ folders, no samples")


def read(options: Options) -> Found:
    return Found(
        "diffusers",
        options.root,
        [],
        checkpoint_files=checkpoint_folders(options.root),
        notes=[
            "the diffusers example scripts keep no sample images on disk: samples must be "
            "generated from each checkpoint before it can be evaluated."
        ],
        needs_generation=True,
    )
