"""Reading prompt files (CSV, JSON, JSONL) and pairing every sample with its own prompt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.inputs.prompts import pair_prompts, read_prompt_file


def test_csv_with_bom_quoted_commas_and_embedded_newlines(tmp_path: Path) -> None:
    path = tmp_path / "prompts.csv"
    text = (
        "file,prompt\r\n"
        'step-1/a.png,"a cat, a dog, and a bird"\r\n'
        'step-1/b.png,"first line\nsecond line"\r\n'
        'step-1/c.png,"she said ""hi"""\r\n'
        "step-1/d.png,plain\r\n"
    )
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert read_prompt_file(path) == {
        "step-1/a.png": "a cat, a dog, and a bird",
        "step-1/b.png": "first line\nsecond line",
        "step-1/c.png": 'she said "hi"',
        "step-1/d.png": "plain",
    }


def test_csv_extra_columns_and_column_order(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("seed,prompt,file\n1,a prompt,step-1/a.png\n", encoding="utf-8")
    assert read_prompt_file(path) == {"step-1/a.png": "a prompt"}


def test_csv_unicode(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("file,prompt\nstep-1/é.png,un château ✓\n", encoding="utf-8")
    assert read_prompt_file(path) == {"step-1/é.png": "un château ✓"}


def test_json_object(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"step-1/a.png": "one", "step-2/b.png": "two"}), encoding="utf-8")
    assert read_prompt_file(path) == {"step-1/a.png": "one", "step-2/b.png": "two"}


def test_json_list(tmp_path: Path) -> None:
    path = tmp_path / "p.JSON"  # suffix is case-insensitive
    items = [{"file": "step-1/a.png", "prompt": "one"}, {"file": "step-1/b.png", "prompt": "2"}]
    path.write_text(json.dumps(items), encoding="utf-8")
    assert read_prompt_file(path) == {"step-1/a.png": "one", "step-1/b.png": "2"}


def test_jsonl_with_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"file": "step-1/a.png", "prompt": "one, with comma"}\n'
        "\n"
        '{"file": "step-1/b.png", "prompt": "two\\nlines", "seed": 3}\n',
        encoding="utf-8",
    )
    assert read_prompt_file(path) == {
        "step-1/a.png": "one, with comma",
        "step-1/b.png": "two\nlines",
    }


def test_paths_are_normalised(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(
        "file,prompt\n"
        "./step-1/a.png,one\n"
        "step-1\\sub\\b.png,two\n"
        ".\\step-1\\c.png,three\n"
        " step-1//d.png ,four\n",
        encoding="utf-8",
    )
    assert read_prompt_file(path) == {
        "step-1/a.png": "one",
        "step-1/sub/b.png": "two",
        "step-1/c.png": "three",
        "step-1/d.png": "four",
    }


def test_identical_duplicates_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("file,prompt\nstep-1/a.png,x\n./step-1/a.png,x\n", encoding="utf-8")
    assert read_prompt_file(path) == {"step-1/a.png": "x"}


def test_conflicting_duplicates_raise(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("file,prompt\nstep-1/a.png,x\n./step-1/a.png,y\n", encoding="utf-8")
    with pytest.raises(CkptEvalError, match="step-1/a.png"):
        read_prompt_file(path)


@pytest.mark.parametrize(
    "header", ["image,prompt\n", "file,caption\n", "file\n", "", "filename;prompt\n"]
)
def test_csv_missing_columns_raise(tmp_path: Path, header: str) -> None:
    path = tmp_path / "p.csv"
    path.write_text(header + "step-1/a.png,x\n" if header else "", encoding="utf-8")
    with pytest.raises(CkptEvalError) as info:
        read_prompt_file(path)
    assert str(path) in str(info.value)
    assert "file,prompt" in str(info.value)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("p.json", '{"step-1/a.png": "x",'),
        ("p.json", "not json"),
        ("p.jsonl", '{"file": "a.png", "prompt": "x"}\n{"file": \n'),
        ("p.csv", b"file,prompt\nstep-1/a.png,\xff\xfe bad utf8\n"),
    ],
)
def test_unparsable_files_raise(tmp_path: Path, name: str, content: str | bytes) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(CkptEvalError) as info:
        read_prompt_file(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("p.json", "just a string"),
        ("p.json", 42),
        ("p.json", [{"file": "a.png"}]),
        ("p.json", [["a.png", "x"]]),
        ("p.json", [{"path": "a.png", "prompt": "x"}]),
    ],
)
def test_json_wrong_shape_raises(tmp_path: Path, name: str, data: Any) -> None:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CkptEvalError):
        read_prompt_file(path)


def test_jsonl_entry_without_keys_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"file": "a.png", "prompt": "x"}\n{"file": "b.png"}\n', encoding="utf-8")
    with pytest.raises(CkptEvalError, match="line 2"):
        read_prompt_file(path)


@pytest.mark.parametrize("name", ["p.txt", "p.tsv", "prompts"])
def test_unknown_suffix_raises(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("file,prompt\na.png,x\n", encoding="utf-8")
    with pytest.raises(CkptEvalError, match="Unknown prompt file type"):
        read_prompt_file(path)


def test_missing_prompt_file_raises(tmp_path: Path) -> None:
    with pytest.raises(CkptEvalError) as info:
        read_prompt_file(tmp_path / "nope.csv")
    assert str(tmp_path / "nope.csv") in str(info.value)


def manifest(name: str, files: list[str], skipped: list[str] = ()) -> dict[str, Any]:
    return {
        "name": name,
        "images": [{"file": f"{name}/{f}"} for f in files],
        "skipped": [
            {"path": f"/data/samples/{name}/{s}", "file": f"{name}/{s}", "reason": "bad"}
            for s in skipped
        ],
    }


def test_pair_all_found() -> None:
    prompts = {"step-1/a.png": "pa", "step-1/b.png": "pb", "step-2/a.png": "other"}
    out = pair_prompts(manifest("step-1", ["a.png", "b.png"]), prompts, "p.csv", None)
    assert out == {
        "name": "step-1",
        "pairs": [
            {"file": "step-1/a.png", "prompt": "pa", "fallback": False, "seed": None},
            {"file": "step-1/b.png", "prompt": "pb", "fallback": False, "seed": None},
        ],
        "fallback_count": 0,
        "prompts_without_image": [],
    }


def test_missing_prompt_raises_naming_image_and_fallback_option() -> None:
    prompts = {"step-1/a.png": "pa"}
    with pytest.raises(CkptEvalError) as info:
        pair_prompts(manifest("step-1", ["a.png", "b.png"]), prompts, "prompts.csv", None)
    err = info.value
    assert "step-1/b.png" in err.what
    assert "step-1/a.png" not in err.what
    assert err.path == "prompts.csv"
    assert err.fix is not None and "fallback_prompt" in err.fix


def test_many_missing_prompts_are_summarised() -> None:
    files = [f"{i}.png" for i in range(8)]
    with pytest.raises(CkptEvalError) as info:
        pair_prompts(manifest("step-1", files), {}, "p.csv", None)
    assert "8 image(s)" in info.value.what
    assert "and 3 more" in info.value.what


def test_fallback_is_marked_and_counted() -> None:
    prompts = {"step-1/a.png": "pa"}
    out = pair_prompts(manifest("step-1", ["a.png", "b.png", "c.png"]), prompts, "p.csv", "generic")
    assert out["pairs"] == [
        {"file": "step-1/a.png", "prompt": "pa", "fallback": False, "seed": None},
        {"file": "step-1/b.png", "prompt": "generic", "fallback": True, "seed": None},
        {"file": "step-1/c.png", "prompt": "generic", "fallback": True, "seed": None},
    ]
    assert out["fallback_count"] == 2


def test_empty_string_fallback_is_still_a_fallback() -> None:
    out = pair_prompts(manifest("step-1", ["a.png"]), {}, "p.csv", "")
    assert out["pairs"] == [{"file": "step-1/a.png", "prompt": "", "fallback": True, "seed": None}]
    assert out["fallback_count"] == 1


def test_prompts_without_image_lists_only_this_checkpoint() -> None:
    prompts = {
        "step-1/a.png": "pa",
        "step-1/typo.png": "orphan",
        "step-1/notes.txt": "not an image",
        "step-10/x.png": "other checkpoint with a shared prefix",
        "step-2/a.png": "other checkpoint",
    }
    out = pair_prompts(manifest("step-1", ["a.png"]), prompts, "p.csv", None)
    assert out["prompts_without_image"] == ["step-1/notes.txt", "step-1/typo.png"]


def test_prompt_of_a_skipped_image_is_not_an_orphan() -> None:
    prompts = {"step-1/a.png": "pa", "step-1/broken.png": "pb"}
    m = manifest("step-1", ["a.png"], skipped=["broken.png"])
    out = pair_prompts(m, prompts, "p.csv", None)
    assert out["prompts_without_image"] == []


def test_read_then_pair_with_normalised_paths(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("file,prompt\n./step-1/a.png,pa\nstep-1\\sub\\b.png,pb\n", encoding="utf-8")
    out = pair_prompts(
        manifest("step-1", ["a.png", "sub/b.png"]), read_prompt_file(path), path, None
    )
    assert [p["prompt"] for p in out["pairs"]] == ["pa", "pb"]
    assert out["fallback_count"] == 0


# --- encodings and delimiters of prompt files from spreadsheets and editors ------------------

ROWS = [("step-1/a.png", "a red, shiny shoe"), ("step-1/b.png", "un château ✓; at night")]


@pytest.mark.parametrize(
    ("encoding", "mark"),
    [
        ("utf-8", None),
        ("utf-8", b"\xef\xbb\xbf"),
        ("utf-16", None),  # Python writes the machine's byte order with its mark
        ("utf-16-le", b"\xff\xfe"),
        ("utf-16-be", b"\xfe\xff"),
        ("utf-32", None),
    ],
)
@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_csv_in_utf8_utf16_or_utf32_with_a_mark_and_any_delimiter(
    tmp_path: Path, encoding: str, mark: bytes | None, delimiter: str
) -> None:
    """Excel's "CSV UTF-8" has a BOM; its "Unicode text" is UTF-16 with tabs; European locales
    separate by semicolons."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(["file", "prompt"])
    writer.writerows(ROWS)
    path = tmp_path / "p.csv"
    path.write_bytes((mark or b"") + buffer.getvalue().encode(encoding))
    assert read_prompt_file(path) == dict(ROWS)


def test_json_in_utf16_with_a_mark(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(dict(ROWS), ensure_ascii=False), encoding="utf-16")
    assert read_prompt_file(path) == dict(ROWS)


def test_utf16_without_a_mark_is_refused_and_saving_as_utf8_fixes_it(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    text = "file,prompt\nstep-1/a.png,a shoe\n"
    path.write_bytes(text.encode("utf-16-le"))
    with pytest.raises(CkptEvalError) as info:
        read_prompt_file(path)
    assert info.value.path == str(path) and "UTF-16 without a byte-order mark" in info.value.what
    assert "save it as UTF-8" in info.value.fix
    path.write_text(text, encoding="utf-8")  # the fix
    assert read_prompt_file(path) == {"step-1/a.png": "a shoe"}


def test_latin1_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes("file,prompt\nstep-1/a.png,un château\n".encode("latin-1"))
    with pytest.raises(CkptEvalError) as info:
        read_prompt_file(path)
    assert "not utf-8 text" in info.value.what and "save it as UTF-8" in info.value.fix


def test_a_header_in_no_known_delimiter_says_which_ones_work(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("file:prompt\nstep-1/a.png:x\n", encoding="utf-8")
    with pytest.raises(CkptEvalError) as info:
        read_prompt_file(path)
    assert "'file:prompt'" in info.value.what and "semicolons or tabs" in info.value.fix


# --- one file, two prompts ---------------------------------------------------------------------


RED = '"file": "step-1/a.png", "prompt": "a red shoe"'
BLUE = '"file": "step-1/a.png", "prompt": "a blue boot"'


@pytest.mark.parametrize(
    ("name", "content", "places"),
    [
        (
            "p.csv",
            "file,prompt\nstep-1/a.png,a red shoe\nstep-1/b.png,x\n./step-1/a.png,a blue boot\n",
            ("line 2", "line 4"),
        ),
        (
            "p.csv",
            "file;prompt\nstep-1/a.png;a red shoe\nstep-1\\a.png;a blue boot\n",
            ("line 2", "line 3"),
        ),
        ("p.jsonl", f"{{{RED}}}\n{{{BLUE}}}\n", ("line 1", "line 2")),
        ("p.json", f"[{{{RED}}}, {{{BLUE}}}]", ("item 0", "item 1")),
        # json.load would keep the last of the two keys without a word
        ("p.json", '{"step-1/a.png": "a red shoe", "step-1/a.png": "a blue boot"}', ()),
    ],
)
def test_one_file_with_two_prompts_is_refused_naming_both(
    tmp_path: Path, name: str, content: str, places: tuple[str, ...]
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CkptEvalError) as info:
        read_prompt_file(path)
    what = info.value.what
    assert info.value.path == str(path)
    assert "step-1/a.png" in what and "'a red shoe'" in what and "'a blue boot'" in what
    for place in places:
        assert place in what
