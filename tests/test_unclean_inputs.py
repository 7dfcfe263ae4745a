"""The input side of docs/inputs.md's table of unclean inputs, through the whole workflow: folder
names with spaces, symbolic links (followed; loops and double ways in refused), folders that
hold one another, prompt files from spreadsheets (UTF-16, semicolons), one file with two
prompts, checkpoint names that differ only by case. Each refusal is followed by its fix.

The library-level cases are in test_discover.py, test_prompts.py and test_steps.py."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import make_project, snakemake, write_images

from ckpt_eval.features.cache import load_features

pytestmark = pytest.mark.workflow


def _result(root: Path) -> dict:
    return json.loads((root / "results" / "t" / "consolidated_results.json").read_text())


def _write_prompts(root: Path, encoding: str, delimiter: str) -> None:
    """Every image under samples/ with a prompt holding commas, in the given encoding."""
    samples = root / "samples"
    files = sorted(  # os.walk, as Path.rglob does not enter linked folders (Python 3.11)
        (Path(folder) / name).relative_to(samples).as_posix()
        for folder, _, names in os.walk(samples, followlinks=True)
        for name in names
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(["file", "prompt"])
    writer.writerows([f, f"a shoe, number {i}, on grass"] for i, f in enumerate(files))
    (root / "prompts.csv").write_bytes(buffer.getvalue().encode(encoding))


def test_spaces_in_names_links_and_a_utf16_semicolon_prompt_file(tmp_path: Path) -> None:
    """`step 100` gets step 100; a checkpoint of links to another's images gets exactly its
    FID; a checkpoint folder linked from outside samples.root and a real-image folder linked
    into real/ are read; the prompts come from UTF-16 with semicolons, as Excel writes them."""
    config = make_project(tmp_path, {"step 100": 4, "step_200": 4}, n_real=8)
    samples = tmp_path / "samples"
    (samples / "checkpoint 300").mkdir()
    for image in sorted((samples / "step 100").iterdir()):
        (samples / "checkpoint 300" / image.name).symlink_to(image)
    store = tmp_path / "elsewhere" / "run-400"
    shutil.copytree(samples / "step_200", store)
    (samples / "Step400").symlink_to(store, target_is_directory=True)
    write_images(tmp_path / "more-real", 4, seed=7)
    (tmp_path / "real" / "more").symlink_to(tmp_path / "more-real", target_is_directory=True)
    _write_prompts(tmp_path, "utf-16", ";")
    snakemake(tmp_path, config)

    rows = {r["name"]: r for r in _result(tmp_path)["checkpoints"]}
    assert [(r["name"], r["step"]) for r in _result(tmp_path)["checkpoints"]] == [
        ("step 100", 100),
        ("step_200", 200),
        ("checkpoint 300", 300),
        ("Step400", 400),
    ]
    assert {name: row["n_images"] for name, row in rows.items()} == dict.fromkeys(rows, 4)
    assert rows["checkpoint 300"]["fid"] == rows["step 100"]["fid"]  # the same images
    assert rows["Step400"]["fid"] == rows["step_200"]["fid"]
    assert rows["step 100"]["fid"] != rows["step_200"]["fid"]
    assert all(row["fallback_count"] == 0 for row in rows.values())  # every prompt matched
    real = json.loads((tmp_path / "results" / "t" / "manifests" / "real.json").read_text())
    assert len(real["images"]) == 12
    assert {"more/img_000.png", "img_000.png"} <= {i["file"] for i in real["images"]}
    _, clip = load_features(
        tmp_path / "results" / "t" / "features/clip/checkpoint_checkpoint 300.npz"
    )
    assert clip["prompts"][0].startswith("a shoe, number ")


Breaker = Callable[[Path, dict], None]


def _loop(root: Path, config: dict) -> None:
    (root / "samples" / "step-1" / "again").symlink_to("..", target_is_directory=True)


def _unloop(root: Path, config: dict) -> None:
    (root / "samples" / "step-1" / "again").unlink()


def _real_holds_samples(root: Path, config: dict) -> None:
    shutil.move(root / "samples", root / "real" / "samples")
    config["samples"]["root"] = "real/samples"


def _samples_moved_out(root: Path, config: dict) -> None:
    shutil.move(root / "real" / "samples", root / "samples")
    config["samples"]["root"] = "samples"


def _samples_hold_real(root: Path, config: dict) -> None:
    shutil.move(root / "real", root / "samples" / "real")
    config["real_images"] = "samples/real"


def _real_moved_out(root: Path, config: dict) -> None:
    shutil.move(root / "samples" / "real", root / "real")
    config["real_images"] = "real"


def _same_name_but_case(root: Path, config: dict) -> None:
    shutil.copytree(root / "samples" / "step-1", root / "samples" / "Step-1")
    _append_prompts(root, [(f"Step-1/img_00{i}.png", "a prompt") for i in range(3)])


def _renamed(root: Path, config: dict) -> None:
    (root / "samples" / "Step-1").rename(root / "samples" / "step-1-b")
    text = (root / "prompts.csv").read_text(encoding="utf-8")
    (root / "prompts.csv").write_text(text.replace("Step-1/", "step-1-b/"), encoding="utf-8")


def _two_prompts(root: Path, config: dict) -> None:
    _append_prompts(root, [("step-1/img_000.png", "a completely different prompt")])


def _one_prompt(root: Path, config: dict) -> None:
    lines = (root / "prompts.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (root / "prompts.csv").write_text("".join(lines[:-1]), encoding="utf-8")


def _utf16_without_mark(root: Path, config: dict) -> None:
    text = (root / "prompts.csv").read_text(encoding="utf-8")
    (root / "prompts.csv").write_bytes(text.encode("utf-16-le"))


def _saved_as_utf8(root: Path, config: dict) -> None:
    text = (root / "prompts.csv").read_bytes().decode("utf-16-le")
    (root / "prompts.csv").write_text(text, encoding="utf-8")


def _broken_link(root: Path, config: dict) -> None:
    (root / "samples" / "step-2").symlink_to(root / "unmounted" / "step-2")


def _link_deleted(root: Path, config: dict) -> None:
    (root / "samples" / "step-2").unlink()


def _append_prompts(root: Path, rows: list[tuple[str, str]]) -> None:
    with open(root / "prompts.csv", "a", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)


# (case, break it, what the message says, fix it as the message says)
REFUSED: list[tuple[str, Breaker, tuple[str, ...], Breaker]] = [
    ("symlink loop", _loop, ("Symbolic link loop", "step-1/again", "delete the link"), _unloop),
    (
        "samples inside the real folder",
        _real_holds_samples,
        ("samples.root", "is inside real_images", "move the samples out"),
        _samples_moved_out,
    ),
    (
        "real folder inside the samples",
        _samples_hold_real,
        ("real_images", "is inside samples.root", "move the real images out"),
        _real_moved_out,
    ),
    (
        "names differing only by case",
        _same_name_but_case,
        ("'Step-1' and 'step-1' differ only by case", "rename one of them"),
        _renamed,
    ),
    (
        "one file, two prompts",
        _two_prompts,
        ("step-1/img_000.png", "'a picture number img_000'", "'a completely different prompt'"),
        _one_prompt,
    ),
    (
        "UTF-16 without a mark",
        _utf16_without_mark,
        ("prompts.csv", "UTF-16 without a byte-order mark", "save it as UTF-8"),
        _saved_as_utf8,
    ),
    ("broken link", _broken_link, ("Broken symbolic link", "samples/step-2"), _link_deleted),
]


@pytest.mark.parametrize(
    ("case", "breaker", "words", "fix"), REFUSED, ids=[case for case, *_ in REFUSED]
)
def test_refused_before_any_work_naming_the_file_and_the_fix_works(
    tmp_path: Path, case: str, breaker: Breaker, words: tuple[str, ...], fix: Breaker
) -> None:
    path = make_project(tmp_path, {"step-1": 3}, n_real=3)
    config = yaml.safe_load(path.read_text())
    breaker(tmp_path, config)
    path.write_text(yaml.safe_dump(config))
    done = snakemake(tmp_path, path, "--dry-run", check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0, case
    for word in words:
        assert word in output, (case, word, output)
    assert not (tmp_path / "results").exists()
    fix(tmp_path, config)
    path.write_text(yaml.safe_dump(config))
    done = snakemake(tmp_path, path, "--dry-run", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "results/t/report.html" in done.stdout
