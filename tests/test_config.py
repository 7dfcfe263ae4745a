"""Config validation: defaults filled (nested too), bad keys named by their dotted path, hashing."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ckpt_eval.analysis.ranking import PRESETS
from ckpt_eval.config import config_hash, load_schema, validate_config
from ckpt_eval.errors import CkptEvalError
from ckpt_eval.metrics.registry import quantities


def minimal() -> dict[str, Any]:
    return {
        "run": "demo",
        "real_images": "data/real",
        "samples": {"root": "data/samples"},
        "prompts": "data/prompts.csv",
    }


def error_lines(config: dict[str, Any]) -> list[str]:
    """The per-key lines of the error raised for `config` (`  dotted.key: message`)."""
    with pytest.raises(CkptEvalError) as info:
        validate_config(config)
    return [line.strip() for line in str(info.value).splitlines()]


def names_key(lines: list[str], key: str) -> bool:
    return any(line.startswith(f"{key}:") for line in lines)


def test_minimal_config_gets_every_default() -> None:
    config = validate_config(minimal())
    assert config["samples"] == {
        "root": "data/samples",
        "layout": "folders",
        "pattern": None,
        "prompt_file": None,
        "trigger_word": None,
        "training_run": None,
        "extensions": ["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif"],
        "checkpoints": None,
    }
    assert config["fallback_prompt"] is None
    assert config["on_bad_image"] == "error"
    assert config["device"] == "auto"
    assert config["batch_size"] == 32
    assert config["num_workers"] == 2
    assert config["feature_threads"] == 2
    assert config["seed"] == 0
    assert config["fid"] == {"inception_weights": None}
    assert config["kid"] == {"subsets": 100, "subset_size": 1000}
    assert config["clip"] == {"model": "openai/clip-vit-large-patch14", "required": True}
    assert config["ranking"] == {
        "weights": {"fid": 0.6, "clip": 0.4},
        "margin": 0.02,
        "overfit_share": 0.1,
        "prefer": "best",
        "preset": None,
    }
    assert config["report"] == {
        "title": "Checkpoint evaluation",
        "thumbnails": 12,
        "fid_bands": [10, 20, 50, 100],
        "clip_bands": [30, 27, 25, 20],
        "grid_rows": 16,
    }


def _assert_defaults(instance: dict[str, Any], schema: dict[str, Any], where: str) -> None:
    for key, sub in schema.get("properties", {}).items():
        if "default" in sub:
            assert key in instance, f"default of {where}{key} not filled"
        if sub.get("type") == "object" and key in instance:
            _assert_defaults(instance[key], sub, f"{where}{key}.")


def test_every_schema_default_is_filled_at_every_depth() -> None:
    # Walks the schema itself, so a default added later is covered too.
    config = validate_config(minimal())
    _assert_defaults(config, load_schema(), "")


def test_given_values_are_kept_and_siblings_still_defaulted() -> None:
    config = minimal()
    config["kid"] = {"subsets": 7}
    config["ranking"] = {"weights": {"clip": 1.0}}
    config["clip"] = {"required": False}
    out = validate_config(config)
    assert out["kid"] == {"subsets": 7, "subset_size": 1000}
    # weights given replace the default weights as a whole: {clip: 1} ranks by CLIP alone
    assert out["ranking"]["weights"] == {"clip": 1.0}
    assert out["ranking"]["margin"] == 0.02
    assert out["clip"] == {"model": "openai/clip-vit-large-patch14", "required": False}


def test_ranking_weights_take_any_rankable_metric_and_name_the_others() -> None:
    config = minimal()
    config["ranking"] = {"weights": {"kid": 1.0}}
    assert validate_config(config)["ranking"]["weights"] == {"kid": 1.0}
    config["ranking"] = {"weights": {"fid": 1.0, "precision": 1.0, "nonsense": 2.0}}
    with pytest.raises(CkptEvalError) as err:
        validate_config(config)
    for key in ("nonsense", "precision"):
        assert f"ranking.weights.{key}: not a metric that can be ranked on" in str(err.value)
    assert "fid, kid, clip" in str(err.value)


def test_the_small_sample_preset_sets_the_weights_unless_they_are_given() -> None:
    config = minimal()
    config["ranking"] = {"preset": "small-sample"}
    weights = validate_config(config)["ranking"]["weights"]
    rankable = {q.key for q in quantities() if q.rankable}
    assert weights == {k: w for k, w in PRESETS["small-sample"].items() if k in rankable}
    assert {"kid", "clip"} <= set(weights) and "fid" not in weights
    config = minimal()
    config["ranking"] = {"preset": "small-sample", "weights": {"fid": 1.0}}
    assert validate_config(config)["ranking"]["weights"] == {"fid": 1.0}


def test_defaults_are_not_shared_between_configs() -> None:
    first = validate_config(minimal())
    first["samples"]["extensions"].append("heic")
    first["ranking"]["weights"]["fid"] = 9.0
    second = validate_config(minimal())
    assert "heic" not in second["samples"]["extensions"]
    assert second["ranking"]["weights"]["fid"] == 0.6


def test_unknown_top_level_key_is_named() -> None:
    config = minimal()
    config["fallback_promt"] = "x"
    assert names_key(error_lines(config), "fallback_promt")


def test_unknown_nested_key_is_named_with_its_dotted_path() -> None:
    config = minimal()
    config["samples"]["layot"] = "folders"
    assert names_key(error_lines(config), "samples.layot")


def test_unknown_deeply_nested_key_is_named_with_its_dotted_path() -> None:
    config = minimal()
    config["ranking"] = {"weights": {"fdi": 0.5}}
    assert names_key(error_lines(config), "ranking.weights.fdi")


@pytest.mark.parametrize("key", ["run", "real_images", "prompts", "samples"])
def test_missing_required_top_level_key_is_named(key: str) -> None:
    config = minimal()
    del config[key]
    assert names_key(error_lines(config), key)


def test_prompts_is_required_only_with_the_folders_layout() -> None:
    config = minimal()
    del config["prompts"]
    config["samples"]["layout"] = "kohya"
    assert "prompts" not in validate_config(config)
    config["samples"]["layout"] = "folders"
    assert names_key(error_lines(config), "prompts")


def test_missing_required_nested_key_is_named() -> None:
    config = minimal()
    config["samples"] = {"layout": "folders"}
    assert names_key(error_lines(config), "samples.root")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("device", "gpu"),
        ("device", "cuda:x"),
        ("on_bad_image", "ignore"),
        ("batch_size", "32"),
        ("batch_size", 0),
        ("run", "has space"),
        ("fallback_prompt", 3),
    ],
)
def test_wrong_type_or_enum_is_named(key: str, value: Any) -> None:
    config = minimal()
    config[key] = value
    assert names_key(error_lines(config), key)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("kid", "subsets", 0),
        ("clip", "required", "yes"),
        ("samples", "layout", "flat"),
        ("report", "fid_bands", [1, 2, 3]),
    ],
)
def test_wrong_nested_value_is_named_with_its_dotted_path(
    section: str, key: str, value: Any
) -> None:
    config = minimal()
    config.setdefault(section, {})[key] = value
    assert names_key(error_lines(config), f"{section}.{key}")


def test_all_bad_keys_are_reported_at_once() -> None:
    config = minimal()
    del config["run"]
    config["device"] = "gpu"
    config["kid"] = {"subsets": -1}
    lines = error_lines(config)
    assert names_key(lines, "run")
    assert names_key(lines, "device")
    assert names_key(lines, "kid.subsets")


def test_valid_explicit_values_pass() -> None:
    config = minimal()
    config.update(
        device="cuda:1", on_bad_image="skip", fallback_prompt="a photo", batch_size=1, seed=5
    )
    assert validate_config(config)["device"] == "cuda:1"


def test_config_hash_is_stable_under_key_order() -> None:
    a = validate_config(minimal())
    b = {key: copy.deepcopy(a[key]) for key in reversed(list(a))}
    b["ranking"] = {key: b["ranking"][key] for key in reversed(list(b["ranking"]))}
    b["ranking"]["weights"] = {"clip": 0.4, "fid": 0.6}
    assert list(a) != list(b)
    assert list(a["ranking"]["weights"]) != list(b["ranking"]["weights"])
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) == config_hash(validate_config(minimal()))


def test_config_hash_changes_with_any_value() -> None:
    base = validate_config(minimal())
    changed_top = copy.deepcopy(base)
    changed_top["seed"] = 1
    changed_nested = copy.deepcopy(base)
    changed_nested["ranking"]["weights"]["fid"] = 0.5
    changed_list = copy.deepcopy(base)
    changed_list["samples"]["extensions"] = ["png"]
    hashes = {config_hash(c) for c in (base, changed_top, changed_nested, changed_list)}
    assert len(hashes) == 4
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in hashes)
