"""The conda environments of `--sdm conda` hold the pinned requirements, no more, no other
versions; and a job run by a Python without ckpt_eval installed (such an env) still finds it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))
# conda's name for a package whose PyPI name differs
CONDA_TO_PYPI = {"pytorch": "torch"}
# the env's own tooling, not a requirement of the workflow
TOOLING = {"python", "pip"}
PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.\-]*)\s*(==?)\s*([^=\s;]+)")


def canonical(name: str) -> str:
    """PEP 503 normal form: PyYAML = pyyaml, huggingface_hub = huggingface-hub."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pin(line: str, conda: bool = False) -> tuple[str, str | None]:
    """(name, version) of `name==version` (pip) or `name=version` (conda); version None if the
    line is not such an exact pin."""
    match = PIN.fullmatch(line.strip())
    if match is None or match.group(2) != ("=" if conda else "=="):
        return canonical(re.split(r"[\s<>=!~;\[]", line.strip(), maxsplit=1)[0]), None
    return canonical(match.group(1)), match.group(3)


def pinned_requirements(path: Path) -> dict[str, str]:
    """name -> version of a requirements file; every line must be an exact pin."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, version = pin(line)
        assert version is not None, f"{path.name}: not pinned: {line}"
        pins[name] = version
    return pins


def env_packages(path: Path) -> tuple[dict[str, str | None], str | None]:
    """name -> version (None: unpinned) of a conda env file, its conda and pip sections alike;
    and the Python version it asks for."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    packages: dict[str, str | None] = {}
    python = None
    for dependency in data["dependencies"]:
        if isinstance(dependency, dict):
            for line in dependency["pip"]:
                assert not line.startswith("-"), f"{path.name}: pip option {line!r}: list pins"
                name, version = pin(line)
                packages[name] = version
            continue
        name, version = pin(dependency, conda=True)
        if name == "python":
            python = version
        elif name not in TOOLING:
            packages[CONDA_TO_PYPI.get(name, name)] = version
    return packages, python


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def project_python_floor() -> str:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    return re.search(r'^requires-python = ">=([0-9.]+)"', text, re.MULTILINE).group(1)


def test_the_envs_the_rules_name_exist() -> None:
    """Conda paths in a rule file are relative to it. (That every rule has one, `snakemake
    --lint` checks: tests/test_lint.py.)"""
    rules = REPO / "workflow" / "rules"
    named = {
        (rules / relative).resolve()
        for path in rules.glob("*.smk")
        for relative in re.findall(r'"([^"]*envs/[^"]+\.yaml)"', path.read_text(encoding="utf-8"))
    }
    assert named and named <= set(ENV_FILES)


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_pins_agree_with_the_requirements(env_file: Path) -> None:
    required = pinned_requirements(REPO / "requirements.txt")
    packages, python = env_packages(env_file)
    wrong = {
        name: (version, required.get(name))
        for name, version in packages.items()
        if version is None or required.get(name) != version
    }
    assert not wrong, f"{env_file.name}: (env, requirements.txt) disagree: {wrong}"
    # the Python the project supports (pyproject: requires-python = ">=X.Y")
    assert python is not None, f"{env_file.name}: pin the Python version"
    assert version_tuple(python) >= version_tuple(project_python_floor())


def test_the_envs_together_hold_every_requirement() -> None:
    required = pinned_requirements(REPO / "requirements.txt")
    held = set().union(*(env_packages(path)[0] for path in ENV_FILES))
    assert set(required) - held == set(), "requirements missing from every env in envs/"


def test_the_venv_holds_the_pinned_versions() -> None:
    """The versions installed in this venv are the pinned ones, so what the tests check is what
    the envs install (provenance records the installed versions)."""
    from importlib import metadata

    required = pinned_requirements(REPO / "requirements.txt")
    installed = {name: metadata.version(name) for name in required}
    assert installed == required


def test_a_script_finds_ckpt_eval_without_it_installed() -> None:
    """The env of --sdm conda does not install ckpt_eval and Snakemake strips PYTHONPATH from
    conda jobs; it puts only scripts/ on sys.path, so scripts/_checkout.py adds the checkout.
    `python -S` (no site-packages: neither the installed ckpt_eval nor any other package)
    stands for such an env; ckpt_eval.errors needs nothing outside the standard library."""
    code = (
        "import sys; sys.path.append(sys.argv[1]); import _checkout; import ckpt_eval.errors as e; "
        "print(e.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", code, str(REPO / "scripts")],
        capture_output=True,
        text=True,
        env={},
        cwd="/",
        check=True,
    )
    assert Path(done.stdout.strip()) == REPO / "ckpt_eval" / "errors.py"
    without = subprocess.run(
        [sys.executable, "-S", "-c", "import ckpt_eval"], capture_output=True, env={}, cwd="/"
    )
    assert without.returncode != 0  # so the shim, not the environment, found it above


def test_every_script_imports_the_checkout_before_ckpt_eval() -> None:
    for script in sorted((REPO / "scripts").glob("[!_]*.py")):
        imports = re.findall(r"^(?:from|import) (\w+)", script.read_text(), re.MULTILINE)
        assert "_checkout" in imports, script.name
        first_library = next((i for i, name in enumerate(imports) if name == "ckpt_eval"), None)
        assert first_library is None or imports.index("_checkout") < first_library, script.name
