"""The one table reader: formats, encodings, positions and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from core.errors import InputError
from core.io.tables import cell_text, read_frame, read_rows, read_text, table_format


class AppError(InputError):
    """An app's own error type."""


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_csv_rows_carry_row_and_start_line_across_multiline_cells(tmp_path: Path) -> None:
    path = _write(tmp_path / "faq.csv", 'question,answer\nq1,"two\nlines"\n\nq2,a2\n')
    rows = list(read_rows(path, columns=["question", "answer"]))
    assert [(r.row, r.line, r["question"]) for r in rows] == [(1, 2, "q1"), (2, 5, "q2")]
    assert rows[0]["answer"] == "two\nlines"
    assert rows[1].path == path


def test_row_base_zero_and_app_error_type(tmp_path: Path) -> None:
    path = _write(tmp_path / "faq.csv", "question,answer\nq1,a1\nq2,\n")
    rows = list(read_rows(path, columns=["answer"], row_base=0, error=AppError))
    assert [r.row for r in rows] == [0, 1]
    err = rows[1].error("empty answer", field="answer")
    assert isinstance(err, AppError)
    assert str(err) == f"{path}: row 1 (line 3), field 'answer': empty answer"


def test_bom_and_utf16_and_other_encodings(tmp_path: Path) -> None:
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbftext,label\ncaf\xc3\xa9,pos\n")
    assert [dict(r) for r in read_rows(bom, columns=["text"])] == [{"text": "café", "label": "pos"}]
    utf16 = _write(tmp_path / "u16.tsv", "text\tlabel\nüber\tneg\n", "utf-16")
    assert [r["text"] for r in read_rows(utf16)] == ["über"]
    latin = _write(tmp_path / "latin.csv", "text\ncaf\xe9\n", "latin-1")
    assert [r["text"] for r in read_rows(latin, encoding="latin-1")] == ["café"]
    with pytest.raises(
        InputError, match=r"latin\.csv: line 2: not valid UTF-8: byte\(s\) b'\\xe9\\n' at offset 8"
    ):
        list(read_rows(latin))


def test_missing_column_names_found_ones(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.csv", "text,lable\na,b\n")
    with pytest.raises(InputError) as info:
        list(read_rows(path, columns=["text", "label"]))
    assert info.value.field == "label"
    assert "missing column(s) ['label']; found ['text', 'lable']" in str(info.value)


def test_too_many_fields_names_row_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.csv", "a,b\n1,2\n3,4,5\n")
    with pytest.raises(InputError, match=r"x\.csv: row 2 \(line 3\): 3 fields but the header names 2"):
        list(read_rows(path))


def test_jsonl_and_json(tmp_path: Path) -> None:
    jsonl = _write(tmp_path / "x.jsonl", '{"text": "a", "n": 1}\n\n{"text": "b", "n": null}\n')
    rows = list(read_rows(jsonl, columns=["text"]))
    assert [(r.row, r.line, r.text("n")) for r in rows] == [(1, 1, "1"), (2, 3, "")]
    bad = _write(tmp_path / "bad.jsonl", '{"text": "a"}\n{"text": \n')
    with pytest.raises(InputError, match=r"bad\.jsonl: row 2 \(line 2\): not valid JSON"):
        list(read_rows(bad))
    missing = _write(tmp_path / "m.jsonl", '{"text": "a"}\n{"other": 1}\n')
    with pytest.raises(InputError, match=r"row 2 \(line 2\), field 'text': missing key"):
        list(read_rows(missing, columns=["text"]))
    array = _write(tmp_path / "x.json", json.dumps([{"text": "a"}, {"text": "b"}]))
    assert [(r.row, r.line) for r in read_rows(array, columns=["text"])] == [(1, None), (2, None)]
    wrapped = _write(tmp_path / "w.json", json.dumps({"items": [{"text": "a"}]}))
    assert [r["text"] for r in read_rows(wrapped)] == ["a"]
    scalar = _write(tmp_path / "s.json", json.dumps([{"text": "a"}, 3]))
    with pytest.raises(InputError, match=r"s\.json: row 2: expected a JSON object, got int"):
        list(read_rows(scalar))


def test_parquet_and_frame(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    pd.DataFrame({"user": [1, 2], "item": ["a", None]}).to_parquet(path)
    rows = list(read_rows(path, columns=["user", "item"]))
    assert [(r.row, r.line, r.text("user"), r.text("item")) for r in rows] == [
        (1, None, "1", "a"),
        (2, None, "2", ""),
    ]
    with pytest.raises(InputError, match="missing column"):
        list(read_rows(path, columns=["rating"]))
    csv_path = _write(tmp_path / "y.csv", 'a,b\n1,"x\ny"\n2,\n')
    frame = read_frame(csv_path, columns=["a"])
    assert frame.to_dict(orient="list") == {"a": ["1", "2"], "b": ["x\ny", ""]}
    assert list(frame.index) == [1, 2]
    assert frame.attrs["lines"] == [2, 4]


def test_unknown_type_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"unsupported file type '\.xlsx'"):
        list(read_rows(_write(tmp_path / "x.xlsx", "")))
    with pytest.raises(InputError, match="no such file"):
        list(read_rows(tmp_path / "nope.csv"))
    with pytest.raises(InputError, match="is a folder"):
        list(read_rows(tmp_path))
    assert table_format("a.txt", "jsonl") == "jsonl"
    with pytest.raises(InputError, match="empty file"):
        list(read_rows(_write(tmp_path / "e.csv", "")))


def test_txt_with_delimiter_and_cell_text(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.txt", "text|label\nup|pos\n")
    assert [dict(r) for r in read_rows(path, delimiter="|")] == [{"text": "up", "label": "pos"}]
    assert cell_text(float("nan")) == "" and cell_text(None) == "" and cell_text(3) == "3"


def test_lower_header_blank_rows_and_folder_as_app_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "faq.csv", "Question,ANSWER\nq1,a1\n,\n , \nq2,a2\n")
    rows = list(read_rows(path, columns=["question", "answer"], lower_header=True, row_base=0))
    assert [(r.row, r.line, r["question"], r["answer"]) for r in rows] == [
        (0, 2, "q1", "a1"),
        (1, 5, "q2", "a2"),
    ]
    with pytest.raises(InputError, match="missing column"):
        list(read_rows(path, columns=["question"]))
    with pytest.raises(AppError, match="is a folder"):
        list(read_rows(tmp_path, error=AppError))


def test_json_records_keys(tmp_path: Path) -> None:
    keyed = _write(tmp_path / "k.json", json.dumps({"version": 2, "faqs": [{"q": "a"}, {"q": "b"}]}))
    assert [r["q"] for r in read_rows(keyed, records_keys=("entries", "faqs"))] == ["a", "b"]
    other = _write(tmp_path / "o.json", json.dumps({"items": [{"q": "a"}]}))
    with pytest.raises(
        AppError, match=r"o\.json: expected a JSON list of objects, or an object with a 'entries'"
    ):
        list(read_rows(other, records_keys=("entries",), error=AppError))
    assert [r["q"] for r in read_rows(other)] == ["a"]


def test_read_text(tmp_path: Path) -> None:
    assert read_text(_write(tmp_path / "a.md", "\ufeff# Title\n")) == "# Title\n"
    with pytest.raises(AppError, match=r"b\.md: line 2: not valid UTF-8"):
        read_text(_write(tmp_path / "b.md", "ok\ncaf\xe9\n", "latin-1"), error=AppError)
    with pytest.raises(AppError, match="is a folder"):
        read_text(tmp_path, error=AppError)


def test_headerless_unquoted_files_take_names(tmp_path: Path) -> None:
    # ml-100k's u.item: no header line, "|" cells, Latin-1, a lone quote that is just a character.
    path = tmp_path / "u.item"
    path.write_bytes('1|Café "Bar|\n\n2|Zoë\n'.encode("latin-1"))
    rows = list(
        read_rows(
            path, format="csv", delimiter="|", names=["id", "title", "url"], quoting=False, encoding="latin-1"
        )
    )
    assert [dict(r) for r in rows] == [
        {"id": "1", "title": 'Café "Bar', "url": ""},
        {"id": "2", "title": "Zoë", "url": ""},
    ]
    assert [(r.row, r.line) for r in rows] == [(1, 1), (2, 3)]
    frame = read_frame(
        path, format="csv", delimiter="|", names=["id", "title", "url"], quoting=False, encoding="latin-1"
    )
    assert frame["title"].tolist() == ['Café "Bar', "Zoë"] and frame.attrs["lines"] == [1, 3]
    data = _write(tmp_path / "u.data", "196\t1\t3\t881250949\n196\t2\t3\t881250950\t9\n")
    with pytest.raises(InputError, match=r"u\.data: row 2 \(line 2\): 5 fields but the file's layout has 4$"):
        list(read_rows(data, format="tsv", names=["user", "item", "rating", "time"], quoting=False))
    empty = _write(tmp_path / "empty.tsv", "")
    assert read_frame(empty, names=["a", "b"]).columns.tolist() == ["a", "b"]
