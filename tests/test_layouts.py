"""Layout readers: each trainer's output read the way the trainer wrote it.

The fixture trees come from `trainer_outputs.py`, whose builders cite the trainer source that
defines each name. Every checkpoint name must parse back (steps.parse_position) to its step or
epoch, because the whole workflow sorts and labels checkpoints by name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import trainer_outputs as make
from trainer_outputs import lora_file, tiny_image

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.inputs.layouts import (
    checkpoint_prompts,
    describe_ignored,
    detect_layout,
    load_samples,
    read_layout,
)
from ckpt_eval.inputs.layouts.base import Found, Options
from ckpt_eval.inputs.layouts.kohya import read_prompt_list
from ckpt_eval.inputs.layouts.onetrainer import safe_filename
from ckpt_eval.inputs.prompts import prompts_of_checkpoint
from ckpt_eval.inputs.steps import parse_position

EXTS = ("png", "jpg", "jpeg", "webp")


def read(layout: str, root: Path, **options) -> Found:
    return read_layout(layout, Options(root=root, extensions=EXTS, **options))


def config(layout: str, root: Path, **samples) -> dict:
    return {
        "samples": {"root": str(root), "layout": layout, "extensions": list(EXTS), **samples},
        "fallback_prompt": None,
    }


def prompts_by_index(found: Found) -> dict[int, str]:
    pairs = {(s.prompt_index, s.prompt) for s in found.samples}
    assert len(pairs) == len({i for i, _ in pairs}), f"one index, two prompts: {pairs}"
    return dict(pairs)


def assert_names_parse(found: Found) -> None:
    for sample in found.samples:
        position = parse_position(sample.checkpoint)
        if sample.step is not None:
            assert position.step == sample.step, sample.checkpoint
        else:
            assert position.epoch == sample.epoch, sample.checkpoint


# --- kohya-ss sd-scripts ---------------------------------------------------------------------


def test_kohya_steps_prompts_and_seeds_from_names_and_prompt_txt(tmp_path: Path) -> None:
    tree = make.kohya(tmp_path)
    found = read("kohya", tmp_path)
    assert list(found.by_checkpoint()) == tree.checkpoints
    # comments, blank (whitespace) lines dropped before numbering; `--flags` cut off
    assert prompts_by_index(found) == tree.prompts
    seeds = {s.prompt_index: s.seed for s in found.samples}
    assert seeds == {0: 42, 1: 7, 2: None}
    assert found.prompt_source == tmp_path / "sample" / "prompt.txt"
    assert found.checkpoint_files["step-000200"].name == "dog-step00000200.safetensors"
    assert found.ignored == [] and found.notes == []
    assert_names_parse(found)


def test_kohya_epochs_are_mapped_to_steps_by_safetensors_metadata(tmp_path: Path) -> None:
    tree = make.kohya(tmp_path, steps=(), epochs=(1, 2), steps_per_epoch=150)
    found = read("kohya", tmp_path)
    assert list(found.by_checkpoint()) == ["e000001-step-000150", "e000002-step-000300"]
    assert list(found.by_checkpoint()) == tree.checkpoints
    assert {(s.epoch, s.step) for s in found.samples} == {(1, 150), (2, 300)}
    assert_names_parse(found)


def test_kohya_epochs_without_their_own_file_use_a_consistent_steps_per_epoch(
    tmp_path: Path,
) -> None:
    make.kohya(tmp_path, steps=(), epochs=(1, 2, 3), steps_per_epoch=40)
    os.remove(tmp_path / "dog-000002.safetensors")  # saved every other epoch, sampled every one
    found = read("kohya", tmp_path)
    assert [s.step for s in found.by_checkpoint()["e000002-step-000080"]] == [80, 80, 80]
    assert "e000002-step-000080" not in found.checkpoint_files


def test_kohya_epochs_stay_epochs_without_metadata_and_say_so(tmp_path: Path) -> None:
    make.kohya(tmp_path, steps=(), epochs=(1, 2))  # files carry ss_epoch but no ss_steps
    found = read("kohya", tmp_path)
    assert list(found.by_checkpoint()) == ["e000001", "e000002"]
    assert any("ss_epoch, ss_steps" in note for note in found.notes)
    assert_names_parse(found)


def test_kohya_step_samples_sort_before_epoch_samples_when_unmapped(tmp_path: Path) -> None:
    make.kohya(tmp_path, steps=(0,), epochs=(1,))  # --sample_at_first, then per epoch
    assert list(read("kohya", tmp_path).by_checkpoint()) == ["step-000000", "e000001"]


def test_kohya_prompt_list_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "prompts.toml"
    toml.write_text(
        '[prompt]\nwidth = 512\nseed = 1\n\n[[prompt.subset]]\nprompt = "a cat"\n\n'
        '[[prompt.subset]]\nprompt = "a dog"\nsample_steps = 20\n',
        encoding="utf-8",
    )
    assert [(e.prompt, e.seed) for e in read_prompt_list(toml)] == [("a cat", 1), ("a dog", 1)]
    listed = tmp_path / "prompts.json"
    listed.write_text(json.dumps(["a fox --d 5 --n ugly", {"prompt": "an owl", "seed": 9}]))
    assert [(e.prompt, e.seed) for e in read_prompt_list(listed)] == [("a fox", 5), ("an owl", 9)]
    other = tmp_path / "prompts.yaml"
    other.write_text("- a cat")
    with pytest.raises(CkptEvalError, match="Unknown prompt list type"):
        read_prompt_list(other)


def test_kohya_prompt_file_named_by_a_training_toml(tmp_path: Path) -> None:
    make.kohya(tmp_path, prompt_file=False)
    prompts = tmp_path / "elsewhere" / "my prompts.txt"
    prompts.parent.mkdir()
    prompts.write_text(make.KOHYA_PROMPTS, encoding="utf-8")
    (tmp_path / "dog_20240501.toml").write_text(
        f'output_name = "dog"\nsample_prompts = "{prompts}"\n'
    )
    found = read("kohya", tmp_path)
    assert found.prompt_source == prompts
    assert found.missing_prompts() == []


def test_kohya_without_prompt_file_stops_before_work_unless_fallback(tmp_path: Path) -> None:
    make.kohya(tmp_path, prompt_file=False)
    found = read("kohya", tmp_path)
    assert found.prompt_source is None and len(found.missing_prompts()) == 6
    assert any("samples.prompt_file" in note for note in found.notes)
    with pytest.raises(CkptEvalError, match="6 sample image") as err:
        checkpoint_prompts(found, config("kohya", tmp_path))
    assert "samples.prompt_file" in err.value.fix
    assert checkpoint_prompts(found, {**config("kohya", tmp_path), "fallback_prompt": "a dog"})


def test_kohya_prompt_file_given_but_missing_is_an_error(tmp_path: Path) -> None:
    make.kohya(tmp_path)
    with pytest.raises(CkptEvalError, match="samples.prompt_file not found"):
        read("kohya", tmp_path, prompt_file=tmp_path / "nope.txt")


def test_kohya_second_run_in_the_same_folder_must_be_chosen(tmp_path: Path) -> None:
    make.kohya(tmp_path, output_name="dog_v1", steps=(100,))
    make.kohya(tmp_path, output_name="dog_v2", steps=(100, 300), stamp="20240601080000")
    with pytest.raises(CkptEvalError, match="2 training runs") as err:
        read("kohya", tmp_path)
    assert "'dog_v1' (3 images)" in str(err.value) and "training_run" in err.value.fix
    found = read("kohya", tmp_path, training_run="dog_v2")
    assert list(found.by_checkpoint()) == ["step-000100", "step-000300"]
    assert all("dog_v2_" in s.file for s in found.samples)
    assert len(found.ignored) == 3 and "another training run" in found.ignored[0].reason
    with pytest.raises(CkptEvalError, match="closest is 'dog_v2'"):
        read("kohya", tmp_path, training_run="dog-v2")


def test_kohya_rerun_under_the_same_name_keeps_the_newest_sample(tmp_path: Path) -> None:
    make.kohya(tmp_path, steps=(100,), stamp="20240501120000")
    make.kohya(tmp_path, steps=(100,), stamp="20240502090000")
    found = read("kohya", tmp_path)
    assert len(found.samples) == 3
    assert all("20240502090000" in s.file for s in found.samples)
    assert len(found.ignored) == 3
    assert all(i.reason.startswith("superseded by the newer") for i in found.ignored)


def test_mixed_up_extensions_and_stray_files(tmp_path: Path) -> None:
    make.kohya(tmp_path, steps=(100,))
    sample = tmp_path / "sample"
    tiny_image(sample / "dog_000200_00_20240501120000_42.PNG", 1, fmt="PNG")
    tiny_image(sample / "dog_000200_01_20240501120000_7.jpg", 2)
    tiny_image(sample / "dog_000200_02_20240501120000.webp", 3, fmt="WEBP")
    tiny_image(sample / "grid_preview.png", 4)
    (sample / "dog_000300_00_20240501120000.txt").write_text("not an image")
    found = read("kohya", tmp_path)
    assert [len(v) for v in found.checkpoints().values()] == [3, 3]
    assert {Path(s.file).suffix for s in found.by_checkpoint()["step-000200"]} == {
        ".PNG",
        ".jpg",
        ".webp",
    }
    assert [i.file for i in found.ignored] == ["sample/grid_preview.png"]
    assert "does not follow" in describe_ignored(found)


# --- ai-toolkit -----------------------------------------------------------------------------


def test_ai_toolkit_prompts_trigger_seeds_from_the_job_config(tmp_path: Path) -> None:
    tree = make.ai_toolkit(tmp_path)
    found = read("ai-toolkit", tree.root)
    assert list(found.by_checkpoint()) == tree.checkpoints
    assert prompts_by_index(found) == tree.prompts  # [trigger]/[name] replaced, --w cut
    # seed 42 walked by index; sample 1 sets 7, which the walk replaces again at sample 2
    assert {s.prompt_index: s.seed for s in found.samples} == {0: 42, 1: 7, 2: 44}
    assert found.checkpoint_files["step-000500"].name == "dog_lora_000000500.safetensors"
    assert_names_parse(found)


def test_ai_toolkit_trigger_word_option_and_legacy_prompt_list(tmp_path: Path) -> None:
    import yaml

    tree = make.ai_toolkit(tmp_path, steps=(250,))
    job = yaml.safe_load((tree.root / "config.yaml").read_text())
    sample = job["config"]["process"][0]["sample"]
    del sample["samples"]
    sample["prompts"] = ["[trigger] at the beach", "a cat", "[trigger] in space --seed 3"]
    sample["walk_seed"] = False
    (tree.root / "config.yaml").write_text(yaml.safe_dump(job))
    found = read("ai-toolkit", tree.root, trigger_word="zkz")
    assert prompts_by_index(found) == {0: "zkz at the beach", 1: "a cat", 2: "zkz in space"}
    # a prompt's own --seed is that image's seed (GenerateImageConfig: "prompt string will
    # override any settings above"), the running seed stays
    assert {s.prompt_index: s.seed for s in found.samples} == {0: 42, 1: 42, 2: 3}


def test_ai_toolkit_prompt_without_text_is_skipped_by_count(tmp_path: Path) -> None:
    import yaml

    tree = make.ai_toolkit(tmp_path, steps=(250,))
    job = yaml.safe_load((tree.root / "config.yaml").read_text())
    job["config"]["process"][0]["sample"]["samples"].insert(1, {"prompt": None})
    (tree.root / "config.yaml").write_text(yaml.safe_dump(job))
    found = read("ai-toolkit", tree.root)
    # count 1 is now the third definition (index 2): ai-toolkit numbers only what it samples
    assert prompts_by_index(found) == {0: tree.prompts[0], 2: tree.prompts[1], 3: tree.prompts[2]}


def test_ai_toolkit_training_folder_with_two_jobs(tmp_path: Path) -> None:
    make.ai_toolkit(tmp_path, name="dog_lora")
    other = make.ai_toolkit(tmp_path, name="cat_lora", steps=(100,))
    with pytest.raises(CkptEvalError, match="'cat_lora' \\(3 images\\), 'dog_lora' \\(6 images\\)"):
        read("ai-toolkit", tmp_path)
    found = read("ai-toolkit", tmp_path, training_run="cat_lora")
    assert list(found.by_checkpoint()) == other.checkpoints
    assert found.prompt_source == other.root / "config.yaml"
    assert all(s.file.startswith("cat_lora/samples/") for s in found.samples)


def test_ai_toolkit_resumed_run_keeps_the_newer_duplicate(tmp_path: Path) -> None:
    tree = make.ai_toolkit(tmp_path, steps=(250,))
    tiny_image(tree.root / "samples" / "1714600000000__000000250_1.jpg", 9)  # resumed at 250
    found = read("ai-toolkit", tree.root)
    kept = [s.file for s in found.samples if s.prompt_index == 1]
    assert kept == ["samples/1714600000000__000000250_1.jpg"]
    assert found.ignored[0].file == "samples/1714564800001__000000250_1.jpg"


def test_ai_toolkit_distributed_sample_names(tmp_path: Path) -> None:
    tree = make.ai_toolkit(tmp_path, steps=())
    tiny_image(tree.root / "samples" / "rank01_sample002_1714564800000__000000750_0.jpg", 1)
    found = read("ai-toolkit", tree.root)
    (sample,) = found.samples
    assert (sample.checkpoint, sample.prompt_index, sample.prompt) == (
        "step-000750",
        2,
        "p3rs0n riding a bike",
    )


# --- SimpleTuner ----------------------------------------------------------------------------


def test_simpletuner_shortnames_from_the_config_and_its_library(tmp_path: Path) -> None:
    tree = make.simpletuner(tmp_path)
    found = read("simpletuner", tree.root)
    assert list(found.by_checkpoint()) == tree.checkpoints
    assert found.prompt_source == tmp_path / "config" / "config.json"
    assert prompts_by_index(found) == tree.prompts
    assert {s.label for s in found.samples} == {"sks_portrait", "sks_beach", "validation"}
    assert found.checkpoint_files["step-000200"] == tree.root / "checkpoint-200"
    assert_names_parse(found)


def test_simpletuner_legacy_names_several_images_and_unknown_shortnames(tmp_path: Path) -> None:
    tree = make.simpletuner(tmp_path, steps=(100,))
    images = tree.root / "validation_images"
    tiny_image(images / "step_100_sks_portrait_1_768x1024.png", 1)  # second resolution
    tiny_image(images / "step_300_sks_beach_1024x1024.png", 2)  # before the index was added
    tiny_image(images / "step_300_not_in_library_0_1024x1024.png", 3)
    found = read(
        "simpletuner", tree.root, prompt_file=tmp_path / "config" / "user_prompt_library.json"
    )
    assert len(found.by_checkpoint()["step-000100"]) == 4  # both portraits kept: two variants
    beach = [s for s in found.samples if s.step == 300 and s.label == "sks_beach"]
    assert beach[0].prompt == "sks woman walking on a beach"
    assert any("not_in_library" in note and "validation" in note for note in found.notes)


# --- OneTrainer -----------------------------------------------------------------------------


def test_onetrainer_folders_match_the_full_prompts_of_the_config_snapshot(tmp_path: Path) -> None:
    tree = make.onetrainer(tmp_path)
    tiny_image(
        tmp_path / "samples" / "custom" / "2024-05-01_11-00-00-training-sample-100-1-25.png", 5
    )
    found = read("onetrainer", tmp_path)
    assert list(found.by_checkpoint()) == tree.checkpoints
    assert prompts_by_index(found) == tree.prompts  # index 1 is disabled: no folder, no gap
    assert {(s.step, s.epoch) for s in found.samples} == {(50, 0), (100, 1)}
    assert {s.prompt_index: s.seed for s in found.samples} == {0: 42, 2: None}  # random_seed
    assert [i.reason.split(" (")[0] for i in found.ignored] == [
        "a manual sample from OneTrainer's sampling window"
    ]
    assert found.checkpoint_files["step-000100"].parent.name == "save"
    assert_names_parse(found)


def test_onetrainer_safe_filename_matches_the_trainer() -> None:
    assert (
        safe_filename("a photo of sks cat, sitting on a sofa") == "a photo of sks cat sitting on a"
    )
    assert safe_filename("  (masterpiece:1.2), #1 cat! ") == "masterpiece1.2 #1 cat"


def test_onetrainer_changed_definitions_are_not_trusted(tmp_path: Path) -> None:
    make.onetrainer(tmp_path)
    snapshot = tmp_path / "config" / "2024-05-01_10-00-00.json"
    data = json.loads(snapshot.read_text())
    data["samples"][0]["prompt"] = "a photo of sks dog on a sofa"  # edited after sampling
    snapshot.write_text(json.dumps(data))
    found = read("onetrainer", tmp_path)
    assert {s.prompt_index for s in found.missing_prompts()} == {0}
    assert any("do not match their samples/ folder names" in n for n in found.notes)


def test_onetrainer_no_ema_samples_are_their_own_checkpoints(tmp_path: Path) -> None:
    make.onetrainer(tmp_path, steps=((50, 0, 50),))
    folder = tmp_path / "samples" / "0 - a photo of sks cat sitting on a - no-ema"
    tiny_image(folder / "2024-05-01_10-00-00-training-sample-50-0-50.png", 7)
    found = read("onetrainer", tmp_path)
    assert list(found.by_checkpoint()) == ["no-ema-step-000050", "step-000050"]  # same step
    assert parse_position("no-ema-step-000050").step == 50
    no_ema = found.by_checkpoint()["no-ema-step-000050"][0]
    assert no_ema.prompt == make.ONETRAINER_SAMPLES[0]["prompt"]


def test_onetrainer_definitions_from_a_backup_or_a_given_file(tmp_path: Path) -> None:
    make.onetrainer(tmp_path)
    (tmp_path / "config" / "2024-05-01_10-00-00.json").unlink()
    backup = tmp_path / "backup" / "2024-05-01_10-30-00-backup-75-0-75" / "onetrainer_config"
    backup.mkdir(parents=True)
    (backup / "samples.json").write_text(json.dumps(make.ONETRAINER_SAMPLES))
    assert read("onetrainer", tmp_path).prompt_source == backup / "samples.json"
    (backup / "samples.json").unlink()
    assert len(read("onetrainer", tmp_path).missing_prompts()) == 4
    given = tmp_path / "samples.json"
    given.write_text(json.dumps(make.ONETRAINER_SAMPLES))
    assert read("onetrainer", tmp_path, prompt_file=given).missing_prompts() == []


# --- diffusers, regex, folders --------------------------------------------------------------


def test_diffusers_checkpoints_stop_the_run_saying_samples_must_be_generated(
    tmp_path: Path,
) -> None:
    make.diffusers(tmp_path)
    found = read("diffusers", tmp_path)
    assert found.needs_generation and found.samples == []
    assert set(found.checkpoint_files) == {"step-000500", "step-001000"}
    with pytest.raises(CkptEvalError, match="samples must be generated") as err:
        load_samples(config("diffusers", tmp_path))
    assert "step-000500, step-001000" in str(err.value)


def test_regex_layout_with_prompt_list_seed_and_run_groups(tmp_path: Path) -> None:
    for step in (10, 20):
        for index in (0, 1):
            tiny_image(
                tmp_path / "out" / f"run-a_s{step}_p{index}_seed{index + 5}.png", step + index
            )
    tiny_image(tmp_path / "out" / "thumbnail.png", 0)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# list\nfirst prompt --d 1\nsecond prompt\n")
    pattern = r"out/(?P<run>[^_]+)_s(?P<step>\d+)_p(?P<prompt_index>\d+)_seed(?P<seed>\d+)\.png"
    found = read("regex", tmp_path, pattern=pattern, prompt_file=prompts)
    assert list(found.by_checkpoint()) == ["step-000010", "step-000020"]
    assert prompts_by_index(found) == {0: "first prompt", 1: "second prompt"}
    assert {s.prompt_index: s.seed for s in found.samples} == {0: 5, 1: 6}  # the name's seed
    assert [i.file for i in found.ignored] == ["out/thumbnail.png"]


def test_regex_keeps_every_image_of_a_prompt(tmp_path: Path) -> None:
    for n in range(3):  # three images of prompt 0 at step 10, apart only by an unnamed part
        tiny_image(tmp_path / f"10_0_{n}.png", n)
    found = read("regex", tmp_path, pattern=r"(?P<step>\d+)_(?P<prompt_index>\d+)_\d+\.png")
    assert len(found.samples) == 3 and found.ignored == []


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (None, "samples.pattern is not set"),
        (r"(?P<step>\d+", "not a valid regular expression"),
        (r"(?P<prompt_index>\d+)\.png", "needs `step`"),
        (r"(?P<step>\d+)_(?P<promt_index>\d+)\.png", "promt_index"),
    ],
)
def test_regex_pattern_mistakes_are_named(tmp_path: Path, pattern, message) -> None:
    with pytest.raises(CkptEvalError, match=message):
        read("regex", tmp_path, pattern=pattern)


def test_pattern_with_another_layout_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CkptEvalError, match="only with layout regex"):
        read("kohya", tmp_path, pattern=r"(?P<step>\d+)")


def test_folders_layout_keeps_todays_behaviour(tmp_path: Path) -> None:
    for name in ("step-200", "step-1000", "e000002"):
        tiny_image(tmp_path / name / "a.png", 1)
        tiny_image(tmp_path / name / "sub" / "b.png", 2)
    found = read("folders", tmp_path)
    assert list(found.checkpoints()) == ["step-200", "step-1000", "e000002"]
    prompts_csv = tmp_path / "p.csv"
    prompts_csv.write_text("file,prompt\nstep-200/a.png,x\nstep-200/typo.png,y\ne000002/a.png,z\n")
    merged = checkpoint_prompts(found, {**config("folders", tmp_path), "prompts": str(prompts_csv)})
    explicit = {"step-200/a.png": "x", "step-200/typo.png": "y", "e000002/a.png": "z"}
    for name in found.checkpoints():
        assert merged[name] == prompts_of_checkpoint(explicit, name)


def test_a_prompts_file_wins_over_the_trainers_prompts(tmp_path: Path) -> None:
    make.kohya(tmp_path, steps=(100,))
    csv = tmp_path / "fix.csv"
    csv.write_text("file,prompt\nsample/dog_000100_02_20240501120000.png,a dog in the rain\n")
    found = read("kohya", tmp_path)
    merged = checkpoint_prompts(found, {**config("kohya", tmp_path), "prompts": str(csv)})
    assert merged["step-000100"]["sample/dog_000100_02_20240501120000.png"] == "a dog in the rain"
    assert (
        merged["step-000100"]["sample/dog_000100_00_20240501120000_42.png"] == "a photo of sks dog"
    )


def test_no_samples_at_all_is_an_error_listing_what_was_left_out(tmp_path: Path) -> None:
    tiny_image(tmp_path / "sample" / "preview.png", 1)
    with pytest.raises(CkptEvalError, match="No sample images found") as err:
        load_samples(config("kohya", tmp_path))
    assert "sample/preview.png" in str(err.value)


# --- detection ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("builder", "layout"),
    [
        (lambda p: make.kohya(p), "kohya"),
        (lambda p: make.ai_toolkit(p), "ai-toolkit"),
        (lambda p: make.simpletuner(p), "simpletuner"),
        (lambda p: make.onetrainer(p), "onetrainer"),
        (lambda p: make.diffusers(p), "diffusers"),
    ],
)
def test_each_trainer_output_is_detected(tmp_path: Path, builder, layout) -> None:
    tree = builder(tmp_path)
    assert detect_layout(tree.root, EXTS) == layout
    if layout == "ai-toolkit":  # the training folder above the job folder works too
        assert detect_layout(tmp_path, EXTS) == "ai-toolkit"


def test_folder_per_checkpoint_is_detected(tmp_path: Path) -> None:
    tiny_image(tmp_path / "step-100" / "a.png", 1)
    assert detect_layout(tmp_path, EXTS) == "folders"


def test_two_trainers_in_one_folder_is_ambiguous(tmp_path: Path) -> None:
    make.kohya(tmp_path, steps=(100,))
    tiny_image(tmp_path / "validation_images" / "step_100_cat_0_512x512.png", 1)
    with pytest.raises(CkptEvalError, match="fits more than one layout") as err:
        detect_layout(tmp_path, EXTS)
    assert "--trainer kohya or --trainer simpletuner" in err.value.fix


def test_unrecognised_folder_names_the_closest_match(tmp_path: Path) -> None:
    tiny_image(tmp_path / "sample" / "dog-step100.png", 1)
    tiny_image(tmp_path / "sample" / "dog-step200.png", 2)
    with pytest.raises(CkptEvalError, match="closest match is kohya-ss sd-scripts") as err:
        detect_layout(tmp_path, EXTS)
    assert "0 of 2 images" in str(err.value)
    assert "--trainer kohya" in err.value.fix and "--trainer regex" in err.value.fix


def test_empty_folder_is_unrecognised_with_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(CkptEvalError, match="does not look like") as err:
        detect_layout(tmp_path, EXTS)
    assert "--trainer regex --pattern" in err.value.fix


def test_checkpoint_files_are_read_without_loading_weights(tmp_path: Path) -> None:
    from ckpt_eval.inputs.layouts.kohya import safetensors_metadata

    path = lora_file(tmp_path / "x.safetensors", ss_epoch="3", ss_steps="90")
    assert safetensors_metadata(path) == {"ss_epoch": "3", "ss_steps": "90"}
    (tmp_path / "broken.safetensors").write_bytes(b"\xff" * 12)
    assert safetensors_metadata(tmp_path / "broken.safetensors") == {}


def test_a_sample_folder_named_like_a_sweep_candidate_stops_before_work(tmp_path: Path) -> None:
    tiny_image(tmp_path / "step-100" / "a.png", 0)
    tiny_image(tmp_path / "run@1000" / "a.png", 1)
    with pytest.raises(CkptEvalError, match=r"'run@1000' is named like a candidate") as caught:
        load_samples(config("folders", tmp_path))
    assert "rename it without '@'" in str(caught.value)
    (tmp_path / "run@1000").rename(tmp_path / "run-1000")  # the fix the message gives
    assert list(load_samples(config("folders", tmp_path)).checkpoints()) == [
        "step-100",
        "run-1000",
    ]
