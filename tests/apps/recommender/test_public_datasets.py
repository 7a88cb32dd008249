"""MovieLens (ml-latest, ml-100k) and MIND layouts, folder auto-detection, and the real files."""

from __future__ import annotations

import pytest

from apps.recommender.config import DataConfig
from apps.recommender.errors import DataError
from apps.recommender.public_datasets import detect_layout, load_folder, load_mind, load_movielens
from tests.apps.recommender.conftest import ml100k_item, write
from tests.conftest import require_shared_data


def test_ml_latest_layout(ml_latest_dir):
    assert detect_layout(ml_latest_dir) == "ml-latest"
    ds = load_folder(ml_latest_dir)
    assert ds.item_ids.tolist() == ["1", "2", "3", "4"]
    assert ds.items["title"].tolist()[1] == "Misérables, Les (1995)"  # quoted comma, UTF-8
    assert ds.texts[0] == "Toy Town (1995). Genres: Adventure, Animation, Children. Tags: toys, friendship"
    assert ds.texts[2] == "Silent Reel"  # '(no genres listed)' is no genre
    assert ds.interactions["rating"].tolist() == [3.5, 4.0, 5.0, 2.0, 4.5]
    assert ds.interactions["event"].unique().tolist() == ["rating"]
    assert ds.user_ids.tolist() == ["1", "2"]
    assert ds.item_counts().tolist() == [2, 2, 1, 0]  # movie 4 is in the catalogue without ratings
    assert "Tags" not in load_movielens(ml_latest_dir, use_tags=False).texts[0]


def test_cli_reads_tags_unless_told_not_to(ml_latest_dir):
    from apps.recommender.cli.training import load_data
    from apps.recommender.config import RecommenderConfig

    config = RecommenderConfig()
    assert load_data(ml_latest_dir, None, None, config).texts[0].endswith("Tags: toys, friendship")
    untagged = load_data(ml_latest_dir, None, None, config, use_tags=False)
    assert untagged.texts[0] == "Toy Town (1995). Genres: Adventure, Animation, Children"
    assert load_folder(ml_latest_dir, use_tags=False).texts == untagged.texts


def test_ml_latest_needs_ratings(ml_latest_dir):
    (ml_latest_dir / "ratings.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing \['ratings.csv'\]"):
        load_movielens(ml_latest_dir)


def test_ml_latest_bad_rating_row(ml_latest_dir):
    write(
        ml_latest_dir / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4,964982703\n1,99,4,964982704\n"
    )
    with pytest.raises(
        DataError, match=r"ratings.csv: row 2, field 'item_id': item '99' is not in the items file"
    ):
        load_movielens(ml_latest_dir)
    ds = load_movielens(ml_latest_dir, DataConfig(unknown_items="skip"))
    assert len(ds.interactions) == 1


def test_ml_100k_layout(ml100k_dir):
    assert detect_layout(ml100k_dir) == "ml-100k"
    ds = load_folder(ml100k_dir)
    assert ds.items["title"].tolist() == ["Toy Town (1995)", "Café Noir (1994)", "unknown"]  # Latin-1
    assert ds.texts[0] == "Toy Town (1995). Genres: Animation, Children's, Comedy"
    assert ds.texts[1] == "Café Noir (1994). Genres: Film-Noir, Thriller"
    assert ds.items["timestamp"].tolist()[:2] == [788918400, 763689600]
    assert ds.items["timestamp"].isna().tolist() == [False, False, True]
    assert ds.interactions["timestamp"].tolist() == [878887116, 878887117, 881250949, 891717742]
    assert ds.interactions["user_id"].tolist() == ["196", "22", "196", "186"]
    assert ds.interactions["rating"].tolist() == [1.0, 1.0, 3.0, 3.0]


def test_ml_100k_without_genre_file_and_bad_rows(ml100k_dir):
    (ml100k_dir / "u.genre").unlink()
    assert load_movielens(ml100k_dir).texts[0].endswith("Genres: Animation, Children's, Comedy")
    write(ml100k_dir / "u.data", "196\t1\t3\t881250949\n196\t2\t3\n")
    with pytest.raises(DataError, match=r"u.data: row 2 \(line 2\), field 'timestamp': empty timestamp"):
        load_movielens(ml100k_dir)
    write(ml100k_dir / "u.data", "196\t1\t3\t881250949\n196\t2\t3\t881250950\t9\n")
    with pytest.raises(DataError, match=r"u.data: row 2 \(line 2\): 5 fields but the file.s layout has 4"):
        load_movielens(ml100k_dir)
    write(ml100k_dir / "u.data", "196\t1\t3\t881250949\n196\t2\t3\tlater\n")
    with pytest.raises(DataError, match=r"u.data: row 2 \(line 2\), field 'timestamp'"):
        load_movielens(ml100k_dir)
    write(ml100k_dir / "u.item", ml100k_item(1, "X", "31-Foo-1995", set()), encoding="latin-1")
    with pytest.raises(DataError, match="u.item: row 1 .*bad release date '31-Foo-1995'"):
        load_movielens(ml100k_dir)


def test_mind_layout(tmp_path):
    folder = tmp_path / "mind"
    write(
        folder / "news.tsv",
        "N1\tsports\tgolf\tA golf story\tAbout golf.\turl\t[]\t[]\n"
        "N2\tnews\tworld\tA world story\t\turl\t[]\t[]\n"
        "N3\tfood\trecipes\tSoup tonight\tWarm soup.\turl\t[]\t[]\n",
    )
    write(
        folder / "behaviors.tsv",
        "2\tU1\t11/11/2019 9:05:58 AM\tN1 N9\tN2-1 N3-0 N8-1\n"
        "1\tU1\t11/11/2019 8:00:00 AM\tN1 N9\tN3-1\n"
        "3\tU2\t11/12/2019 1:00:00 PM\t\tN1-0 N2-1\n",
    )
    assert detect_layout(folder) == "mind"
    ds = load_mind(folder)
    assert ds.texts[0] == "A golf story. About golf. Tags: sports, golf"
    inter = ds.interactions
    # History precedes the first impression (8:00); unknown news N8/N9 are skipped.
    assert inter["item_id"].tolist() == ["N1", "N3", "N2", "N2"]
    assert inter["event"].tolist() == ["history", "click", "click", "click"]
    assert inter["user_id"].tolist() == ["U1", "U1", "U1", "U2"]
    assert inter["timestamp"].iloc[0] < inter["timestamp"].iloc[1] == 1573459200


def test_generic_layout_and_unknown_folder(generic_dir, tmp_path):
    assert detect_layout(generic_dir) == "generic"
    assert load_folder(generic_dir).n_items == 3
    write(tmp_path / "empty" / "notes.txt", "hello")
    with pytest.raises(FileNotFoundError, match="no known data layout.*notes.txt"):
        load_folder(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_folder(tmp_path / "missing")


def test_real_ml_latest_small():
    folder = require_shared_data("recsys", "ml-latest-small")
    require_shared_data("recsys", "ml-latest-small", "ratings.csv")
    ds = load_movielens(folder)
    summary = ds.summary()
    assert (summary["items"], summary["users"], summary["interactions"]) == (9742, 610, 100836)
    assert summary["items_with_interactions"] == 9724
    assert ds.interactions["timestamp"].is_monotonic_increasing
    toy_story = ds.items.iloc[ds.item_index["1"]]
    assert toy_story["text"].startswith(
        "Toy Story (1995). Genres: Adventure, Animation, Children, Comedy, Fantasy"
    )
    assert (ds.items["text"] != "").all()


def test_real_mind_subset():
    folder = require_shared_data("recsys", "mind-small-subset")
    ds = load_mind(folder)
    assert ds.n_items == 2000
    assert len(ds.interactions) > 1000 and set(ds.interactions["event"]) == {"history", "click"}
    assert ds.interactions["item_id"].isin(set(ds.item_ids)).all()
