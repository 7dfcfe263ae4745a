"""samples.checkpoints: only the named checkpoints are planned (the watch command names the
complete ones); a name not found stops with the names that are."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_project
from trainer_outputs import lora_file as dummy_lora

from ckpt_eval.config import validate_config
from ckpt_eval.errors import CkptEvalError
from ckpt_eval.generate.plan import BASELINE, generation_plan
from ckpt_eval.inputs.layouts import load_samples
from ckpt_eval.inputs.selection import select_plan, select_samples


def test_samples_of_the_named_checkpoints_only(tmp_path: Path, monkeypatch) -> None:
    make_project(tmp_path, {"step-100": 2, "step-200": 3, "step-300": 2})
    monkeypatch.chdir(tmp_path)
    found = load_samples(
        validate_config(
            {
                "run": "t",
                "real_images": "real",
                "samples": {"root": "samples"},
                "prompts": "prompts.csv",
            }
        )
    )
    assert select_samples(found, None) is found
    chosen = select_samples(found, ["step-300", "step-100"])
    assert list(chosen.checkpoints()) == ["step-100", "step-300"]  # training order kept
    assert [len(v) for v in chosen.checkpoints().values()] == [2, 2]
    with pytest.raises(CkptEvalError) as raised:
        select_samples(found, ["step-100", "step-400"])
    assert "step-400" in str(raised.value) and "step-100, step-200, step-300" in str(raised.value)


def lora_plan(root: Path, **generate):
    """The generate plan of two LoRA files step-100 and step-200 under `root`."""
    for name in ("step-100", "step-200"):
        dummy_lora(root / f"{name}.safetensors")
    config = validate_config(
        {
            "run": "g",
            "real_images": "real",
            "samples": {"root": str(root)},
            "generate": {"base_model": "base", "prompts": ["x"], **generate},
        }
    )
    return generation_plan(config, root.parent / "out")


def test_lora_checkpoints_keep_the_baseline(tmp_path: Path) -> None:
    plan = select_plan(lora_plan(tmp_path / "loras"), ["step-200"])
    assert list(plan.loras) == [BASELINE, "step-200"]
    assert {s.checkpoint for s in plan.samples().samples} == {BASELINE, "step-200"}
    with pytest.raises(CkptEvalError, match="step-100, step-200"):
        select_plan(lora_plan(tmp_path / "loras"), [BASELINE])


def test_a_strength_sweep_keeps_every_scale_of_the_named_checkpoints(tmp_path: Path) -> None:
    plan = select_plan(lora_plan(tmp_path / "loras", lora_scales=[0.5, 1.0]), ["step-200"])
    assert list(plan.loras) == [BASELINE, "step-200@0.5", "step-200@1.0"]
    assert plan.scales == {BASELINE: None, "step-200@0.5": 0.5, "step-200@1.0": 1.0}
