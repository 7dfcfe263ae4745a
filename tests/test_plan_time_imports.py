"""Plan-time code imports no torch: every module of ckpt_eval but the torch side (ckpt_eval.extract
and ckpt_eval.generate.pipeline) imports without torch, torchvision, transformers or diffusers,
and without the torch side itself. Snakefile planning (common.smk) and the metrics and report
jobs then start in a fraction of a second, and a no-op rerun stays fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO

TORCH_SIDE = ("ckpt_eval.extract", "ckpt_eval.generate.pipeline")
HEAVY = ("torch", "torchvision", "transformers", "diffusers")

# In a fresh interpreter: walk the package without importing the torch side (pkgutil.iter_modules
# reads folders; walk_packages would import every package to look inside it), then import each
# module in turn and note which one first brought in a heavy or torch-side module.
PROBE = """
import importlib, json, os, pkgutil, sys
import ckpt_eval
torch_side, heavy = json.loads(sys.argv[1])

def torch_side_module(name):
    return any(name == t or name.startswith(t + ".") for t in torch_side)

def walk(folder, prefix):
    for info in pkgutil.iter_modules([folder], prefix):
        if torch_side_module(info.name):
            continue
        yield info.name
        if info.ispkg:
            yield from walk(os.path.join(folder, info.name.rsplit(".", 1)[1]), info.name + ".")

def unwanted():
    return sorted(
        m for m in sys.modules if m.split(".")[0] in heavy or torch_side_module(m)
    )

modules, first = list(walk(ckpt_eval.__path__[0], "ckpt_eval.")), {}
for name in modules:
    importlib.import_module(name)
    for module in unwanted():
        first.setdefault(module, name)
print(json.dumps({"file": ckpt_eval.__file__, "modules": modules, "first": first}))
"""


def test_plan_time_modules_import_no_torch() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps([TORCH_SIDE, HEAVY])],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["file"] == str(REPO / "ckpt_eval" / "__init__.py")
    # the walk reached the plan-time modules of every subpackage, and none of the torch side
    expected = {
        "ckpt_eval.config",
        "ckpt_eval.provenance",
        "ckpt_eval.jobs",
        "ckpt_eval.inputs.layouts.kohya",
        "ckpt_eval.features.cache",
        "ckpt_eval.generate.plan",
        "ckpt_eval.metrics.fid",
        "ckpt_eval.analysis.consolidate",
        "ckpt_eval.report.render",
    }
    assert expected <= set(found["modules"])
    assert not [m for m in found["modules"] if m.startswith(TORCH_SIDE)]
    # which plan-time module first brought each one in (`python -X importtime -c "import <it>"`
    # shows through which import)
    assert found["first"] == {}, found["first"]
