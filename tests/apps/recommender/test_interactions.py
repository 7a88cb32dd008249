"""Generic items/interactions loading, text building and bad-input handling."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from apps.recommender.config import DataConfig
from apps.recommender.errors import DataError
from apps.recommender.interactions import build_text, clean_interactions, clean_items, load_dataset
from tests.apps.recommender.conftest import write

ITEMS = "item_id,title,description\nA,Alpha,About a.\nB,Beta,About b.\nC,Gamma,About c.\n"


def _load(tmp_path: Path, interactions: str, items: str = ITEMS, **config) -> object:
    return load_dataset(
        write(tmp_path / "items.csv", items),
        write(tmp_path / "inter.csv", interactions),
        DataConfig(**config),
    )


def test_generic_csv_builds_typed_dataset(generic_dir):
    ds = load_dataset(generic_dir / "items.csv", generic_dir / "interactions.csv")
    assert ds.item_ids.tolist() == ["A", "B", "C"]
    assert ds.texts[0] == "Alpha. First book, about bees. Genres: Nature, Science. Tags: bees, honey"
    assert ds.texts[2] == "Gamma. Genres: Cooking. Tags: soup"
    assert ds.items.loc[0, "tags"] == ["bees", "honey"]
    assert ds.items["timestamp"].tolist()[:2] == [1577836800, 1622548800]
    assert ds.items["timestamp"].isna().tolist() == [False, False, True]
    inter = ds.interactions
    # Sorted by time; epoch numbers and ISO strings (naive = UTC) both parse.
    assert inter["timestamp"].tolist() == [1672567200, 1672653600, 1672700000, 1672704000]
    assert inter["item_id"].tolist() == ["A", "B", "C", "A"]
    assert inter["event"].tolist() == ["view", "purchase", "view", "view"]
    assert inter["user_idx"].tolist() == [0, 0, 1, 1] and ds.user_ids.tolist() == ["u1", "u2"]
    assert inter["item_idx"].tolist() == [0, 1, 2, 0]
    assert inter["rating"].isna().all()
    assert [h.tolist() for h in ds.histories()] == [[0, 1], [2, 0]]
    assert ds.user_item_matrix().toarray().tolist() == [[1, 1, 0], [1, 0, 1]]
    assert ds.item_counts().tolist() == [2, 1, 1]
    assert ds.item_first_seen().tolist() == [1672567200.0, 1672653600.0, 1672700000.0]
    assert ds.summary()["interactions"] == 4


def test_parquet_with_list_tags_and_datetimes(tmp_path):
    items = pd.DataFrame({"item_id": [10, 11], "title": ["X", "Y"], "tags": [["a", "b"], []]})
    inter = pd.DataFrame(
        {"user_id": [1, 1], "item_id": [10, 11], "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02"])}
    )
    items.to_parquet(tmp_path / "items.parquet")
    inter.to_parquet(tmp_path / "inter.parquet")
    ds = load_dataset(tmp_path / "items.parquet", tmp_path / "inter.parquet")
    assert ds.item_ids.tolist() == ["10", "11"]
    assert ds.texts == ["X. Tags: a, b", "Y"]
    assert ds.interactions["timestamp"].tolist() == [1704067200, 1704153600]
    assert ds.user_ids.tolist() == ["1"]


def test_build_text_order_lists_and_punctuation():
    config = DataConfig(text_fields=("title", "description", "tags"), list_fields=("tags",))
    text = build_text(
        {"title": "Why?", "description": " A  tale.\n", "tags": "x|y|x", "other": "ignored"}, config
    )
    assert text == "Why? A tale. Tags: x, y"
    assert build_text({"title": "", "tags": []}, config) == ""


@pytest.mark.parametrize(
    ("items", "interactions", "field", "row", "words"),
    [
        ("title\nA\n", "user_id,item_id,timestamp\n", None, None, "missing required column 'item_id'"),
        ("item_id,colour\nA,red\n", "user_id,item_id,timestamp\n", None, None, "no text column"),
        ("item_id,title\nA,x\n,y\n", "user_id,item_id,timestamp\n", "item_id", 2, "empty item_id"),
        ("item_id,title\nA,x\nB,y\nA,z\n", "user_id,item_id,timestamp\n", "item_id", 3, "repeats row 1"),
        (
            "item_id,title,description\nA,x,\nB,,\n",
            "user_id,item_id,timestamp\n",
            "text",
            2,
            "empty item text",
        ),
        (
            "item_id,title,timestamp\nA,x,yesterday\n",
            "user_id,item_id,timestamp\n",
            "timestamp",
            1,
            "bad timestamp",
        ),
        (ITEMS, "user_id,item_id\nu,A\n", None, None, "missing required column(s) ['timestamp']"),
        (ITEMS, "user_id,item_id,timestamp\nu,A,1\n,B,2\n", "user_id", 2, "empty user_id"),
        (ITEMS, "user_id,item_id,timestamp\nu,A,1\nu,Z,2\n", "item_id", 2, "'Z' is not in the items file"),
        (ITEMS, "user_id,item_id,timestamp\nu,A,1\nu,B,soon\n", "timestamp", 2, "bad timestamp 'soon'"),
        (ITEMS, "user_id,item_id,timestamp\nu,A,1\nu,B,\n", "timestamp", 2, "empty timestamp"),
        (
            ITEMS,
            "user_id,item_id,timestamp,rating\nu,A,1,good\n",
            "rating",
            1,
            "rating 'good' is not a number",
        ),
    ],
)
def test_bad_input_names_file_row_and_field(tmp_path, items, interactions, field, row, words):
    with pytest.raises(DataError) as info:
        _load(tmp_path, interactions, items)
    err = info.value
    assert words in str(err)
    assert err.field == field and err.row == row
    assert err.path.endswith(("items.csv", "inter.csv"))


def test_missing_and_unsupported_files_are_data_errors(tmp_path):
    inter = write(tmp_path / "inter.csv", "user_id,item_id,timestamp\nu,A,1\n")
    with pytest.raises(DataError, match="nope.csv: no such file"):
        load_dataset(tmp_path / "nope.csv", inter)
    with pytest.raises(DataError, match="unsupported file type '.xlsx'"):
        load_dataset(write(tmp_path / "x.xlsx", "a"), inter)
    latin = write(tmp_path / "latin.csv", "item_id,title\n1,Café\n", encoding="latin-1")
    with pytest.raises(DataError, match=r"latin.csv: line 2: not valid UTF-8"):
        load_dataset(latin, inter)


def test_skip_mode_drops_bad_rows_and_warns(tmp_path, caplog):
    inter = "user_id,item_id,timestamp\nu,A,1\nu,Z,2\nu,B,soon\n,C,3\nv,C,4\n"
    with caplog.at_level(logging.WARNING):
        ds = _load(tmp_path, inter, on_error="skip", unknown_items="skip")
    assert ds.interactions["item_id"].tolist() == ["A", "C"]
    assert ds.user_ids.tolist() == ["u", "v"]
    assert "Skipped bad interaction rows" in caplog.text and "row 2" in caplog.text


def test_unknown_items_can_be_skipped_while_other_errors_raise(tmp_path):
    ds = _load(tmp_path, "user_id,item_id,timestamp\nu,A,1\nu,Z,2\n", unknown_items="skip")
    assert ds.interactions["item_id"].tolist() == ["A"]
    with pytest.raises(DataError, match="bad timestamp"):
        _load(tmp_path, "user_id,item_id,timestamp\nu,A,x\nu,Z,2\n", unknown_items="skip")


def test_duplicates_repeats_and_rating_filter(tmp_path, caplog):
    inter = (
        "user_id,item_id,timestamp,rating\n"
        "u,A,1,4\n"
        "u,A,1,4\n"  # exact duplicate: dropped with a warning
        "u,B,2,2\n"
        "u,A,3,5\n"  # repeat of (u, A): dropped under repeats=first
        "v,C,4,\n"  # no rating: kept by the rating filter
    )
    with caplog.at_level(logging.WARNING):
        ds = _load(tmp_path, inter)
    assert "exact duplicate" in caplog.text
    assert list(zip(ds.interactions["item_id"], ds.interactions["timestamp"], strict=True)) == [
        ("A", 1),
        ("B", 2),
        ("C", 4),
    ]
    assert _load(tmp_path, inter, repeats="all").interactions["item_id"].tolist() == ["A", "B", "A", "C"]
    kept = _load(tmp_path, inter, min_rating=3.0).interactions
    assert kept["item_id"].tolist() == ["A", "C"] and np.isnan(kept["rating"].iloc[1])


def test_ties_keep_source_order(tmp_path):
    ds = _load(tmp_path, "user_id,item_id,timestamp\nu,C,5\nu,A,5\nu,B,1\n")
    assert ds.histories()[0].tolist() == [1, 2, 0]


def test_with_interactions_keeps_maps(generic_dir):
    ds = load_dataset(generic_dir / "items.csv", generic_dir / "interactions.csv")
    sub = ds.with_interactions(ds.interactions.iloc[:1], name="sub")
    assert sub.n_items == 3 and sub.n_users == 2 and sub.user_index == {"u1": 0, "u2": 1}
    assert sub.user_item_matrix().shape == (2, 3)
    assert [len(h) for h in sub.histories()] == [1, 0]
    assert np.isnan(sub.item_first_seen()[1:]).all()


def test_clean_functions_accept_frames_directly():
    items = clean_items(pd.DataFrame({"item_id": ["a"], "title": ["T"]}))
    inter = clean_interactions(pd.DataFrame({"user_id": ["u"], "item_id": ["a"], "timestamp": [5]}), {"a": 0})
    assert items["text"].tolist() == ["T"] and inter["item_idx"].tolist() == [0]
