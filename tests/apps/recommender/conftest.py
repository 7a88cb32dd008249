"""Small data sets in the real layouts, written to tmp for each test."""

from __future__ import annotations

from pathlib import Path

import pytest

SAMPLE_DIR = Path(__file__).resolve().parents[3] / "apps" / "recommender" / "sample_data"


def write(path: Path, text: str, encoding: str = "utf-8", newline: str = "\n") -> Path:
    """Write ``text`` with the given line ending and encoding."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", newline).encode(encoding))
    return path


@pytest.fixture
def ml_latest_dir(tmp_path: Path) -> Path:
    """ml-latest-small layout: CRLF, quoted titles, pipe genres, '(no genres listed)', tags.csv."""
    folder = tmp_path / "ml-latest-small"
    write(
        folder / "movies.csv",
        "movieId,title,genres\n"
        "1,Toy Town (1995),Adventure|Animation|Children\n"
        '2,"Misérables, Les (1995)",Drama|War\n'
        "3,Silent Reel,(no genres listed)\n"
        "4,Never Rated (2001),Comedy\n",
        newline="\r\n",
    )
    write(
        folder / "ratings.csv",
        "userId,movieId,rating,timestamp\n"
        "1,1,4.0,964982703\n"
        "1,2,3.5,964982224\n"
        "1,3,5.0,964983815\n"
        "2,2,2.0,1445714835\n"
        "2,1,4.5,1445714900\n",
        newline="\r\n",
    )
    write(
        folder / "tags.csv",
        "userId,movieId,tag,timestamp\n1,1,toys,1445714994\n2,1,Toys,1445715000\n2,1,friendship,1445715001\n",
        newline="\r\n",
    )
    write(folder / "links.csv", "movieId,imdbId,tmdbId\n1,0114709,862\n", newline="\r\n")
    return folder


ML100K_GENRE_NAMES = [
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
]
ML100K_GENRES = "".join(f"{name}|{i}\n" for i, name in enumerate(ML100K_GENRE_NAMES)) + "\n"


def ml100k_item(item_id: int, title: str, date: str, genres: set[int]) -> str:
    """One u.item line (19 genre flags)."""
    flags = "|".join("1" if g in genres else "0" for g in range(19))
    return f"{item_id}|{title}|{date}||http://example.invalid/{item_id}|{flags}\n"


@pytest.fixture
def ml100k_dir(tmp_path: Path) -> Path:
    """ml-100k layout: Latin-1 u.item with pipe fields, tab-separated u.data, u.genre."""
    folder = tmp_path / "ml-100k"
    items = (
        ml100k_item(1, "Toy Town (1995)", "01-Jan-1995", {3, 4, 5})
        + ml100k_item(2, "Café Noir (1994)", "15-Mar-1994", {10, 16})
        + ml100k_item(3, "unknown", "", {0})
    )
    write(folder / "u.item", items, encoding="latin-1")
    write(folder / "u.genre", ML100K_GENRES, encoding="latin-1")
    write(
        folder / "u.data",
        "196\t1\t3\t881250949\n186\t2\t3\t891717742\n196\t2\t1\t878887116\n22\t3\t1\t878887117\n",
    )
    return folder


@pytest.fixture
def generic_dir(tmp_path: Path) -> Path:
    """Generic items.csv + interactions.csv with ISO timestamps and events."""
    folder = tmp_path / "shop"
    write(
        folder / "items.csv",
        "item_id,title,description,genres,tags,timestamp\n"
        'A,Alpha,"First book, about bees.",Nature|Science,bees|honey,2020-01-01\n'
        "B,Beta,Second book.,Fiction,,2021-06-01T12:00:00Z\n"
        "C,Gamma,,Cooking,soup,\n",
    )
    write(
        folder / "interactions.csv",
        "user_id,item_id,event,timestamp\n"
        "u1,A,view,2023-01-01T10:00:00Z\n"
        "u1,B,purchase,2023-01-02T10:00:00Z\n"
        "u2,C,view,1672700000\n"
        "u2,A,view,2023-01-03\n",
    )
    return folder


@pytest.fixture(scope="session")
def sample_dataset():
    """The shipped sample data set (loaded once per session; treat as read-only)."""
    from apps.recommender.public_datasets import load_folder

    return load_folder(SAMPLE_DIR)


@pytest.fixture(scope="session")
def sample_minilm_vectors(sample_dataset):
    """MiniLM vectors of the sample items (the real encoder, embedded once per session)."""
    from apps.recommender.text_vectors import embed_items
    from core.embeddings import Embedder

    embedder = Embedder("minilm-l6")
    return embed_items(sample_dataset, embedder), embedder.model_id
