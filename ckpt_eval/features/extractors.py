"""The feature extractors, declared once: what each computes, its size and preprocessing, and the
fingerprint a cached feature file must carry to be used (weights sha256, preprocessing id).

Plan-time: the declarations import no torch; each names the `ckpt_eval.extract` module that
runs it, which only the feature jobs import. The metrics jobs check every feature file against
`fingerprints(config)` before reading a number from it, so a file made with other weights or
another preprocessing is never silently mixed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ckpt_eval.features import inception_id

# CLIP's text encoder sees at most this many tokens; longer prompts are truncated and listed
CLIP_MAX_TOKENS = 77


@dataclass(frozen=True)
class Extractor:
    key: str  # the feature file's folder under features/, and what metrics name in `features`
    arrays: tuple[str, ...]  # the arrays its feature file holds
    description: str
    module: str  # the torch side that runs it
    # (validated config) -> what a feature file must record; None = checked by its model status
    fingerprint: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    # whether this run extracts it at all, and for the real set too (config -> bool)
    enabled: Callable[[Mapping[str, Any]], bool] = lambda config: True
    real: Callable[[Mapping[str, Any]], bool] = lambda config: True


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
            f"prompt (at most {CLIP_MAX_TOKENS} tokens), transformers CLIPModel",
            module="ckpt_eval.extract.clip",
        ),
    )
}


def fingerprints(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every fingerprinted extractor's fingerprint for this config (rule parameters)."""
    return {k: e.fingerprint(config) for k, e in EXTRACTORS.items() if e.fingerprint}


def enabled_extractors(config: Mapping[str, Any]) -> list[Extractor]:
    """The extractors this run uses, in registry order."""
    return [e for e in EXTRACTORS.values() if e.enabled(config)]


def feature_paths(out: str, config: Mapping[str, Any], checkpoint: str) -> dict[str, str]:
    """The metrics job's feature inputs: `<key>` the checkpoint's file of each extractor and
    `<key>_real` the real set's, for those that extract the real set."""
    paths = {}
    for e in enabled_extractors(config):
        paths[e.key] = f"{out}/features/{e.key}/checkpoint_{checkpoint}.npz"
        if e.real(config):
            paths[f"{e.key}_real"] = f"{out}/features/{e.key}/real.npz"
    return paths
