"""Markdown and HTML reports: hostile names and prompts stay text, the HTML is self-contained."""

from __future__ import annotations

import base64
import io
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from checkpoint_eval import evaluate_features
from conftest import only_own_script, refuse_decoding, write_images
from markdown_it import MarkdownIt
from PIL import Image

from ckpt_eval.analysis.bootstrap import MIN_IMAGES
from ckpt_eval.analysis.checkpoint import analysis_settings
from ckpt_eval.analysis.consolidate import consolidate
from ckpt_eval.analysis.pairing import key_set, pairing_keys, pairing_kind
from ckpt_eval.config import config_hash, validate_config
from ckpt_eval.features.inception_id import DIM
from ckpt_eval.inputs.manifest import build_manifest
from ckpt_eval.jsonio import write_json
from ckpt_eval.metrics.registry import CheckpointData, measures, quantities
from ckpt_eval.provenance import provenance
from ckpt_eval.report.grid import build_grid, write_contact_sheets
from ckpt_eval.report.prose import notice_text
from ckpt_eval.report.render import (
    SIZE_BUDGET,
    _md_escape,
    charts,
    render,
    render_files,
)

# bench/data.py's photo crops: the bench's 20 x 64 report is made of them too
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from data import photo_crops  # noqa: E402

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
PIPE_PROMPT = f"left | right {SCRIPT}"
BEST = f"best {IMG}"  # a checkpoint folder name may hold any of these characters on Linux

EXTRA = {
    "device": f"cpu {SCRIPT}",
    "inception_extractor": "inception-v3",
    "inception_weights_sha256": "7ff4a85c",
    "preprocessing": "clean",
    "clip": f"tiny {IMG}",
}


def _config(**overrides: Any) -> dict[str, Any]:
    config = {
        "run": "unit-run",
        "real_images": "real",
        "samples": {"root": "s"},
        "prompts": "p.csv",
        "report": {"title": f"Eval {SCRIPT}", "thumbnails": 2},
        "clip": {"model": f"model {IMG}", "required": False},
    }
    config.update(overrides)
    return validate_config(config)


HAND_BUILT = {"fid", "kid", "clip", "prdc", "memorization", "fid_infinity"}


def _other_metrics(row: dict[str, Any]) -> dict[str, Any]:
    """The fields of every registered metric but the hand-built ones, computed on random
    features with no optional model (what such a run writes), and their interval fields."""
    n = len(row["per_image"])
    rng = np.random.default_rng(n)
    data = CheckpointData(
        name=row["name"],
        real=rng.normal(size=(20, 4)),
        real_stats=None,
        n_real=20,
        fake=rng.normal(size=(n, 4)),
        clip={"available": False, "reason": "off"},
        real_clip={},
        per_image=row["per_image"],
        sample_images=[],
        real_images=[],
        all_real_images=[],
        settings=analysis_settings(_config()),
        features={"inception": {"inception": rng.normal(size=(n, 4))}},
    )
    fields: dict[str, Any] = {}
    for measure in measures():
        if measure.key in HAND_BUILT:
            continue
        outcome = measure.compute(data)
        fields.update(outcome.fields)
        for column, values in outcome.per_image.items():
            for image, value in zip(row["per_image"], values, strict=True):
                image.setdefault(column, value)
        fields.update({q.interval: None for q in measure.quantities if q.interval})
    return fields


def _row(
    name: str,
    step: int | None,
    fid: float,
    clip: float | None,
    files: list[str],
    prompts: list[str],
    **extra: Any,
) -> dict[str, Any]:
    """A per-checkpoint metrics row with every key a checkpoint's evaluation writes.

    Unless given, its notices are those a real evaluation of its images with the default config
    (kid.subset_size 1000, prdc.k 5) would make, and its warnings their sentences.
    """
    per_image = [
        {"file": f, "prompt": p, "seed": None, "fallback": False, "clip_score": clip}
        for f, p in zip(files, prompts, strict=True)
    ]
    row = {
        "name": name,
        "step": step,
        "epoch": None,
        "n_images": len(files),
        "n_real": 50,
        "fid": fid,
        "kid_mean": fid / 1000,
        "kid_std": 0.001,
        "kid_subsets": 10,
        "kid_subset_size": len(files),
        "clip_available": clip is not None,
        "clip_reason": None if clip is not None else f"no clip {SCRIPT}",
        "clip_score_mean": clip,
        "clip_score_std": None if clip is None else 1.0,
        "clip_per_prompt": []
        if clip is None
        else [
            {"prompt": p, "mean": clip, "std": 0.0, "n": 1, "ci": None}
            for p in dict.fromkeys(prompts)
        ],
        "truncated_prompts": [],
        "fallback_count": 0,
        "prompts_without_image": [],
        "skipped_images": [],
        "image_sizes": {"48x40": len(files)},
        "conversions": [],
        "per_image": per_image,
        "pairing": {
            "key_set": key_set(pairing_keys(per_image)),
            "by": pairing_kind(per_image),
            "n": len(per_image),
        },
        "fid_ci": None,
        "kid_ci": None,
        "clip_ci": None,
        "prdc": None,
        "fid_infinity": None,
        "duplicates": [],
        "exact_real_copies": [],
        "memorization": {
            "inception": {
                "threshold": 0.95,
                "n_flagged": 0,
                "share_flagged": 0.0,
                "max_similarity": 0.5,
                "median_similarity": 0.4,
                "pairs": [],
            },
            "flag_share": 0.05,
            "flagged": [],
        },
    }
    row.update(extra)
    # the metrics this builder does not set by hand (the newer ones), as an evaluation of
    # random features without the optional models writes them
    row.update(_other_metrics(row))
    if "notices" not in extra:
        row["notices"] = _notices(row)
    if "warnings" not in extra:
        row["warnings"] = [notice_text(n) for n in row["notices"]]
    return row


def _notices(row: dict[str, Any]) -> list[dict[str, Any]]:
    """What evaluating a row's images would notice: input notices first, then the metrics'."""
    n = row["n_images"]
    notices = []
    if row["fallback_count"]:
        notices.append({"code": "input.fallback_prompt", "count": row["fallback_count"]})
    if row["skipped_images"]:
        notices.append({"code": "input.skipped", "count": len(row["skipped_images"])})
    if n < DIM:
        notices.append({"code": "fid.small_n", "n": n, "rank": n - 1, "dim": DIM})
    if row["kid_subset_size"] < 1000:
        notices.append({"code": "kid.capped", "size": row["kid_subset_size"], "configured": 1000})
    if n <= 5:
        notices.append({"code": "prdc.too_few", "k": 5})
    if n < MIN_IMAGES:
        notices.append({"code": "bootstrap.too_few", "n": n, "min": MIN_IMAGES})
    return notices


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Real PNGs and their manifests: two stepped checkpoints and one with a hostile name."""
    root = tmp_path_factory.mktemp("samples")
    manifests = {}
    for index, name in enumerate(["step-100", "step-200", BEST]):
        paths = write_images(root / name, 3, seed=20 + index)
        if name == BEST:
            hostile = paths[0].with_name(f"{IMG}.png")
            paths[0].rename(hostile)
            paths[0] = hostile
        manifests[name] = build_manifest(name, paths, root)
    return manifests


def _metrics(samples: dict[str, dict[str, Any]], clip: bool = True) -> list[dict[str, Any]]:
    def files(name: str) -> list[str]:
        return [image["file"] for image in samples[name]["images"]]

    hostile_files = files(BEST)
    return [
        _row("step-100", 100, 40.0, 25.0 if clip else None, files("step-100"), ["a cat"] * 3),
        _row(
            "step-200",
            200,
            30.0,
            27.0 if clip else None,
            files("step-200"),
            [PIPE_PROMPT, "a | b", PIPE_PROMPT],
            # a warning is shown as text whatever it holds (input.shared_files names checkpoints)
            warnings=[f"warning {SCRIPT}"],
        ),
        _row(
            BEST,
            None,
            10.0,
            31.0 if clip else None,
            hostile_files,
            [SCRIPT, IMG, "x"],
            truncated_prompts=[{"prompt": f"long {SCRIPT}", "tokens": 90}],
            prompts_without_image=[f"{BEST}/{IMG}-missing.png"],
            skipped_images=[{"path": f"/s/{IMG}.png", "file": "x", "reason": f"bad {SCRIPT}"}],
            conversions=[{"note": f"RGBA {IMG}", "count": 1}],
            fallback_count=1,
            per_image=[
                {
                    "file": hostile_files[0],
                    "prompt": "fb",
                    "seed": None,
                    "fallback": True,
                    "clip_score": None,
                },
                {
                    "file": hostile_files[1],
                    "prompt": IMG,
                    "seed": None,
                    "fallback": False,
                    "clip_score": None,
                },
                {
                    "file": hostile_files[2],
                    "prompt": "x",
                    "seed": None,
                    "fallback": False,
                    "clip_score": None,
                },
            ],
        ),
    ]


def _result(samples, clip: bool = True) -> dict[str, Any]:
    config = _config()
    prov = provenance(config, config_hash(config), EXTRA)  # as consolidate_files makes it
    return consolidate(_metrics(samples, clip), config, prov)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []  # (tag, name, value)
        self.text: list[str] = []
        self._stack: list[tuple[str, dict[str, str | None]]] = []
        self.rows: list[tuple[dict[str, str | None], str]] = []  # <tr> attrs and its text

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend((tag, k, v) for k, v in attrs)
        if tag == "tr":
            self._stack.append(("tr", dict(attrs)))
            self.rows.append((dict(attrs), ""))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        if tag == "tr" and self._stack:
            self._stack.pop()

    def handle_data(self, data):
        self.text.append(data)
        if self._stack:
            attrs, text = self.rows[-1]
            self.rows[-1] = (attrs, text + data)


def _parse(html: str) -> _Collector:
    parser = _Collector()
    parser.feed(html)
    parser.close()
    return parser


def _md_cells(line: str) -> list[str]:
    """Split a Markdown table row as GFM does: `\\x` is an escaped character, `|` a boundary."""
    cells, current, i = [], "", 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line):
            current += line[i : i + 2]
            i += 2
            continue
        if line[i] == "|":
            cells.append(current)
            current = ""
        else:
            current += line[i]
        i += 1
    cells.append(current)
    return [c.strip() for c in cells[1:-1]]  # outer pipes


def _md_unescape(cell: str) -> str:
    out = re.sub(r"\\(.)", r"\1", cell)
    return out.replace("&lt;", "<").replace("&gt;", ">")


def _render(samples, clip: bool = True) -> tuple[str, str, dict[str, Any]]:
    result = _result(samples, clip)
    pngs = charts(result)
    files = {name: f"plots/{name}.png" for name in pngs}
    markdown, html = render(result, _config(), samples, pngs, files)
    return markdown, html, result


def test_rows_have_the_keys_a_checkpoint_evaluation_writes(samples) -> None:
    """The hand-made rows stand for real ones: the keys of a full evaluation of step-100's images
    (every registered metric, its interval, the notices), nested ones included, and for the same
    images the same notices."""
    rng = np.random.default_rng(0)
    manifest = samples["step-100"]
    pairs = {
        "pairs": [
            {"file": i["file"], "prompt": "p", "fallback": False, "seed": None}
            for i in manifest["images"]
        ],
        "fallback_count": 0,
        "prompts_without_image": [],
    }
    clip = {"available": True, "image": rng.normal(size=(3, 4)), "text": rng.normal(size=(3, 4))}
    real_features, fake = rng.normal(size=(50, 4)), rng.normal(size=(3, 4))
    real = evaluate_features(manifest, pairs, real_features, fake, clip, 10, 1000, 0)
    rows = _metrics(samples)
    for row in rows:
        assert set(row) == set(real)
        assert set(row["memorization"]) == set(real["memorization"])
        assert set(row["memorization"]["inception"]) == set(real["memorization"]["inception"])
        assert {frozenset(i) for i in row["per_image"]} == {frozenset(real["per_image"][0])}
        assert {frozenset(g) for g in row["clip_per_prompt"]} == {
            frozenset(real["clip_per_prompt"][0])
        }
    assert rows[0]["notices"] == real["notices"] and rows[0]["warnings"] == real["warnings"]
    assert [n["code"] for n in rows[2]["notices"]][:2] == ["input.fallback_prompt", "input.skipped"]


def test_html_is_safe_and_self_contained(samples) -> None:
    _, html, result = _render(samples)
    parser = _parse(html)
    only_own_script(html)
    assert parser.tags.count("script") == 1
    handlers = [(t, k) for t, k, _ in parser.attrs if k.startswith("on")]
    assert handlers == []
    # exactly the template's own images: a chart per charted metric with values (FID, KID,
    # CLIP, near copies, and the newer ones) + 2 thumbnails for each of 3 checkpoints (these
    # three share no prompt, so the grid has no row) + the empty enlarged view
    sources = [v for t, k, v in parser.attrs if k == "src"]
    assert all(s.startswith("data:") for s in sources), sources
    assert len(sources) == len(_charted(result)) + 3 * 2
    assert "img" in parser.tags and parser.tags.count("img") == len(sources) + 1
    zooms = [v for t, k, v in parser.attrs if k == "data-group"]
    assert len(zooms) == 3 * 2 and not [v for t, k, v in parser.attrs if k == "data-full"]
    hrefs = [v for _, k, v in parser.attrs if k == "href"]
    assert hrefs and all(h.startswith("#") for h in hrefs)
    # the payloads are shown as text
    text = "".join(parser.text)
    for payload in (SCRIPT, IMG, BEST, PIPE_PROMPT, f"Eval {SCRIPT}", f"model {IMG}"):
        assert payload in text, payload
    assert f"warning {SCRIPT}" in text and f"bad {SCRIPT}" in text and f"long {SCRIPT}" in text
    assert f"RGBA {IMG}" in text and f"cpu {SCRIPT}" in text and f"tiny {IMG}" in text
    # and as an attribute value (thumbnail alt) it stays a value, not markup
    alts = [v for t, k, v in parser.attrs if t == "img" and k == "alt"]
    assert f"{BEST}/{IMG}.png" in alts
    assert result["recommendation"]["checkpoint"] == BEST


def test_html_data_uris_decode(samples) -> None:
    _, html, _ = _render(samples)
    sources = [v for _, k, v in _parse(html).attrs if k == "src"]
    pngs = [s for s in sources if s.startswith("data:image/png;base64,")]
    jpegs = [s for s in sources if s.startswith("data:image/jpeg;base64,")]
    assert len(pngs) == len(_charted(_result(samples))) and len(jpegs) == 6
    for uri in pngs:
        assert base64.b64decode(uri.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    for uri in jpegs:
        with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as image:
            assert image.format == "JPEG"
            assert image.size == (48, 40)  # smaller than 128: thumbnail() keeps the size


def test_thumbnail_count_follows_config(samples) -> None:
    result = _result(samples)
    for n, expected in ((0, 0), (1, 3), (10, 9)):  # 3 images per checkpoint at most
        config = _config(report={"thumbnails": n})
        _, html = render(result, config, samples, {}, {})
        sources = [v for _, k, v in _parse(html).attrs if k == "src"]
        assert len(sources) == expected


def test_recommended_row_is_marked(samples) -> None:
    markdown, html, result = _render(samples)
    assert result["recommendation"]["checkpoint"] == BEST
    marked = [(attrs, text) for attrs, text in _parse(html).rows if attrs.get("class")]
    assert len(marked) == 1
    attrs, text = marked[0]
    assert attrs["class"] == "recommended"
    assert BEST in text and "★" in text
    # Markdown: exactly one results row carries the mark, the one of the recommended checkpoint
    rows = [
        line
        for line in markdown.splitlines()
        if line.startswith("| ") and "(recommended)" in line and not line.startswith("| Prompt")
    ]
    assert len(rows) == 1
    cells = _md_cells(rows[0])
    assert _md_unescape(cells[1]) == f"**{BEST}** (recommended)"
    assert f"### {_md_escape(BEST)} (recommended)" in markdown


def test_markdown_escapes_cells(samples) -> None:
    markdown, _, _ = _render(samples)
    # no HTML entity; every `<` is escaped, so no tag can open
    assert not re.search(r"&(lt|gt|amp|quot|#\d+);", markdown)
    assert re.findall(r"(?<!\\)<", markdown) == []
    assert _md_escape(SCRIPT) == "\\<script>alert(1)\\</script>"
    assert _md_escape("CLIP >= 30") == "CLIP >= 30"
    assert _md_escape("a | b") == "a \\| b"
    assert _md_escape("a\\|b") == "a\\\\\\|b"
    assert _md_escape("> not a quote") == "\\> not a quote"
    assert _md_escape("*not* [a](link) `x` &amp;") == "\\*not\\* \\[a\\](link) \\`x\\` \\&amp;"
    lines = markdown.splitlines()
    tables: list[list[list[str]]] = []
    for i, line in enumerate(lines):
        if line.startswith("|") and (i == 0 or not lines[i - 1].startswith("|")):
            tables.append([])
        if line.startswith("|"):
            tables[-1].append(_md_cells(line))
    # results, fidelity/memorization, significance, the grid's unmatched images (these three
    # checkpoints share no prompt and position) and CLIP score per prompt
    assert len(tables) == 5
    for table in tables:
        widths = {len(cells) for cells in table}
        assert len(widths) == 1, table  # no cell split by a pipe in its content
    results = tables[0]
    assert [
        _md_unescape(r[1]).replace("**", "").replace(" (recommended)", "") for r in results[2:]
    ] == [
        "step-100",
        "step-200",
        BEST,
    ]
    assert len(tables[3]) == 2 + 9
    prompts = {_md_unescape(r[0]) for r in tables[4][2:]}
    assert prompts == {"a cat", PIPE_PROMPT, "a | b", SCRIPT, IMG, "x"}


def test_markdown_renders_as_github_would(samples) -> None:
    """Through a CommonMark parser with GitHub's tables and raw HTML allowed: the hostile text is
    text (no element made from it), every table is a table, charts are image files beside it."""
    markdown, _, result = _render(samples)
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    parser = _parse(html)
    assert "script" not in parser.tags and not [k for _, k, _ in parser.attrs if k.startswith("on")]
    assert parser.tags.count("table") == 5
    text = "".join(parser.text)
    for payload in (SCRIPT, IMG, PIPE_PROMPT, f"Eval {SCRIPT}", "CLIP score"):
        assert payload in text, payload
    images = [v for t, k, v in parser.attrs if t == "img" and k == "src"]
    assert images == [f"plots/{name}.png" for name in charts(result)]


@pytest.mark.parametrize("clip", [True, False])
def test_clip_notice_iff_not_computed(samples, clip: bool) -> None:
    markdown, html, result = _render(samples, clip)
    assert result["clip"]["computed"] is clip
    text = "".join(_parse(html).text)
    notice = "CLIP score was not computed"
    assert (notice in markdown) is not clip
    assert (notice in text) is not clip
    if not clip:
        assert f"no clip {SCRIPT}" in text  # the reason, as text
        assert _md_escape(f"no clip {SCRIPT}") in markdown
        assert "per prompt" not in markdown  # no per-prompt CLIP table without CLIP


def _charted(result: dict[str, Any]) -> list[str]:
    """The registry's charted metrics that some checkpoint of `result` has a value of."""
    rows = result["checkpoints"]
    return [q.key for q in quantities() if q.chart and any(q.value(r) is not None for r in rows)]


def test_charts_skip_metrics_without_values(samples) -> None:
    with_clip, without = _result(samples, clip=True), _result(samples, clip=False)
    assert set(charts(with_clip)) == set(_charted(with_clip))
    assert {"fid", "kid", "clip", "memorization"} <= set(charts(with_clip))
    assert set(charts(without)) == set(_charted(without)) and "clip" not in charts(without)


def test_render_files_writes_md_html_and_plots(tmp_path: Path, samples, monkeypatch) -> None:
    result = _result(samples)
    result_path = tmp_path / "consolidated_results.json"
    write_json(result, result_path)
    manifest_paths = []
    for index, manifest in enumerate(samples.values()):
        path = tmp_path / f"manifest_{index}.json"
        write_json(manifest, path)
        manifest_paths.append(str(path))
    out = tmp_path / "out"
    out.mkdir()
    render_files(
        str(result_path),
        manifest_paths,
        _config(),
        str(out / "report.md"),
        str(out / "report.html"),
        str(out / "plots"),
        str(out / "grids"),
    )
    names = _charted(result)
    assert {"fid", "kid", "clip", "memorization"} <= set(names)
    for name in names:
        png = (out / "plots" / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert sorted(p.name for p in (out / "plots").iterdir()) == sorted(f"{n}.png" for n in names)
    markdown = (out / "report.md").read_text(encoding="utf-8")
    for name in names:
        assert f"]({'plots'}/{name}.png)" in markdown
    html = (out / "report.html").read_text(encoding="utf-8")
    parser = _parse(html)
    sources = [v for _, k, v in parser.attrs if k == "src"]
    assert len(sources) == len(names) + 6 and all(s.startswith("data:") for s in sources)
    only_own_script(html)
    # no prompt and position is shared by every checkpoint: no contact sheet to link, every image
    # listed; the sheets are the contact_sheets job's (tests/test_grid.py)
    assert not (out / "grids").exists() and "grids/" not in markdown
    assert markdown.count("| step-100 | step-100/img_00") == 3
    # the same as render() on the in-memory objects
    expected_md, expected_html = render(
        result,
        _config(),
        samples,
        charts(result),
        {n: f"plots/{n}.png" for n in names},
    )
    assert markdown == expected_md and html == expected_html
    # the next report embeds the previews this one kept: the same page, no sample decoded (the
    # real images of the close pairs are in no manifest the report reads: shrunk again)
    assert any((out / "previews").rglob("*.jpg"))
    refuse_decoding(
        monkeypatch, only={img["path"] for m in samples.values() for img in m["images"]}
    )
    render_files(
        str(result_path),
        manifest_paths,
        _config(),
        str(out / "again.md"),
        str(out / "again.html"),
        str(out / "plots"),
        str(out / "grids"),
    )
    assert (out / "again.html").read_text(encoding="utf-8") == html


class _GridTable(HTMLParser):
    """The grid table of report.html: its column heads, its rows' cells and row-head texts."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0  # > 0 inside the grid table
        self.columns: list[str] = []
        self.cells: list[int] = []  # per body row
        self.heads: list[str] = []  # text of each row head
        self.in_body = self.in_head = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and (self.depth or attrs.get("id") == "grid-table"):
            self.depth += 1
        if not self.depth:
            return
        if tag == "th" and "ckpt" in (attrs.get("class") or "").split():
            self.columns.append(attrs["data-checkpoint"])
        self.in_body = self.in_body or tag == "tbody"
        if tag == "tr" and self.in_body:
            self.cells.append(0)
            self.heads.append("")
        if tag == "td" and self.in_body:
            self.cells[-1] += 1
        if tag == "th" and attrs.get("scope") == "row":
            self.in_head = True

    def handle_endtag(self, tag):
        if tag == "table" and self.depth:
            self.depth -= 1
        if tag == "th":
            self.in_head = False

    def handle_data(self, data):
        if self.depth and self.in_head:
            self.heads[-1] += data


def test_grid_has_a_column_per_checkpoint_and_a_row_per_row_shown(samples, tmp_path) -> None:
    """Three checkpoints with the same three prompts: a 3 x 3 grid, the hostile prompt a row
    head's text; report.md embeds the contact sheet beside it; the per-prompt view has every
    prompt with its t interval."""
    config = _config()
    rows = []
    for name, step, fid, clip in (("step-100", 100, 40.0, 25.0), ("step-200", 200, 30.0, 27.0)):
        files = [image["file"] for image in samples[name]["images"]]
        rows.append(_row(name, step, fid, clip, files, ["a cat", SCRIPT, "x"]))
    files = [image["file"] for image in samples[BEST]["images"]]
    rows.append(_row(BEST, None, 10.0, 31.0, files, ["a cat", SCRIPT, "x"]))
    result = consolidate(rows, config, provenance(config, config_hash(config), EXTRA))
    sheets = write_contact_sheets(build_grid(result, samples, 16, 0), tmp_path / "grids")
    assert sheets == ["grids/grid-001.jpg"]
    markdown, html = render(result, config, samples, {}, {}, sheets)
    table = _GridTable()
    table.feed(html)
    assert table.columns == ["step-100", "step-200", BEST]  # step order, unstepped last
    assert table.cells == [3, 3, 3]
    assert [h.split("image")[0] for h in table.heads] == ["a cat", SCRIPT, "x"]
    captions = [v for t, k, v in _parse(html).attrs if k == "data-caption"]
    assert f"step-100 · {SCRIPT} · image 0 · " in "\n".join(captions)
    assert "![Grid, sheet 1 of 1](grids/grid-001.jpg)" in markdown
    assert "image(s) have no image with the same prompt" not in markdown  # all matched
    # per prompt, each checkpoint's CLIP mean (one image each: no interval)
    assert f"| {_md_escape(SCRIPT)} | 25.00 | 27.00 | 31.00 |" in markdown


def test_a_report_of_20_checkpoints_x_64_images_is_within_the_size_budget(tmp_path) -> None:
    """The stated budget (render.SIZE_BUDGET, 15 MB) for 20 checkpoints x 64 samples of 512
    pixels (8 prompts x 8 seeds) with the default config: grid_rows x 20 cells with their
    enlarged images, 12 sample thumbnails per checkpoint, the charts. Its first paint is
    measured by bench/report_paint.py, not here."""
    config = _config(report={})
    assert config["report"]["grid_rows"] == 16 and config["report"]["thumbnails"] == 12
    # photo crops (JPEG thumbnails of photos weigh what real samples' do), 5 sets of 64
    photos = [p for k in range(5) for p in photo_crops(tmp_path / str(k), 64, 512, k, 4 * k)]
    prompts = [f"prompt {p} of the run" for p in range(8) for _ in range(8)]
    seeds = [s for _ in range(8) for s in range(8)]
    rows, manifests = [], {}
    for c in range(20):
        name = f"step-{(c + 1) * 100:04d}"
        chosen = photos[(c % 5) * 64 : (c % 5 + 1) * 64]
        files = [f"{name}/{p.name}" for p in chosen]
        manifests[name] = {
            "name": name,
            "images": [{"file": f, "path": str(p)} for f, p in zip(files, chosen, strict=True)],
        }
        row = _row(name, (c + 1) * 100, 50.0 - c, 25.0 + c / 10, files, prompts)
        for image, seed in zip(row["per_image"], seeds, strict=True):
            image["seed"] = seed
        rows.append(row)
    result = consolidate(rows, config, provenance(config, config_hash(config), EXTRA))
    pngs = charts(result)
    _, html = render(result, config, manifests, pngs, {})
    size = len(html.encode("utf-8"))
    table = _GridTable()
    table.feed(html)
    assert len(table.columns) == 20 and table.cells == [20] * 16
    fulls = [v for _, k, v in _parse(html).attrs if k == "data-full"]
    assert len(fulls) == 20 * 16  # a section's samples enlarge their thumbnail
    assert size < SIZE_BUDGET, f"report.html is {size / 1e6:.1f} MB"
    print(f"report of 20 checkpoints x 64 images: {size / 1e6:.2f} MB")
