"""Which data a results folder holds (ckpt_eval.run_record): another config's data under the same
`run:` name is refused naming both; the same data (also written another way, or in a copied
project folder) is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.run_record import check_run_data, record_run_data, run_data


def _config(real: str, samples: str = "samples", **generate) -> dict:
    return {
        "real_images": real,
        "samples": {"root": samples, "layout": "folders"},
        **({"generate": generate} if generate else {}),
    }


def test_the_same_data_passes_however_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "results" / "t"
    check_run_data(out, run_data(_config("real"), "samples"))  # no record yet
    record_run_data(out, run_data(_config("real"), "samples"))
    assert run_data(_config("real"), "samples")["real_images"] == "real"  # inside: relative
    check_run_data(out, run_data(_config(str(tmp_path / "real")), str(tmp_path / "samples")))
    check_run_data(out, run_data(_config("./real/"), "samples/../samples"))


@pytest.mark.parametrize(
    ("config", "named"),
    [
        (_config("other-real"), "real images 'other-real'"),
        (_config("real", "samples-b"), "samples 'samples-b'"),
        (_config("real", base_model="/models/sd15"), "generate.base_model '/models/sd15'"),
    ],
)
def test_other_data_under_the_same_run_is_refused_naming_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: dict, named: str
) -> None:
    monkeypatch.chdir(tmp_path)
    out = Path("results") / "t"
    record_run_data(out, run_data(_config("real"), "samples"))
    with pytest.raises(CkptEvalError) as info:
        check_run_data(out, run_data(config, config["samples"]["root"]))
    assert named in info.value.what and "holds the results of other data" in info.value.what
    assert info.value.path == str(out / "run.json")
    assert "own `run:` name" in info.value.fix
    (out / "run.json").unlink()  # the second fix, literally
    check_run_data(out, run_data(config, config["samples"]["root"]))


def test_a_path_outside_the_working_directory_is_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert run_data(_config("../real"), "s")["real_images"] == str(tmp_path / "real")
