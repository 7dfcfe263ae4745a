"""Training position (step or epoch) parsed from a checkpoint's folder name, and its ordering."""

from __future__ import annotations

import pytest

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.inputs.steps import Position, check_plain_names, parse_position


@pytest.mark.parametrize(
    ("name", "step"),
    [
        ("step-1500", 1500),
        ("step_1500", 1500),
        ("STEP1500", 1500),
        ("checkpoint-1500", 1500),
        ("ckpt.200", 200),
        ("global_step-42", 42),
        ("1500", 1500),
        ("name-000150", 150),
        ("lora-step00001000", 1000),
        ("my-lora-checkpoint-0", 0),
        # white space and other separators, as people name folders by hand
        ("step 100", 100),
        ("Step100", 100),
        ("checkpoint 100", 100),
        ("Checkpoint_100", 100),
        ("step - 100", 100),
        ("step\t100", 100),
        (" step 100 ", 100),
        ("my lora step 200", 200),
        ("global step 7", 7),
        ("ckpt 5", 5),
        ("lora 000150", 150),
    ],
)
def test_step_names(name: str, step: int) -> None:
    assert parse_position(name) == Position(step=step, epoch=None)


@pytest.mark.parametrize(
    ("name", "epoch"),
    [
        ("e000003", 3),
        ("epoch-12", 12),
        ("lora-e05", 5),
        ("Epoch_7", 7),
        ("epoch 3", 3),
        ("lora e 05", 5),
    ],
)
def test_epoch_names(name: str, epoch: int) -> None:
    assert parse_position(name) == Position(step=None, epoch=epoch)


@pytest.mark.parametrize("name", ["final", "best", "lora-final", "v2model", "step one", "lora v2"])
def test_unknown_names(name: str) -> None:
    assert parse_position(name) == Position(step=None, epoch=None)


def test_sort_key_orders_steps_then_epochs_then_unknown() -> None:
    names = ["final", "e000003", "step-1500", "epoch-1", "step-200", "best", "10000"]
    ordered = sorted(names, key=lambda n: (parse_position(n).sort_key, n))
    assert ordered == ["step-200", "step-1500", "10000", "epoch-1", "e000003", "best", "final"]


def test_sort_key_values() -> None:
    assert Position(step=1500, epoch=None).sort_key == (0, 1500)
    assert Position(step=None, epoch=3).sort_key == (1, 3)
    assert Position(step=None, epoch=None).sort_key == (2, 0)
    # Any step sorts before any epoch, however large.
    assert Position(10**9, None).sort_key < Position(None, 0).sort_key
    assert Position(None, 10**9).sort_key < Position(None, None).sort_key


def test_numeric_not_lexicographic() -> None:
    assert parse_position("step-500").sort_key < parse_position("step-10000").sort_key
    assert parse_position("e9").sort_key < parse_position("e10").sort_key


def test_folder_names_with_spaces_sort_with_the_others() -> None:
    names = ["step 1000", "step_200", "Step50", "checkpoint 300", "final"]
    ordered = sorted(names, key=lambda n: (parse_position(n).sort_key, n))
    assert ordered == ["Step50", "step_200", "checkpoint 300", "step 1000", "final"]


def test_strength_sweep_candidates_sort_by_step_then_scale() -> None:
    from ckpt_eval.inputs.steps import candidate_name, scale_text, split_candidate

    assert [scale_text(s) for s in (0.6, 0.75, 1.0, 0.0, 1.2345)] == [
        "0.6",
        "0.75",
        "1.0",
        "0.0",
        "1.2345",
    ]
    assert candidate_name("step-000100", 0.8) == "step-000100@0.8"
    assert split_candidate("step-000100@0.8") == ("step-000100", 0.8)
    assert split_candidate("step-000100") == ("step-000100", None)
    assert parse_position("step-000100@0.8") == Position(step=100, epoch=None, scale=0.8)
    assert parse_position("e000003@1.0") == Position(step=None, epoch=3, scale=1.0)
    names = ["step-200@0.6", "step-100@1.0", "base-step-000000", "step-100@0.6", "step-100"]
    ordered = sorted(names, key=lambda n: (parse_position(n).sort_key, n))
    assert ordered == [
        "base-step-000000",
        "step-100",
        "step-100@0.6",
        "step-100@1.0",
        "step-200@0.6",
    ]


def test_a_checkpoint_named_like_a_sweep_candidate_is_refused_with_a_rename(tmp_path) -> None:
    # `run@1000` would read as checkpoint `run` at LoRA scale 1000 (its step lost), and the
    # report would call a plain run a strength sweep
    assert parse_position("run@1000") == Position(step=None, epoch=None, scale=1000.0)
    with pytest.raises(CkptEvalError) as caught:
        check_plain_names(["step-100", "run@1000"], tmp_path)
    message = str(caught.value)
    assert "'run@1000'" in message and "'run' at LoRA scale 1000.0" in message
    assert str(tmp_path / "run@1000") in message and "'run-1000'" in message
    check_plain_names(["step-100", "run-1000"], tmp_path)  # the rename it suggests
    assert parse_position("run-1000") == Position(step=1000, epoch=None)
    check_plain_names(["me@home", "lora@v2"], tmp_path)  # no scale after `@`: a plain name
