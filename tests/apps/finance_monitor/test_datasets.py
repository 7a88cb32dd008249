"""Labelled-data loaders: every format, the real files' quirks, and clear errors."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from apps.finance_monitor.datasets import deduplicate, detect_format, load_labelled
from apps.finance_monitor.errors import DataError
from apps.finance_monitor.labels import SENTIMENT_LABELS, TFN_TOPIC_CLASSES, parse_label_map, read_label_names
from tests.conftest import require_shared_data


def test_csv_with_crlf_and_newlines_inside_quotes(tmp_path):
    path = tmp_path / "tweets.csv"
    path.write_bytes(
        b'text,label\r\n"$ACME beats\nestimates, raises outlook",positive\r\n'
        b'Plain headline,neutral\r\n"Three\nline\ntext",negative\r\n'
    )
    data = load_labelled(path)
    assert data.texts == ["$ACME beats\nestimates, raises outlook", "Plain headline", "Three\nline\ntext"]
    assert data.labels == ["positive", "neutral", "negative"]
    assert data.label_names == ["negative", "neutral", "positive"]
    assert data.rows == [1, 2, 3]
    assert data.format == "csv"


def test_csv_error_names_row_line_and_field_after_multiline_record(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b'text,label\r\n"two\nlines",neutral\r\n   ,positive\r\n')
    with pytest.raises(DataError) as info:
        load_labelled(path)
    err = info.value
    assert (err.row, err.line, err.field) == (2, 4, "text")
    assert str(err).startswith(f"{path}: row 2 (line 4), field 'text': empty text")


def test_numeric_labels_with_label_map(tmp_path):
    path = tmp_path / "num.csv"
    path.write_text("text,label\nup,1\ndown,0\nflat,2\nflat again,2.0\n", encoding="utf-8")
    data = load_labelled(path, label_map="0=negative,1=positive,2=neutral")
    assert data.labels == ["positive", "negative", "neutral", "neutral"]
    assert data.label_names == ["negative", "positive", "neutral"]
    assert data.label_ids() == [1, 0, 2, 2]
    assert load_labelled(path, label_map="tfns").labels == data.labels


def test_numeric_labels_without_map_are_refused(tmp_path):
    path = tmp_path / "num.csv"
    path.write_text("text,label\nup,1\ndown,0\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"labels are numeric \(0, 1\); pass a label map"):
        load_labelled(path)


def test_unknown_label_names_file_row_and_field(tmp_path):
    path = tmp_path / "num.csv"
    path.write_text("text,label\nup,1\ndown,7\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"row 2 \(line 3\), field 'label': unknown label '7'"):
        load_labelled(path, label_map="0=negative,1=positive")
    path.write_text("text,label\nup,positive\ndown,bearish\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"row 2 \(line 3\), field 'label': unknown label 'bearish'"):
        load_labelled(path, labels=SENTIMENT_LABELS)


def test_labels_argument_forgives_case(tmp_path):
    path = tmp_path / "case.csv"
    path.write_text("text,label\nup,Positive\ndown,NEGATIVE\n", encoding="utf-8")
    data = load_labelled(path, labels=SENTIMENT_LABELS)
    assert data.labels == ["positive", "negative"]
    assert data.label_counts() == {"negative": 1, "neutral": 0, "positive": 1}


def test_missing_column_lists_what_was_found(tmp_path):
    path = tmp_path / "cols.csv"
    path.write_text("sentence,label\nup,positive\n", encoding="utf-8")
    with pytest.raises(
        DataError, match=r"field 'text': missing column\(s\) \['text'\]; found \['sentence', 'label'\]"
    ):
        load_labelled(path)
    assert load_labelled(path, text_column="sentence").texts == ["up"]


def test_wrong_field_count_and_truncated_quote(tmp_path):
    path = tmp_path / "fields.csv"
    path.write_text("text,label\nok,positive\na,b,c\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"row 2 \(line 3\): 3 fields but the header names 2"):
        load_labelled(path)
    path.write_text('text,label\nok,positive\n"never closed,neutral\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"line 3: malformed CSV"):
        load_labelled(path)


def test_latin1_csv_gives_clear_decode_error(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\nok,positive\nSeppälä sells,neutral\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"line 3: not valid UTF-8: byte\(s\) .* name its encoding"):
        load_labelled(path)
    assert load_labelled(path, encoding="latin-1").texts[1] == "Seppälä sells"


def test_empty_file_and_header_only(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="empty file"):
        load_labelled(path)
    path.write_text("text,label\n", encoding="utf-8")
    with pytest.raises(DataError, match="no labelled rows"):
        load_labelled(path)
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_labelled(tmp_path / "nope.csv")


def test_utf8_bom_is_ignored(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("text,label\nup,positive\n".encode("utf-8-sig"))
    assert load_labelled(path).texts == ["up"]


def test_phrasebank_latin1_autodetected(tmp_path):
    path = tmp_path / "Sentences_toy.txt"
    lines = [
        "Sepp+ñl+ñ Oyj said sales rose by 5 % .@positive",
        "Net loss widened @ EUR 2 mn .@negative",
        "x@neutral",
    ]
    path.write_bytes(
        ("\n".join(lines)).encode("latin-1") + "\nÅland bank opens branch .@neutral".encode("latin-1")
    )
    assert detect_format(path) == "phrasebank"
    data = load_labelled(path)
    assert data.format == "phrasebank"
    assert data.texts[1] == "Net loss widened @ EUR 2 mn ."  # split on the last @
    assert data.texts[3] == "Åland bank opens branch ."  # Latin-1 byte 0xC5 kept as Å
    assert data.labels == ["positive", "negative", "neutral", "neutral"]
    assert data.label_names == list(SENTIMENT_LABELS)


def test_phrasebank_utf8_crlf_copy_reads_the_same(tmp_path):
    latin = tmp_path / "a.txt"
    utf8 = tmp_path / "b.txt"
    latin.write_bytes("Åland up .@positive\nflat .@neutral\n".encode("latin-1"))
    utf8.write_bytes("Åland up .@positive\r\nflat .@neutral\r\n".encode())
    assert load_labelled(latin).texts == load_labelled(utf8).texts == ["Åland up .", "flat ."]


def test_phrasebank_bad_label_and_missing_separator(tmp_path):
    path = tmp_path / "fpb.txt"
    path.write_text("good .@positive\nbad .@bullish\n", encoding="latin-1")
    with pytest.raises(DataError, match=r"row 2 \(line 2\), field 'label': unknown label 'bullish'"):
        load_labelled(path, format="phrasebank")
    path.write_text("good .@positive\n\nno separator here\n", encoding="latin-1")
    with pytest.raises(DataError, match=r"row 2 \(line 3\): no '@'"):
        load_labelled(path, format="phrasebank")


def test_parquet_with_int_labels_and_classes_file(tmp_path):
    path = tmp_path / "topics.parquet"
    table = pa.table(
        {"text": ["Fed holds rates", "Oil jumps 3%", "Acme to buy Widgets"], "label": [1, 6, 13]}
    )
    pq.write_table(table, path)
    classes = tmp_path / "classes.txt"
    classes.write_text("\n".join(TFN_TOPIC_CLASSES), encoding="utf-8")  # no trailing newline, like upstream
    data = load_labelled(path, label_map=classes)
    assert data.labels == ["Fed | Central Banks", "Energy | Oil", "M&A | Investments"]
    assert data.label_names == list(TFN_TOPIC_CLASSES)
    assert load_labelled(path, label_map="tfn-topic").labels == data.labels
    assert load_labelled(path, label_map=str(classes)).labels == data.labels


def test_parquet_null_text_and_missing_column(tmp_path):
    path = tmp_path / "nulls.parquet"
    pq.write_table(pa.table({"text": ["ok", None], "label": ["positive", "neutral"]}), path)
    with pytest.raises(DataError, match=r"row 2, field 'text': empty text"):
        load_labelled(path)
    pq.write_table(pa.table({"body": ["ok"], "label": ["positive"]}), path)
    with pytest.raises(DataError, match=r"missing column\(s\) \['text'\]"):
        load_labelled(path)


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 this is not really parquet")
    with pytest.raises(DataError, match="cannot read Parquet"):
        load_labelled(path)


def test_jsonl(tmp_path):
    path = tmp_path / "data.jsonl"
    rows = [{"text": "up", "label": "positive"}, {"text": "down", "label": "negative"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n{broken\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"row 3 \(line 4\): not valid JSON"):
        load_labelled(path)
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    assert load_labelled(path).to_records() == rows


def test_dedup_modes(tmp_path):
    path = tmp_path / "dups.csv"
    path.write_text(
        "text,label\nA  rises,positive\nA rises,positive\nB falls,negative\nB falls,neutral\nC,neutral\n",
        encoding="utf-8",
    )
    raw = load_labelled(path)
    exact = load_labelled(path, dedup="exact")
    assert exact.texts == ["A  rises", "B falls", "B falls", "C"]
    assert (exact.duplicates_removed, exact.conflicts_removed) == (1, 0)
    text = deduplicate(raw, "text")
    assert text.texts == ["A  rises", "C"]
    assert text.rows == [1, 5]
    assert (text.duplicates_removed, text.conflicts_removed) == (1, 2)


def test_label_confidence_from_jsonl_and_parquet_follows_its_rows_through_dedup(tmp_path):
    records = [
        {"text": "A rises", "label": "positive", "agree": 0.6},
        {"text": "B falls", "label": "negative", "agree": 1},
        {"text": "A  rises", "label": "positive", "agree": 0.9},  # a repeat (whitespace): dropped
        {"text": "C", "label": "neutral", "agree": "0.75"},
    ]
    jsonl = tmp_path / "votes.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records))
    parquet = tmp_path / "votes.parquet"
    pq.write_table(pa.Table.from_pylist([{**r, "agree": float(r["agree"])} for r in records]), parquet)
    for path in (jsonl, parquet):
        data = load_labelled(path, confidence_column="agree", dedup="exact", labels=list(SENTIMENT_LABELS))
        assert (data.texts, data.confidence, data.rows) == (
            ["A rises", "B falls", "C"],
            [0.6, 1.0, 0.75],
            [1, 2, 4],
        )
        assert data.subset([2]).confidence == [0.75]
    assert load_labelled(jsonl).confidence is None
    jsonl.write_text(jsonl.read_text().replace('"agree": 1}', '"agree": 0.1}'))
    with pytest.raises(
        DataError, match=r"votes.jsonl: row 2 .*field 'agree': confidence 0.1 is not a number from 1/3"
    ):
        load_labelled(jsonl, confidence_column="agree", labels=list(SENTIMENT_LABELS))
    phrasebank = tmp_path / "pb.txt"
    phrasebank.write_text("Profit rose@positive\nSales fell@negative\n")
    with pytest.raises(DataError, match="has no columns"):
        load_labelled(phrasebank, confidence_column="agree")


def test_subset_keeps_texts_labels_and_source_rows_together(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("text,label\nA rises,positive\nB falls,negative\nC,neutral\n", encoding="utf-8")
    data = load_labelled(path)
    part = data.subset([2, 0])
    assert (part.texts, part.labels, part.rows) == (["C", "A rises"], ["neutral", "positive"], [3, 1])
    assert part.label_names == data.label_names and part.source == data.source and len(data) == 3
    assert data.subset([]).texts == []


def test_label_map_parsing():
    assert parse_label_map("0=negative, 1 = positive") == {"0": "negative", "1": "positive"}
    assert parse_label_map({0: "neg"}) == {"0": "neg"}
    assert parse_label_map(None) is None
    with pytest.raises(ValueError, match="is not 'id=name'"):
        parse_label_map("0:negative")
    with pytest.raises(ValueError, match="appears twice"):
        parse_label_map("0=a,0=b")


def test_classes_file_errors(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("A\n\nB\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2: blank line"):
        read_label_names(path)
    path.write_text("A\nB\nA\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 3: class name 'A' appears twice"):
        read_label_names(path)


# --- real files (skipped when ../shared/data is absent); counts from its README -------------------


@pytest.mark.parametrize(
    ("name", "rows", "counts"),
    [
        ("Sentences_50Agree.txt", 4846, (604, 2879, 1363)),
        ("Sentences_AllAgree.txt", 2264, (303, 1391, 570)),  # no trailing newline
    ],
)
def test_real_phrasebank(name, rows, counts):
    path = require_shared_data("finance", "financial_phrasebank", name)
    data = load_labelled(path)
    assert data.format == "phrasebank"
    assert len(data) == rows
    assert tuple(data.label_counts().values()) == counts
    assert not any("\ufffd" in t or t.endswith("\r") for t in data.texts)


def test_real_phrasebank_50agree_dedup():
    path = require_shared_data("finance", "financial_phrasebank", "Sentences_50Agree.txt")
    # README: 8 duplicated sentences, 2 of them with conflicting labels (6 exact repeats).
    assert len(load_labelled(path, dedup="exact")) == 4846 - 6
    text = load_labelled(path, dedup="text")
    assert len(text) == 4846 - 10
    assert (text.duplicates_removed, text.conflicts_removed) == (6, 4)


def test_real_tfns_train():
    path = require_shared_data("finance", "twitter_financial_news_sentiment", "sent_train.csv")
    data = load_labelled(path, label_map="tfns")
    assert len(data) == 9543
    assert data.label_counts() == {"negative": 1442, "positive": 1923, "neutral": 6178}
    assert sum("\n" in t for t in data.texts) == 184
    assert not any("\r" in t for t in data.texts)


def test_real_tfn_topic_with_classes_file():
    folder = require_shared_data("finance", "twitter_financial_news_topic")
    names = read_label_names(folder / "classes.txt")
    assert tuple(names) == TFN_TOPIC_CLASSES
    val = load_labelled(folder / "validation.parquet", label_map=folder / "classes.txt")
    assert len(val) == 4117
    counts = val.label_counts()
    assert (counts["Analyst Update"], counts["IPO"], counts["Stock Movement"]) == (73, 14, 197)
