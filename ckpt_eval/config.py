"""Validate a run's config against the schema, fill defaults, and hash it for provenance."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ckpt_eval.errors import CkptEvalError

if TYPE_CHECKING:
    import jsonschema

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "config.schema.yaml"


def _with_defaults(validator_class: type) -> type:
    """Extend a validator so that it fills schema defaults, nested objects included."""
    import jsonschema  # here: the jobs that only hash a config (provenance) skip its import

    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _key_name(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return ", ".join(".".join(filter(None, [path, key])) for key in extra) or path
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else ""
        return ".".join(filter(None, [path, missing]))
    return path or "(top level)"


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    # libyaml's loader where PyYAML has it (every snakemake command reads this file)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=loader)  # noqa: S506 (a safe loader)


def validate_config(config: dict[str, Any], schema_path: Path = SCHEMA_PATH) -> dict[str, Any]:
    """Fill defaults in place and return the config; raise naming every bad key at once.

    Defaults are filled twice because a default object (e.g. `kid: {}`) only gets its own
    defaults on the pass after it was inserted.
    """
    ranking = config.get("ranking")
    if isinstance(ranking, dict) and ranking.get("preset") and "weights" not in ranking:
        from ckpt_eval.analysis.ranking import PRESETS, preset_weights

        if ranking["preset"] in PRESETS:  # an unknown one is named by the schema below
            ranking["weights"] = preset_weights(ranking["preset"])
    schema = load_schema(schema_path)
    import jsonschema

    validator = _with_defaults(jsonschema.Draft7Validator)(schema)
    for _ in range(2):
        errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
        if errors:
            lines = [f"  {_key_name(e)}: {e.message}" for e in errors]
            raise CkptEvalError(
                "The config is not valid:\n" + "\n".join(lines),
                fix="correct the key(s) above; every key is described in "
                "the config reference (docs/config.md).",
            )
    check_ranking_weights(config)
    return config


def check_ranking_weights(config: dict[str, Any]) -> None:
    """Every key of ranking.weights must be a registry metric that can be ranked on."""
    from ckpt_eval.metrics.registry import quantities

    rankable = [q.key for q in quantities() if q.rankable]
    unknown = sorted(set(config["ranking"]["weights"]) - set(rankable))
    if unknown:
        raise CkptEvalError(
            "The config is not valid:\n"
            + "\n".join(
                f"  ranking.weights.{key}: not a metric that can be ranked on" for key in unknown
            ),
            fix=f"use the keys of rankable metrics: {', '.join(rankable)} (see docs/methods.md).",
        )


def config_hash(config: dict[str, Any]) -> str:
    """A stable hash of the validated config, so a result can be matched to what made it."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
