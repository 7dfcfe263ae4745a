"""The bench's bookkeeping (bench/): which sections RESULTS.md keeps, how Snakemake's log is read
into seconds per rule, how the machine's load is reported. The measurements themselves are the
bench's job (`make bench`), never a test's: nothing here times anything."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import common  # noqa: E402
import incremental  # noqa: E402
import run  # noqa: E402
import tree  # noqa: E402

SNAKEMAKE_LOG = """\
Select jobs to execute...
[Thu Nov 26 17:18:52 2026]
localrule inception_checkpoint:
    input: results/b/manifests/checkpoint_step-5.json
    jobid: 8
[Thu Nov 26 17:18:52 2026]
rule metrics_checkpoint:
    jobid: 2
[Thu Nov 26 17:19:01 2026]
Finished jobid: 8 (Rule: inception_checkpoint)
[Thu Nov 26 17:19:04 2026]
Finished jobid: 2 (Rule: metrics_checkpoint)
[Thu Nov 26 17:19:05 2026]
rule inception_checkpoint:
    jobid: 9
[Thu Nov 26 17:19:07 2026]
Finished jobid: 9 (Rule: inception_checkpoint)
"""


def test_job_seconds_add_up_each_rules_jobs_from_snakemakes_timestamps() -> None:
    assert incremental._job_seconds(SNAKEMAKE_LOG) == {
        "inception_checkpoint": 9.0 + 2.0,
        "metrics_checkpoint": 12.0,
    }


def test_results_keep_the_sections_of_figures_not_run_this_time() -> None:
    existing = (
        "# old header\n\n<!-- figure: frechet -->\nold frechet\n<!-- end: frechet -->\n\n"
        "<!-- figure: tried -->\nhand notes\n<!-- end: tried -->\n\n"
        "<!-- figure: scale -->\nold scale\n<!-- end: scale -->\n\n"
    )
    merged = run.merge(existing, {"scale": "new scale\n", "extraction": "new extraction\n"})
    names = [m.group(1) for m in run.SECTION.finditer(merged)]
    assert names == ["extraction", "frechet", "scale", "tried"]  # run.FIGURES, then the notes
    assert "old frechet" in merged and "new scale" in merged and "old scale" not in merged
    assert "hand notes" in merged


def test_unknown_figures_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run.main(["no_such_figure"])
    assert "unknown figure(s) no_such_figure" in capsys.readouterr().err


def test_interleaved_runs_alternate_and_medians_are_of_each_side() -> None:
    calls: list[str] = []
    times = common.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3)
    assert calls == ["a", "b"] * 3
    assert {name: len(seconds) for name, seconds in times.items()} == {"a": 3, "b": 3}
    assert common.spread([3.0, 1.0, 2.0]) == "2.00 (1.00-3.00)"


def test_machine_load_note_says_whether_the_machine_was_shared() -> None:
    load = common.MachineLoad()
    load.others = 0.25
    assert "25%" in load.note() and "(the machine was shared)" in load.note()
    load.others = None
    assert "not measured" in load.note()


def test_tree_linearity_is_the_cost_of_added_files_not_of_the_fixed_start() -> None:
    """Figure 7 compares what files added late cost with what files added early cost: a fixed
    start-up time cancels out, a quadratic plan shows as 2 x and misses the target."""

    sizes = [25_000, 50_000, 100_000]

    def result(seconds: Callable[[int], float]) -> dict:
        times = {n: [seconds(n)] for n in sizes}
        return {"sizes": sizes, "library": times, "dry": times, "jobs": dict.fromkeys(sizes, 7)}

    linear = tree.markdown(result(lambda n: 8.0 + n / 10_000), None)
    assert "**1.00 x**" in linear and "Target met: yes" in linear
    assert tree._added({25_000: [10.5], 50_000: [13.0]}, 25_000, 50_000) == pytest.approx(0.1)
    quadratic = tree.markdown(result(lambda n: 8.0 + (n / 10_000) ** 2), None)
    assert "**2.00 x**" in quadratic and "Target met: NO" in quadratic
