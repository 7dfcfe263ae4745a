"""`python -m ckpt_eval init`: detect the trainer, print what was found, write a valid config."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trainer_outputs as make
import yaml
from conftest import REPO
from trainer_outputs import tiny_image

from ckpt_eval.__main__ import main
from ckpt_eval.config import validate_config
from ckpt_eval.errors import CkptEvalError
from ckpt_eval.init_config import InitRequest, run_init

TREES: dict[str, Callable[[Path], make.Tree]] = {
    "kohya": lambda p: make.kohya(p / "train", epochs=(1,), steps=(), steps_per_epoch=150),
    "ai-toolkit": lambda p: make.ai_toolkit(p / "output"),
    "simpletuner": lambda p: make.simpletuner(p / "project"),
    "onetrainer": lambda p: make.onetrainer(p / "workspace"),
}


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder to run init in (config paths are written relative to it)."""
    monkeypatch.chdir(tmp_path)
    tiny_image(tmp_path / "real" / "a.png", 1)
    return tmp_path


def init(root: Path, output: str = "config.yaml", **options) -> tuple[list[str], dict]:
    lines = run_init(InitRequest(source=root, real=Path("real"), output=Path(output), **options))
    return lines, yaml.safe_load(Path(output).read_text())


@pytest.mark.parametrize("trainer", list(TREES))
def test_init_detects_the_trainer_and_writes_a_valid_config(here: Path, trainer: str) -> None:
    tree = TREES[trainer](here)
    lines, config = init(tree.root.relative_to(here))
    text = "\n".join(lines)
    assert lines[0].endswith(f"(samples.layout: {trainer})")
    assert config["samples"]["layout"] == trainer
    assert config["samples"]["root"] == tree.root.relative_to(here).as_posix()
    assert config["real_images"] == "real"
    assert "prompts" not in config  # the trainer's own files hold them
    assert Path(config["samples"]["prompt_file"]).is_file()
    validate_config(config)
    # what was found: every checkpoint with its step and images, and every prompt
    assert f"Checkpoints ({len(tree.checkpoints)}):" in text
    for name in tree.checkpoints:
        row = next(line for line in lines if line.strip().startswith(name))
        assert str(int(name.rsplit("-", 1)[1])) in row.split()
    for prompt in tree.prompts.values():
        assert prompt[:60] in text
    assert "Prompts missing: none" in text
    assert "Next: .venv/bin/snakemake --cores 4 --configfile config.yaml" in text


def test_the_config_file_is_commented(here: Path) -> None:
    make.kohya(here / "train")
    init(Path("train"))
    text = Path("config.yaml").read_text()
    assert text.startswith("# Written by `python -m ckpt_eval init` from kohya-ss sd-scripts")
    for line in text.splitlines():
        if line and not line.startswith(("#", "samples:", "clip:")):
            assert "  # " in line, line
    assert yaml.safe_load(text)["run"] == "dog"  # the kohya --output_name


def test_missing_prompts_are_listed_and_the_run_would_stop(here: Path) -> None:
    make.kohya(here / "train", prompt_file=False)
    lines, config = init(Path("train"))
    text = "\n".join(lines)
    assert "Prompts missing: 6 image(s) (prompt 0: 2 image(s), prompt 1: 2 image(s)" in text
    assert "set samples.prompt_file" in text
    assert config["samples"]["prompt_file"] is None


def test_diffusers_lists_checkpoints_and_says_samples_must_be_generated(here: Path) -> None:
    make.diffusers(here / "out")
    lines, config = init(Path("out"))
    text = "\n".join(lines)
    assert config["samples"]["layout"] == "diffusers"
    assert "step-000500" in text and "checkpoint-1000" in text
    assert "samples must be generated" in text
    assert "Next:" not in text


def test_left_out_files_and_the_second_run_choice(here: Path) -> None:
    make.ai_toolkit(here / "output", name="dog_lora")
    make.ai_toolkit(here / "output", name="cat_lora", steps=(100,))
    tiny_image(here / "output" / "cat_lora" / "samples" / "contact_sheet.png", 3)
    with pytest.raises(CkptEvalError, match="2 training runs"):
        init(Path("output"))
    lines, config = init(Path("output"), training_run="cat_lora")
    assert config["samples"]["training_run"] == "cat_lora"
    assert config["run"] == "cat_lora"
    text = "\n".join(lines)
    assert "Left out (7 file(s), not evaluated):" in text
    assert "cat_lora/samples/contact_sheet.png: name does not follow" in text


def test_regex_and_folders_are_chosen_explicitly(here: Path) -> None:
    tiny_image(here / "imgs" / "s100_p0.png", 1)
    prompts = here / "list.txt"
    prompts.write_text("a red fox\n")
    _, config = init(
        Path("imgs"),
        trainer="regex",
        pattern=r"s(?P<step>\d+)_p(?P<prompt_index>\d+)\.png",
        prompt_file=prompts,
    )
    assert config["samples"]["pattern"] == r"s(?P<step>\d+)_p(?P<prompt_index>\d+)\.png"
    assert config["samples"]["prompt_file"] == "list.txt"
    tiny_image(here / "ckpts" / "step-5" / "a.png", 2)
    with pytest.raises(CkptEvalError, match="--prompts"):
        init(Path("ckpts"), output="f.yaml", trainer="folders")
    (here / "p.csv").write_text("file,prompt\nstep-5/a.png,a fox\n")
    _, config = init(Path("ckpts"), output="f.yaml", trainer="folders", prompts=Path("p.csv"))
    assert config["prompts"] == "p.csv" and validate_config(config)


def test_an_existing_config_is_kept_unless_forced(here: Path) -> None:
    make.kohya(here / "train")
    Path("config.yaml").write_text("mine\n")
    with pytest.raises(CkptEvalError, match="exists already"):
        init(Path("train"))
    assert Path("config.yaml").read_text() == "mine\n"
    init(Path("train"), force=True)
    assert yaml.safe_load(Path("config.yaml").read_text())["samples"]["layout"] == "kohya"


def test_cli_prints_the_summary_and_reports_errors(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make.onetrainer(here / "ws")
    assert main(["init", "--from", "ws", "--real", "real", "--name", "cat v2"]) == 0
    out = capsys.readouterr().out
    assert "Trainer: OneTrainer (samples.layout: onetrainer)" in out
    assert yaml.safe_load(Path("config.yaml").read_text())["run"] == "cat-v2"
    make.kohya(here / "both", steps=(100,))
    tiny_image(here / "both" / "validation_images" / "step_100_x_0_64x64.png", 1)
    assert main(["init", "--from", "both", "--real", "real", "-o", "b.yaml"]) == 1
    err = capsys.readouterr().err
    assert "fits more than one layout" in err and "--trainer kohya" in err
    assert not Path("b.yaml").exists()


def test_python_dash_m_entry_point(tmp_path: Path) -> None:
    make.simpletuner(tmp_path / "st")
    tiny_image(tmp_path / "real" / "a.png", 1)
    done = subprocess.run(
        [sys.executable, "-m", "ckpt_eval", "init", "--from", "st/output/models", "--real", "real"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": ""},
    )
    assert done.returncode == 0, done.stderr
    assert "SimpleTuner (samples.layout: simpletuner)" in done.stdout
    assert (tmp_path / "config.yaml").is_file()


def test_diffusers_with_a_base_model_and_prompts_writes_a_generate_section(here: Path) -> None:
    make.diffusers(here / "out")
    (here / "prompts.txt").write_text("a photo of sks dog\n# not a prompt\nsks dog on a beach\n")
    lines, config = init(Path("out"), base_model="models/sd15", prompt_file=Path("prompts.txt"))
    text = "\n".join(lines)
    assert config["generate"]["base_model"] == "models/sd15"
    assert config["generate"]["prompts"] == "prompts.txt"
    validate_config(config)
    assert "2 prompt(s) x 8 image(s) for each of 3 checkpoint(s)" in text
    assert "Next: .venv/bin/snakemake" in text
    written = Path("config.yaml").read_text()
    block = written.split("\ngenerate:")[1].splitlines()[1:]
    block = block[: next(i for i, line in enumerate(block) if not line.startswith("  "))]
    assert len(block) == 11
    for line in block:  # every generate key commented, as the others
        assert "  # " in line, line


def test_the_base_model_recorded_by_the_trainer_is_used(here: Path) -> None:
    make.diffusers(here / "out")
    (here / "out" / "README.md").write_text(
        "---\nbase_model: stable-diffusion-v1-5/stable-diffusion-v1-5\nlicense: other\n"
        "---\n# LoRA\n"
    )
    (here / "p.txt").write_text("a dog\n")
    _, config = init(Path("out"), prompt_file=Path("p.txt"))
    assert config["generate"]["base_model"] == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    make.kohya(here / "train", steps=(100,))
    _, config = init(Path("train"), output="k.yaml")
    assert "generate" not in config  # samples on disk, nothing asked: nothing to render
    _, config = init(Path("train"), output="k2.yaml", base_model="/models/sdxl")
    assert config["generate"]["base_model"] == "/models/sdxl"
    assert config["generate"]["prompts"] is None  # kohya's own prompt file
    # kohya checkpoints without samples: sd-scripts' metadata names the base model
    meta_file = here / "lora" / "dog-step00000100.safetensors"
    make.lora_file(meta_file, ss_steps="100", ss_sd_model_name="sd_xl_base_1.0")
    (here / "p.txt").write_text("a dog\n")
    _, config = init(Path("lora"), output="k3.yaml", trainer="kohya", prompt_file=Path("p.txt"))
    assert config["generate"]["base_model"] == "sd_xl_base_1.0"
    assert config["samples"]["prompt_file"] == "p.txt" and config["generate"]["prompts"] is None


def test_base_model_without_prompts_to_render_says_what_to_pass(here: Path) -> None:
    make.diffusers(here / "out")
    with pytest.raises(CkptEvalError, match="--prompt-file"):
        init(Path("out"), base_model="models/sd15")


def test_init_refuses_what_the_workflow_would_refuse_before_writing(here: Path) -> None:
    """Real images inside the trainer's folder, checkpoint names that differ only by case, a
    name that reads as a sweep candidate: init stops as the run would, and writes nothing."""
    make.kohya(here / "train")
    tiny_image(here / "train" / "real" / "a.png", 3)
    request = InitRequest(source=Path("train"), real=Path("train/real"), output=Path("c.yaml"))
    with pytest.raises(CkptEvalError, match="is inside samples.root"):
        run_init(request)
    tiny_image(here / "ckpts" / "step-5" / "a.png", 2)
    tiny_image(here / "ckpts" / "Step-5" / "a.png", 4)
    (here / "p.csv").write_text("file,prompt\nstep-5/a.png,a fox\nStep-5/a.png,a fox\n")
    with pytest.raises(CkptEvalError, match="differ only by case"):
        init(Path("ckpts"), output="c.yaml", trainer="folders", prompts=Path("p.csv"))
    assert not (here / "c.yaml").exists()
    # a folder named like a sweep candidate would be read as a checkpoint at a LoRA scale
    tiny_image(here / "named" / "run@1000" / "a.png", 5)
    (here / "q.csv").write_text("file,prompt\nrun@1000/a.png,a fox\n")
    with pytest.raises(CkptEvalError, match="named like a candidate of a LoRA strength sweep"):
        init(Path("named"), output="c.yaml", trainer="folders", prompts=Path("q.csv"))
    assert not (here / "c.yaml").exists()
