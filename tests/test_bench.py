"""The bench's bookkeeping (bench/): which sections RESULTS.md keeps, how Snakemake's log is read
into seconds per rule, how the machine's load is reported. The measurements themselves are the
bench's job (`make bench`), never a test's: nothing here times anything."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import breakdown  # noqa: E402
import common  # noqa: E402
import quote  # noqa: E402
import run  # noqa: E402
import tree  # noqa: E402

from ckpt_eval import timing  # noqa: E402


def _record(rule: str, start: float, script: float, body: float, end: float, **phases: float):
    return {
        "rule": rule,
        "process_start": start,
        "script_start": script,
        "body_start": body,
        "end": end,
        "phases": phases,
    }


def test_a_jobs_columns_add_up_to_its_whole_time() -> None:
    record = _record(
        "inception_checkpoint",
        100.0,
        100.25,
        100.5,
        110.0,
        **{"import torch": 1.0, "weights": 0.5, "extract": 7.0, "metric fid": 0.25, "x": 0.5},
    )
    columns = breakdown.job_columns(record)
    assert columns["start"] == 0.25 and columns["imports"] == 0.25
    assert columns["import torch"] == 1.0 and columns["extract"] == 7.0
    assert columns["metrics"] == 0.25  # `metric <key>` phases are one column
    assert columns["other work"] == 0.5 + (9.5 - 9.25)  # an unknown phase, and the untimed rest
    assert sum(columns.values()) == 10.0


def test_breakdown_sums_rules_and_splits_the_wall_time() -> None:
    records = [
        _record("organize", 11.0, 11.1, 11.2, 12.0),
        _record("organize", 11.5, 11.6, 11.7, 12.5),  # overlaps the first
        _record("metrics", 13.0, 13.1, 13.2, 14.0, **{"metric kid": 0.5}),
    ]
    b = breakdown.breakdown(records, launched=10.0, ended=15.0)
    assert b["rules"]["organize"]["jobs"] == 2
    assert b["rules"]["organize"]["total"] == 2.0
    assert b["rules"]["metrics"]["metrics"] == 0.5
    assert b["wall"] == 5.0 and b["before_first_job"] == 1.0 and b["after_last_job"] == 1.0
    assert b["between_jobs"] == 0.5  # 12.5 to 13.0: no job running
    assert b["jobs_seconds"] == 3.0
    median = breakdown.median_breakdown([b, b])
    assert median["rules"]["organize"]["total"] == 2.0 and median["wall"] == 5.0
    assert "| organize | 2 | 2.00 |" in "\n".join(breakdown.table(b))


def test_job_records_read_each_logs_timing_line_and_since_keeps_one_runs(tmp_path: Path) -> None:
    logs = tmp_path / "logs" / "features"
    logs.mkdir(parents=True)
    (logs / "a.log").write_text(
        "progress\n" + timing.PREFIX + '{"rule": "a", "process_start": '
        '5.0, "script_start": 5.1, "body_start": 5.2, "end": 6.0, '
        '"phases": {}}\n'
    )
    (logs / "failed.log").write_text("Traceback ...\n")  # no timing line: left out
    records = breakdown.job_records(tmp_path)
    assert [r["rule"] for r in records] == ["a"]
    assert breakdown.since(records, 4.0) == records and breakdown.since(records, 5.5) == []


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
    load.loadavg = [1.5, 3.25]
    assert "load average (1 min) 1.5 when it began, 3.2 when it ended" in load.note()
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


RESULTS = Path(run.HERE) / "RESULTS.md"


def test_the_performance_page_quotes_exactly_what_results_holds() -> None:
    """docs/performance.md's table of targets is the one bench/RESULTS.md gives now: a figure
    rerun without the page rewritten (or a hand edit of either) fails here."""
    page = run.PERFORMANCE_PAGE.read_text(encoding="utf-8")
    held = quote.quoted(page)
    assert held is not None, f"{run.PERFORMANCE_PAGE} lost its markers {quote.BEGIN!r}"
    assert held == quote.render(RESULTS.read_text(encoding="utf-8")), (
        "docs/performance.md quotes other figures than bench/RESULTS.md holds: rerun the bench "
        'or `python -c \'import sys; sys.path.insert(0, "bench"); import quote, run; '
        'quote.update(run.PERFORMANCE_PAGE, open("bench/RESULTS.md").read())\'`'
    )
    # issue 18's targets are all there
    for figure in ("fresh", "incremental", "clip", "plan", "memory"):
        assert f"[`{figure}`](../bench/RESULTS.md#" in held, figure


def _section(name: str, *targets: common.Target, others: float | None = 0.0) -> str:
    facts = {"date": "2026-12-01", "commit": "abc1234", "others_cpu": others}
    body = f"## {name.title()} (target: x)\n\nsome text\n" + quote.note(list(targets), facts)
    return f"<!-- figure: {name} -->\n{body}<!-- end: {name} -->\n\n"


def test_the_quote_lists_each_target_with_its_figure_and_load(tmp_path: Path) -> None:
    met = common.Target("adding one", "12.0 s", "<= 15.0 s", True)
    missed = common.Target("planning", "10.9 s", "< 10 s", False)
    no_targets = "<!-- figure: nothing -->\n## No targets\n<!-- end: nothing -->\n"
    results = _section("incremental", met) + no_targets + _section("plan", missed, others=0.51)
    table = quote.render(results).splitlines()
    assert table[2] == (
        "| adding one | 12.0 s | <= 15.0 s | yes | [`incremental`](../bench/RESULTS.md"
        "#incremental-target-x), 2026-12-01 at abc1234, 0% of the CPU used by other processes |"
    )
    assert table[3].startswith("| planning | 10.9 s | < 10 s | **no** | [`plan`]")
    assert table[3].endswith("51% of the CPU used by other processes |")
    assert len(table) == 4  # a figure without targets adds no row
    page = tmp_path / "performance.md"
    page.write_text(f"# P\n\nbefore\n{quote.BEGIN}\nold table\n{quote.END}\nafter\n")
    assert quote.update(page, results)
    text = page.read_text()
    assert quote.quoted(text) == quote.render(results)
    assert text.startswith("# P\n\nbefore\n") and text.endswith(f"{quote.END}\nafter\n")
    assert "old table" not in text
    unmarked = tmp_path / "other.md"
    unmarked.write_text("no markers\n")
    assert not quote.update(unmarked, results) and unmarked.read_text() == "no markers\n"


def test_a_target_that_would_close_the_comment_is_refused() -> None:
    with pytest.raises(ValueError, match="HTML comment"):
        quote.note([common.Target("a --> b", "1 s", "< 2 s", True)], {})


def test_the_recorded_commit_ignores_only_the_bench_s_own_outputs() -> None:
    """`git status --porcelain` lines start with a space when only the work tree changed."""
    assert run.changed_files(" M bench/RESULTS.md\n M docs/performance.md\n") == set()
    assert run.changed_files(" M bench/RESULTS.md\nM  ckpt_eval/jobs.py\n?? new.py\n") == {
        "ckpt_eval/jobs.py",
        "new.py",
    }
    assert run.changed_files("") == set()
