"""Public data set layouts: MovieLens (ml-latest-small, ml-100k), MIND, and folder auto-detection.

Files are read by :func:`core.io.tables.read_frame` (the headerless, unquoted ml-100k and MIND files
with ``names=`` and ``quoting=False``).

* **ml-latest / ml-latest-small**: ``movies.csv`` (``movieId,title,genres``), ``ratings.csv``
  (``userId,movieId,rating,timestamp``) and, when present, ``tags.csv`` whose user tags become
  the items' ``tags`` (so item text reads ``"Toy Story (1995). Genres: ... Tags: pixar, fun"``).
  UTF-8, CRLF, quoted titles. ``(no genres listed)`` counts as no genres. Tags are item metadata
  here and include tags applied after any split time; set ``use_tags=False`` for a strict
  cold-start reading.
* **ml-100k**: ``u.item`` (Latin-1, ``|``-separated: id, title, release date, video date, URL,
  19 genre flags), ``u.data`` (tab-separated ``user item rating timestamp``) and, when present,
  ``u.genre`` for the genre names. Release dates become the items' ``timestamp``.
* **MIND** (``news.tsv`` + ``behaviors.tsv``): clicked impressions become ``click`` events at
  the impression time. History clicks have no time in MIND; they become ``history`` events just
  before the user's first impression, one second apart, in the order given. Behaviour rows
  naming news missing from ``news.tsv`` are skipped (subsets of MIND are not self-contained).
* **generic**: ``items.{csv,tsv,parquet}`` + ``interactions.{csv,tsv,parquet}``
  (see :mod:`apps.recommender.interactions`).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from apps.recommender.config import DataConfig
from apps.recommender.errors import DataError
from apps.recommender.interactions import (
    Dataset,
    build_dataset,
    clean_interactions,
    clean_items,
    load_dataset,
)
from core.errors import check_path_kind
from core.io.tables import read_frame

logger = logging.getLogger(__name__)

Layout = Literal["ml-latest", "ml-100k", "mind", "generic"]
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
_GENERIC_SUFFIXES = (".csv", ".tsv", ".parquet")
MIND_NEWS_COLUMNS = (
    "news_id",
    "category",
    "subcategory",
    "title",
    "abstract",
    "url",
    "title_entities",
    "abstract_entities",
)
MIND_BEHAVIOR_COLUMNS = ("impression_id", "user_id", "time", "history", "impressions")


def _generic_pair(folder: Path) -> tuple[Path, Path] | None:
    items = next((folder / f"items{s}" for s in _GENERIC_SUFFIXES if (folder / f"items{s}").is_file()), None)
    inter = next(
        (folder / f"interactions{s}" for s in _GENERIC_SUFFIXES if (folder / f"interactions{s}").is_file()),
        None,
    )
    return (items, inter) if items and inter else None


def detect_layout(folder: str | Path) -> Layout:
    """Which layout a folder holds.

    Raises:
        FileNotFoundError: The folder is missing or matches no known layout (the message lists
            what was looked for and what is there).
    """
    folder = check_path_kind(folder, "folder")
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    present = {p.name for p in folder.iterdir()}
    if "movies.csv" in present:
        return "ml-latest"
    if "u.item" in present or "u.data" in present:
        return "ml-100k"
    if "news.tsv" in present:
        return "mind"
    if _generic_pair(folder):
        return "generic"
    raise FileNotFoundError(
        f"{folder}: no known data layout. Expected movies.csv + ratings.csv (MovieLens latest), "
        "u.item + u.data (ml-100k), news.tsv + behaviors.tsv (MIND) or items.csv + interactions.csv "
        f"(.tsv/.parquet also work); found {sorted(present)[:20]}"
    )


def load_folder(folder: str | Path, config: DataConfig | None = None, use_tags: bool = True) -> Dataset:
    """Load whatever layout :func:`detect_layout` finds in ``folder``.

    Args:
        folder: The data folder.
        config: Cleaning policy.
        use_tags: ml-latest only: add user tags from ``tags.csv`` to the item text (see
            :func:`load_movielens`).
    """
    folder = Path(folder)
    layout = detect_layout(folder)
    logger.info("Detected data layout", extra={"folder": str(folder), "layout": layout})
    if layout in ("ml-latest", "ml-100k"):
        return load_movielens(folder, config, use_tags)
    if layout == "mind":
        return load_mind(folder, config)
    pair = _generic_pair(folder)
    assert pair is not None  # detect_layout checked it
    return load_dataset(pair[0], pair[1], config)


def _require(folder: Path, *names: str) -> list[Path]:
    paths = [folder / n for n in names]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder}: missing {missing} (found {sorted(p.name for p in folder.iterdir())})"
        )
    return paths


def load_movielens(folder: str | Path, config: DataConfig | None = None, use_tags: bool = True) -> Dataset:
    """Load ml-latest(-small) or ml-100k from their folder, detected by file names.

    Args:
        folder: The unpacked MovieLens folder.
        config: Cleaning policy (text fields default to title, genres and tags).
        use_tags: ml-latest only: add user tags from ``tags.csv`` to the item text.

    Raises:
        FileNotFoundError: Not a MovieLens folder, or a required file is missing.
        DataError: A malformed file or row.
    """
    folder = Path(folder)
    layout = detect_layout(folder)
    if layout == "ml-latest":
        return _load_ml_latest(folder, config or DataConfig(), use_tags)
    if layout == "ml-100k":
        return _load_ml_100k(folder, config or DataConfig())
    raise FileNotFoundError(f"{folder}: not a MovieLens folder (looks like {layout})")


def _rename(frame: pd.DataFrame, path: Path, mapping: dict[str, str]) -> pd.DataFrame:
    missing = [c for c in mapping if c not in frame.columns]
    if missing:
        raise DataError(path, f"missing column(s) {missing}; found {list(frame.columns)}")
    return frame.rename(columns=mapping)


def _load_ml_latest(folder: Path, config: DataConfig, use_tags: bool) -> Dataset:
    movies_path, ratings_path = _require(folder, "movies.csv", "ratings.csv")
    movies = _rename(
        read_frame(movies_path, error=DataError),
        movies_path,
        {"movieId": "item_id", "title": "title", "genres": "genres"},
    )
    movies["genres"] = movies["genres"].replace("(no genres listed)", "")
    # The release year closes the title, "Toy Story (1995)": it becomes the item's timestamp
    # (January 1st), so item age is known even for movies nobody has rated yet.
    year = movies["title"].str.extract(r"\((\d{4})\)\s*$")[0]
    movies["timestamp"] = pd.to_datetime(year, format="%Y", errors="coerce", utc=True)
    tags_path = folder / "tags.csv"
    if use_tags and tags_path.is_file():
        tags = _rename(
            read_frame(tags_path, error=DataError), tags_path, {"movieId": "item_id", "tag": "tag"}
        )
        tags["tag"] = tags["tag"].str.strip()
        tags = tags.loc[tags["tag"] != ""]
        # First spelling of each tag per movie, in order of application; case-insensitive de-dup.
        tags = tags.assign(key=tags["tag"].str.lower()).drop_duplicates(["item_id", "key"])
        per_item = tags.groupby("item_id", sort=False)["tag"].agg(list)
        movies["tags"] = movies["item_id"].map(per_item).map(lambda v: v if isinstance(v, list) else [])
    items = clean_items(movies, config, movies_path)
    ratings = _rename(
        read_frame(ratings_path, error=DataError),
        ratings_path,
        {"userId": "user_id", "movieId": "item_id", "rating": "rating", "timestamp": "timestamp"},
    )
    ratings["event"] = "rating"
    index = {item_id: i for i, item_id in enumerate(items["item_id"])}
    interactions = clean_interactions(ratings, index, config, ratings_path)
    return _finish(items, interactions, f"movielens:{folder.name}")


def _read_headerless(path: Path, sep: str, names: list[str], encoding: str) -> pd.DataFrame:
    """A file without a header line and without quoting (ml-100k, MIND): columns ``names``."""
    return read_frame(
        path, format="csv", delimiter=sep, names=names, quoting=False, encoding=encoding, error=DataError
    )


def _load_ml_100k(folder: Path, config: DataConfig) -> Dataset:
    item_path, data_path = _require(folder, "u.item", "u.data")
    genres = list(ML100K_GENRES)
    genre_path = folder / "u.genre"
    if genre_path.is_file():
        table = _read_headerless(genre_path, "|", ["genre", "code"], "latin-1")
        genres = [name for name in table["genre"].tolist() if name.strip()]
    fields = ["movie id", "title", "release date", "video release date", "url"]
    raw = _read_headerless(item_path, "|", [*fields, *(f"genre {i}" for i in range(len(genres)))], "latin-1")
    flags = raw.iloc[:, 5:].to_numpy() == "1"
    names = np.array(genres, dtype=object)
    movies = pd.DataFrame(
        {
            "item_id": raw["movie id"],
            "title": raw["title"],
            "genres": [[g for g in names[row] if g != "unknown"] for row in flags],
        }
    )
    dates = raw["release date"]
    release = pd.to_datetime(dates.where(dates != ""), format="%d-%b-%Y", errors="coerce", utc=True)
    bad = release.isna() & (dates != "")
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            item_path,
            f"bad release date {dates.iloc[pos]!r}",
            row=pos + 1,
            line=pos + 1,
            field="release date",
        )
    movies["timestamp"] = release
    items = clean_items(movies, config, item_path, line_offset=0)
    data = _read_headerless(data_path, "\t", ["user_id", "item_id", "rating", "timestamp"], "latin-1")
    data["event"] = "rating"
    index = {item_id: i for i, item_id in enumerate(items["item_id"])}
    interactions = clean_interactions(data, index, config, data_path, line_offset=0)
    return _finish(items, interactions, f"movielens:{folder.name}")


def load_mind(folder: str | Path, config: DataConfig | None = None) -> Dataset:
    """Load MIND's ``news.tsv`` and ``behaviors.tsv`` (see the module docs for the event rules).

    Args:
        folder: Folder with both files.
        config: Cleaning policy; ``unknown_items`` is forced to ``skip``.
    """
    folder = Path(folder)
    news_path, behaviors_path = _require(folder, "news.tsv", "behaviors.tsv")
    config = dataclasses.replace(config or DataConfig(), unknown_items="skip")
    news = _read_headerless(news_path, "\t", list(MIND_NEWS_COLUMNS), "utf-8")
    items = pd.DataFrame(
        {
            "item_id": news["news_id"],
            "title": news["title"],
            "description": news["abstract"],
            "tags": news["category"] + "|" + news["subcategory"],
        }
    )
    items = clean_items(items, config, news_path, line_offset=0)
    behaviors = _read_headerless(behaviors_path, "\t", list(MIND_BEHAVIOR_COLUMNS), "utf-8")
    times = pd.to_datetime(behaviors["time"], format="%m/%d/%Y %I:%M:%S %p", errors="coerce", utc=True)
    if times.isna().any():
        pos = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise DataError(
            behaviors_path, f"bad time {behaviors['time'].iloc[pos]!r}", row=pos + 1, field="time"
        )
    behaviors["row"] = np.arange(1, len(behaviors) + 1)
    behaviors["seconds"] = (times - pd.Timestamp(0, tz="UTC")).dt.total_seconds().astype(np.int64)
    clicks = behaviors.assign(news=behaviors["impressions"].str.split()).explode("news")
    clicks = clicks.loc[clicks["news"].fillna("").str.endswith("-1")]
    rows = [
        pd.DataFrame(
            {
                "user_id": clicks["user_id"],
                "item_id": clicks["news"].str[:-2],
                "timestamp": clicks["seconds"],
                "event": "click",
                "row": clicks["row"],
            }
        )
    ]
    # History clicks precede the user's first impression: one second apart, in the given order.
    first = behaviors.sort_values("seconds", kind="stable").drop_duplicates("user_id")
    history = first.assign(item_id=first["history"].str.split()).explode("item_id").dropna(subset=["item_id"])
    position = history.groupby("user_id", sort=False).cumcount().to_numpy()
    length = history["user_id"].map(history["user_id"].value_counts()).to_numpy()
    rows.insert(
        0,
        pd.DataFrame(
            {
                "user_id": history["user_id"],
                "item_id": history["item_id"],
                "timestamp": history["seconds"].to_numpy() - length + position,
                "event": "history",
                "row": history["row"],
            }
        ),
    )
    frame = pd.concat(rows, ignore_index=True)
    index = {item_id: i for i, item_id in enumerate(items["item_id"])}
    interactions = clean_interactions(
        frame, index, config, behaviors_path, line_offset=0, row_numbers=frame["row"].to_numpy()
    )
    return _finish(items, interactions, f"mind:{folder.name}")


def _finish(items: pd.DataFrame, interactions: pd.DataFrame, name: str) -> Dataset:
    dataset = build_dataset(items, interactions, name)
    logger.info("Loaded dataset", extra={"summary": dataset.summary()})
    return dataset
