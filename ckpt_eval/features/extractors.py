"""The feature extractors, declared once: what each computes, its size and preprocessing, and the
fingerprint a cached feature file must carry to be used (weights sha256, preprocessing id).

Plan-time: the declarations import no torch; each names the `ckpt_eval.extract` module that
runs it, which only the feature jobs import. The metrics jobs check every feature file against
`fingerprints(config)` before reading a number from it, so a file made with other weights or
another preprocessing is never silently mixed in.

Model extractors (those with a config `section`: clip, cmmd, dinov2, pickscore) are run by the
same three generated rules each (workflow/rules/features.smk): `<key>_model` loads the model
once and writes `features/<key>/model.json` (whether it loaded, and why not), `<key>_checkpoint`
and `<key>_real` write `features/<key>/checkpoint_<ckpt>.npz` and `features/<key>/real.npz`.
A model that cannot be loaded with `<section>.required: false` gives files with
`available: false` and the reason, never numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ckpt_eval.features import inception_id

# CLIP's text encoder sees at most this many tokens; longer prompts are truncated and listed
CLIP_MAX_TOKENS = 77

# The preprocessing of each model extractor, recorded in its feature files (`preprocessing`).
CLIP_PREPROCESSING = "the model's CLIPProcessor (transformers)"
# google-research cmmd io_util._center_crop_and_resize + embedding._clip_preprocess: the
# reference's own resize to the model size then does nothing (the image is already that size)
CMMD_PREPROCESSING = (
    "CMMD reference: RGB uint8 -> centre crop to the largest square (offset (long - short) // 2 "
    "on the long side) -> PIL bicubic resize to the model's image size (336 for ViT-L/14@336) "
    "-> float32 / 255 -> (x - mean) / std with the model processor's image_mean and image_std "
    "(CLIP's)"
)
DINOV2_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# layer6ai-labs/dgm-eval DINOv2Encoder.transform (clean_resize off): torchvision
# Resize((224, 224), BICUBIC) on the PIL image is PIL's bicubic resize of the whole image
DINOV2_PREPROCESSING = (
    f"dgm-eval: RGB uint8 -> PIL bicubic resize of the whole image to {DINOV2_SIZE}x"
    f"{DINOV2_SIZE} (no crop; the aspect ratio is not kept) -> float32 / 255 -> "
    "(x - mean) / std with ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225); "
    "the model folder's image processor is not used"
)
PICKSCORE_PREPROCESSING = (
    "the CLIPProcessor of pickscore.processor, as PickScore's reference code (laion CLIP-H/14: "
    "bicubic resize of the shortest edge to 224, centre crop 224, CLIP mean/std; prompts "
    f"truncated at {CLIP_MAX_TOKENS} tokens)"
)


@dataclass(frozen=True)
class Extractor:
    key: str  # the feature file's folder under features/, and what metrics name in `features`
    arrays: tuple[str, ...]  # the arrays its feature file holds (when available)
    description: str
    module: str  # the torch side that runs it
    # (validated config) -> what a feature file must record; None = checked by its model status
    fingerprint: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    # whether this run extracts it at all, and for the real set too (config -> bool)
    enabled: Callable[[Mapping[str, Any]], bool] = lambda config: True
    real: Callable[[Mapping[str, Any]], bool] = lambda config: True
    # Model extractors: the config section with `model`, `required` (and `processor`,
    # `batch_size`); None = not a model extractor (Inception has rules of its own)
    section: str | None = None
    prompts: bool = False  # also embeds each checkpoint image's own prompt
    has_processor: bool = False  # the processor comes from `<section>.processor`
    # the real set's file is made but holds no arrays when this is false, saying `real_off`
    real_enabled: Callable[[Mapping[str, Any]], bool] = lambda config: True
    real_off: str | None = None
    preprocessing: str | None = None
    # what a model extractor's load error names (`ckpt_eval.extract.hub.model_load_error`):
    # "The CLIP model", the transformers classes a folder is saved with, and what a run
    # without it lacks
    label: str | None = None
    model_class: str | None = None
    processor_class: str | None = None
    without: str | None = None

    def model(self, config: Mapping[str, Any]) -> str:
        return str(self._config(config)["model"])

    def processor(self, config: Mapping[str, Any]) -> str | None:
        """The processor's hub id or folder when it is not the model's own."""
        return self._config(config).get("processor") if self.has_processor else None

    def required(self, config: Mapping[str, Any]) -> bool:
        return bool(self._config(config).get("required", True))

    def batch_size(self, config: Mapping[str, Any]) -> int:
        """`<section>.batch_size`, else the run's `batch_size`."""
        return int(self._config(config).get("batch_size") or config["batch_size"])

    def _config(self, config: Mapping[str, Any]) -> Mapping[str, Any]:
        if self.section is None:
            raise ValueError(f"extractor {self.key} has no model config section")
        return config.get(self.section) or {}


def _enabled(section: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda config: bool((config.get(section) or {}).get("enabled", False))


EXTRACTORS: dict[str, Extractor] = {
    e.key: e
    for e in (
        Extractor(
            key="inception",
            arrays=("inception",),
            description=f"Inception-v3 pool3 ({inception_id.DIM}-d), {inception_id.PREPROCESSING}",
            module="ckpt_eval.extract.inception",
            fingerprint=lambda config: inception_id.fingerprint(config["fid"]["inception_weights"]),
        ),
        Extractor(
            key="clip",
            arrays=("image", "text"),
            description="CLIP image embeddings and the text embeddings of each image's own "
            f"prompt (at most {CLIP_MAX_TOKENS} tokens), transformers CLIPModel; "
            f"preprocessing: {CLIP_PREPROCESSING}. Always on (its model status may say it "
            "could not be loaded); the real set's images only for the memorization screen",
            module="ckpt_eval.extract.clip",
            section="clip",
            prompts=True,
            real_enabled=lambda config: bool(config["memorization"]["clip"]),
            real_off="memorization.clip is false",
            preprocessing=CLIP_PREPROCESSING,
            label="The CLIP model",
            model_class="CLIPModel",
            processor_class="CLIPProcessor",
            without="CLIP score",
        ),
        Extractor(
            key="cmmd",
            arrays=("image",),
            description="CLIP ViT-L/14@336 image embeddings for CMMD (raw projected "
            "embeddings, not L2-normalised: the metric normalises), transformers CLIPModel; "
            f"preprocessing: {CMMD_PREPROCESSING}",
            module="ckpt_eval.extract.clip",
            enabled=_enabled("cmmd"),
            section="cmmd",
            preprocessing=CMMD_PREPROCESSING,
            label="The CMMD CLIP model",
            model_class="CLIPModel",
            processor_class="CLIPProcessor",
            without="CMMD",
        ),
        Extractor(
            key="dinov2",
            arrays=("image",),
            description="DINOv2 CLS token (transformers Dinov2Model last_hidden_state[:, 0], "
            "after the final layer norm: the x_norm_clstoken dgm-eval takes; 768-d for "
            f"ViT-B/14) for FD-DINOv2; preprocessing: {DINOV2_PREPROCESSING}",
            module="ckpt_eval.extract.dinov2",
            enabled=_enabled("dinov2"),
            section="dinov2",
            preprocessing=DINOV2_PREPROCESSING,
            label="The DINOv2 model",
            model_class="Dinov2Model",
            without="FD-DINOv2",
        ),
        Extractor(
            key="pickscore",
            arrays=("image", "text", "logit_scale"),
            description="PickScore: image embeddings, text embeddings of each image's own "
            f"prompt (at most {CLIP_MAX_TOKENS} tokens) and the model's logit_scale.exp() "
            "(a 1-element array), transformers CLIPModel; checkpoints only (no real set); "
            f"preprocessing: {PICKSCORE_PREPROCESSING}",
            module="ckpt_eval.extract.clip",
            enabled=_enabled("pickscore"),
            real=lambda config: False,
            section="pickscore",
            prompts=True,
            has_processor=True,
            preprocessing=PICKSCORE_PREPROCESSING,
            label="The PickScore model",
            model_class="CLIPModel",
            processor_class="CLIPProcessor",
            without="PickScore",
        ),
    )
}


def fingerprints(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every fingerprinted extractor's fingerprint for this config (rule parameters)."""
    return {k: e.fingerprint(config) for k, e in EXTRACTORS.items() if e.fingerprint}


def enabled_extractors(config: Mapping[str, Any]) -> list[Extractor]:
    """The extractors this run uses, in registry order."""
    return [e for e in EXTRACTORS.values() if e.enabled(config)]


def model_extractors(config: Mapping[str, Any]) -> list[Extractor]:
    """The enabled extractors the generic model rules run (`<key>_model`, `_checkpoint`,
    `_real`), in registry order."""
    return [e for e in enabled_extractors(config) if e.section is not None]


def extractor_of_rule(rule: str) -> Extractor:
    """The model extractor a generated rule runs: rules are named `<key>_model`,
    `<key>_checkpoint` and `<key>_real` (workflow/rules/features.smk)."""
    key, _, kind = rule.rpartition("_")
    extractor = EXTRACTORS.get(key)
    if (
        extractor is None
        or extractor.section is None
        or kind not in ("model", "checkpoint", "real")
    ):
        raise ValueError(f"rule {rule!r} is not a model extractor's rule")
    return extractor


def feature_paths(out: str, config: Mapping[str, Any], checkpoint: str) -> dict[str, str]:
    """The metrics job's feature inputs: `<key>` the checkpoint's file of each extractor and
    `<key>_real` the real set's, for those that extract the real set."""
    paths = {}
    for e in enabled_extractors(config):
        paths[e.key] = f"{out}/features/{e.key}/checkpoint_{checkpoint}.npz"
        if e.real(config):
            paths[f"{e.key}_real"] = f"{out}/features/{e.key}/real.npz"
    return paths
