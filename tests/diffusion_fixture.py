"""Offline tiny random Stable Diffusion pipeline and LoRA checkpoints of it, for tests.

``make_tiny_pipeline(folder)`` saves a randomly initialised ``StableDiffusionPipeline`` (a
two-block ``UNet2DConditionModel``, a two-block ``AutoencoderKL``, a two-layer ``CLIPTextModel``
and the local byte-level BPE tokenizer of ``clip_fixture``) with ``save_pretrained``: the folder
loads through ``AutoPipelineForText2Image.from_pretrained`` exactly as a hub model would. It
renders 32x32 images in 2 steps in a fraction of a second on a CPU; the images mean nothing, the
plumbing (loading, LoRA, seeding, sidecars) is what is tested.

``make_lora(base, folder, seed)`` adds a peft LoRA with random weights (``init_lora_weights=
False``: the default zero-initialised B matrix would leave the images unchanged) to the base
UNet's attention projections and saves it as the diffusers training scripts do
(``<folder>/pytorch_lora_weights.safetensors``); ``kohya_file`` rewrites such a file with the
key names of kohya-ss sd-scripts (``lora_unet_<module path with _>.lora_down/up.weight`` and
``.alpha``), which diffusers converts back when it loads it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from clip_fixture import make_tiny_tokenizer, tiny_text_config

RANK = 4


def make_tiny_pipeline(folder: Path, seed: int = 0, cross_attention_dim: int = 16) -> Path:
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = make_tiny_tokenizer()
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        norm_num_groups=4,
        attention_head_dim=4,
    )
    vae = AutoencoderKL(
        block_out_channels=[8, 16],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=32,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(**tiny_text_config(tokenizer, hidden_size=cross_attention_dim))
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
    )
    pipeline = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(folder)
    return folder


def make_lora(base: Path, folder: Path, seed: int) -> Path:
    """A random LoRA of the base UNet, saved as the diffusers scripts save a checkpoint's."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet")
    torch.manual_seed(seed)
    unet.add_adapter(
        LoraConfig(
            r=RANK,
            lora_alpha=RANK,
            init_lora_weights=False,
            target_modules=["to_q", "to_k", "to_v", "to_out.0"],
        )
    )
    StableDiffusionPipeline.save_lora_weights(
        folder, unet_lora_layers=get_peft_model_state_dict(unet)
    )
    return folder / "pytorch_lora_weights.safetensors"


def kohya_file(diffusers_lora: Path, path: Path) -> Path:
    """The same LoRA under sd-scripts' key names (alpha = rank: the same scale)."""
    from safetensors.torch import load_file, save_file

    weights = {}
    for key, value in load_file(diffusers_lora).items():
        module, kind = key.removeprefix("unet.").rsplit(".lora_", 1)
        name = "lora_unet_" + module.replace(".", "_")
        weights[f"{name}.lora_{'down' if kind.startswith('A') else 'up'}.weight"] = value
        weights[f"{name}.alpha"] = torch.tensor(float(RANK))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(path), metadata={"ss_network_module": "networks.lora"})
    return path
