"""ckpt_eval works installed: the wheel built from this checkout holds every module, the config
schema, the report templates and the `snakemake --report` captions; installed into a fresh venv,
it validates a config and renders a report from outside the checkout, reading nothing of it.

The fresh venv borrows the dependencies of the venv running the tests (a .pth line naming its
site-packages: nothing is downloaded). That venv also holds an editable ckpt_eval, whose finder
would point back at this checkout; a .pth path line does not run the .pth files of the folder it
adds, so the finder stays out, and the test checks that what it imported is the wheel's copy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import REPO
from test_render import _result
from test_render import samples as report_samples  # noqa: F401  (the fixture, by this name)

PACKAGE_DATA = ("schemas", "report/templates", "report/captions")
PIP = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", "PIP_NO_INDEX": "1"}


def run(*command: str | Path, **kwargs) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_"))}
    done = subprocess.run(
        [str(c) for c in command],
        capture_output=True,
        text=True,
        env={**env, **PIP},
        timeout=120,
        **kwargs,
    )
    shown = " ".join(str(c) if len(str(c)) < 200 else "<script>" for c in command)
    assert done.returncode == 0, f"{shown}\n{done.stdout}\n{done.stderr}"
    return done


def checkout_files() -> list[str]:
    """What the wheel must hold: every module of the package and every file of its data."""
    package = REPO / "ckpt_eval"
    files = [p for p in package.rglob("*.py") if "__pycache__" not in p.parts]
    files += [p for folder in PACKAGE_DATA for p in (package / folder).iterdir() if p.is_file()]
    return sorted(p.relative_to(REPO).as_posix() for p in files)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of the checkout's pyproject.toml and ckpt_eval/: setuptools writes
    build/ and an egg-info next to the sources it builds."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    shutil.copy2(REPO / "pyproject.toml", source)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "ckpt_eval", source / "ckpt_eval", ignore=ignore)
    out = tmp / "dist"
    run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", out, source
    )
    (built,) = out.glob("ckpt_eval-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fresh") / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", root)
    python = root / "bin" / "python"
    site = Path(
        run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip()
    )
    deps = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (site / "test-dependencies.pth").write_text("".join(f"{p}\n" for p in deps))
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", wheel)
    return root


def test_the_wheel_holds_every_module_the_schema_templates_and_captions(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(checkout_files()) - names == set()
    assert {
        "ckpt_eval/schemas/config.schema.yaml",
        "ckpt_eval/report/templates/report.md.j2",
        "ckpt_eval/report/templates/report.html.j2",
    } <= names
    # every caption the rules and the Snakefile name
    rules = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    named = {m for p in rules for m in re.findall(r"\{CAPTIONS\}/([\w.-]+)", p.read_text())}
    assert {"workflow.rst", "results.rst", "metrics.rst", "report.rst", "charts.rst"} <= named
    assert {f"ckpt_eval/report/captions/{name}" for name in named} <= names


# Run by the fresh venv's Python with -I (no PYTHON* variables, no cwd or script folder on
# sys.path), in a folder outside the checkout: argv = result JSON, manifests JSON, output folder.
INSTALLED = """
import json, sys
from importlib import resources
from pathlib import Path

import ckpt_eval
from ckpt_eval import config as cfg
from ckpt_eval.errors import CkptEvalError
from ckpt_eval.provenance import software
from ckpt_eval.report import grid, render

result, manifests, out = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])
config = cfg.validate_config(
    {"run": "installed", "real_images": "real", "samples": {"root": "s"}, "prompts": "p.csv",
     "report": {"thumbnails": 2}}
)
try:
    cfg.validate_config({"run": "x", "real_images": "r", "samples": {"root": "s"}, "nope": 1})
    refused = None
except CkptEvalError as exc:
    refused = str(exc)
render.render_files(
    result, manifests, config, str(out / "report.md"), str(out / "report.html"),
    str(out / "plots"), str(out / "grids"),
)
grid.contact_sheet_files(result, manifests, out / "grids")
captions = resources.files("ckpt_eval.report") / "captions"
print(json.dumps({
    "package": ckpt_eval.__file__,
    "schema": str(cfg.SCHEMA_PATH),
    "templates": str(render.TEMPLATES),
    "captions": sorted(str(p) for p in captions.iterdir()),
    "defaults": {"device": config["device"], "clip": config["clip"]},
    "refused": refused,
    "workflow_commit": software()["workflow_commit"],
    "sys_path": sys.path,
    "modules": sorted(
        getattr(m, "__file__", None) or "" for m in list(sys.modules.values())
    ),
}))
"""


@pytest.fixture
def consolidated(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, list[str]]:
    """test_render's consolidated result (the library's consolidate on per-checkpoint rows with
    every key a metrics job writes) and its checkpoints' manifests, written out as the workflow
    writes them."""
    samples = request.getfixturevalue("report_samples")
    result = tmp_path / "consolidated_results.json"
    result.write_text(json.dumps(_result(samples)), encoding="utf-8")
    manifests = []
    for index, manifest in enumerate(samples.values()):
        manifests.append(str(tmp_path / f"manifest_{index}.json"))
        Path(manifests[-1]).write_text(json.dumps(manifest), encoding="utf-8")
    return result, manifests


def test_the_installed_package_validates_a_config_and_renders_a_report(
    venv: Path, consolidated: tuple[Path, list[str]], tmp_path: Path
) -> None:
    result, manifests = consolidated
    out = tmp_path / "elsewhere"
    out.mkdir()
    done = run(
        venv / "bin" / "python", "-I", "-c", INSTALLED, result, json.dumps(manifests), out, cwd=out
    )
    found = json.loads(done.stdout)

    installed = venv.resolve()
    for key in ("package", "schema", "templates"):
        assert Path(found[key]).resolve().is_relative_to(installed), (key, found[key])
    assert Path(found["schema"]).name == "config.schema.yaml"
    captions = [Path(p) for p in found["captions"]]
    assert {p.name for p in captions} >= {"workflow.rst", "metrics.rst", "charts.rst"}
    assert all(p.resolve().is_relative_to(installed) for p in captions)
    # the checkout's library neither on the path nor among the modules; no workflow, no commit
    library = str((REPO / "ckpt_eval").resolve())
    assert REPO.resolve() not in [Path(p).resolve() for p in found["sys_path"] if p]
    assert not [f for f in found["modules"] if f.startswith(library + os.sep)]
    assert found["workflow_commit"] is None
    # (a) the schema's defaults filled in, an unknown key refused by name
    assert found["defaults"]["device"] == "auto" and found["defaults"]["clip"]["required"]
    assert found["refused"] and "nope" in found["refused"]
    # (b) the report, with every checkpoint, and its charts
    markdown = (out / "report.md").read_text(encoding="utf-8")
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "step-100" in markdown and "step-200" in markdown
    assert html.lstrip().lower().startswith("<!doctype html") and "step-200" in html
    assert "data:image/png;base64," in html  # charts embedded
    assert (out / "plots" / "fid.png").is_file()
    # the contact sheets the Markdown links, drawn by the installed package (its fonts)
    sheets = sorted(p.name for p in (out / "grids").glob("grid-*.jpg"))
    linked = sorted(set(re.findall(r"\(grids/(grid-\d+\.jpg)\)", markdown)))
    assert (out / "grids").is_dir() and sheets == linked
