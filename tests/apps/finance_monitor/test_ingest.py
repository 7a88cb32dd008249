"""Ingestion: files once each, no duplicates on re-runs, syndicated copies grouped, failures recorded."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from apps.finance_monitor.errors import DataError
from apps.finance_monitor.ingest import Ingestor
from apps.finance_monitor.monitor import Monitor
from apps.finance_monitor.sources import NewsItem
from apps.finance_monitor.storage import Item, ProcessedFile, Score
from core.storage import session_scope
from tests.apps.finance_monitor.model_fixtures import ConstantScorer
from tests.apps.finance_monitor.unfit_batch import CLEAN_TITLE, RECORDS, STORED, records, write_batch

HEADER = "id,timestamp,source,title\n"
FIRST = (
    HEADER
    + "w1,2026-03-02T09:00:00Z,Wirewatch,Northwind cuts 2026 outlook as refinery stays shut\n"
    + "w2,2026-03-02T09:30:00Z,Wirewatch,Qortex wins data centre contract in Ohio\n"
)
SECOND = (
    HEADER
    + "q1,2026-03-02T11:00:00Z,Quay,UPDATE 1-Northwind cuts 2026 outlook as refinery stays shut\n"
    + "q2,2026-03-02T11:05:00Z,Quay,Fed officials see no rush to move rates\n"
)


def _groups(engine) -> dict[str, str]:
    with session_scope(engine) as session:
        return dict(session.execute(sa.select(Item.id, Item.group_id)).all())


def test_files_once_copies_skipped_near_duplicates_grouped(db, tmp_path):
    first = tmp_path / "a.csv"
    first.write_text(FIRST, encoding="utf-8")
    ingestor = Ingestor(db)
    result = ingestor.ingest_file(first)
    assert (result.status, result.items, result.new_ids) == ("ingested", 2, ["w1", "w2"])
    assert ingestor.ingest_file(first).status == "unchanged"
    copy = tmp_path / "copy-of-a.csv"
    copy.write_bytes(first.read_bytes())
    assert ingestor.ingest_file(copy).status == "copy"

    second = tmp_path / "b.csv"
    second.write_text(SECOND, encoding="utf-8")
    fresh = Ingestor(db)  # a new process: the index is rebuilt from the database
    result = fresh.ingest_file(second)
    assert (result.new_ids, result.near_duplicates) == (["q1", "q2"], 1)
    assert _groups(db) == {"w1": "w1", "w2": "w2", "q1": "w1", "q2": "q2"}

    # An edited file is read again; only its new item is stored.
    first.write_text(
        FIRST + "w3,2026-03-02T12:00:00Z,Wirewatch,Acme names new finance chief\n", encoding="utf-8"
    )
    result = fresh.ingest_file(first)
    assert (result.status, result.items, result.new_ids) == ("ingested", 3, ["w3"])
    with session_scope(db) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Item)) == 5
        statuses = sorted(session.scalars(sa.select(ProcessedFile.status)))
    assert statuses == ["copy", "done", "done", "done"]


def test_bad_file_is_recorded_and_retried_once_fixed(sqlite_db, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + "x1,not a date,Wirewatch,Acme up\n", encoding="utf-8")
    ingestor = Ingestor(sqlite_db)
    with pytest.raises(DataError, match=r"row 1 \(line 2\), field 'timestamp'"):
        ingestor.ingest_file(path)
    with session_scope(sqlite_db) as session:
        record = session.scalars(sa.select(ProcessedFile)).one()
        assert record.status == "failed" and "field 'timestamp'" in (record.error or "")
        assert session.scalar(sa.select(sa.func.count()).select_from(Item)) == 0
    assert ingestor.ingest_file(path).status == "unchanged"  # not retried while unchanged
    path.write_text(HEADER + "x1,2026-03-02T09:00:00-05:00,Wirewatch,Acme up\n", encoding="utf-8")
    assert ingestor.ingest_file(path).new_ids == ["x1"]


def test_scan_folder_picks_up_new_files_and_skips_fresh_ones(sqlite_db, tmp_path):
    folder = tmp_path / "inbox"
    folder.mkdir()
    now = [datetime(2026, 3, 2, 12, tzinfo=UTC).timestamp()]
    ingestor = Ingestor(sqlite_db, min_age_s=5, clock=lambda: now[0])

    def put(name: str, text: str, age_s: float) -> None:
        path = folder / name
        path.write_text(text, encoding="utf-8")
        os.utime(path, (now[0] - age_s, now[0] - age_s))

    put("a.csv", FIRST, age_s=60)
    (folder / "notes.txt").write_text("ignored", encoding="utf-8")
    assert [r.status for r in ingestor.scan_folder(folder)] == ["ingested"]
    put("b.csv", SECOND, age_s=1)  # still being written
    put("broken.jsonl", '{"title": "x"', age_s=60)
    results = ingestor.scan_folder(folder)
    assert [(os.path.basename(r.path or ""), r.status) for r in results] == [
        ("a.csv", "unchanged"),
        ("broken.jsonl", "failed"),
    ]
    now[0] += 10
    results = {os.path.basename(r.path or ""): r for r in ingestor.scan_folder(folder)}
    assert results["b.csv"].new_ids == ["q1", "q2"] and results["b.csv"].near_duplicates == 1
    assert results["broken.jsonl"].status == "unchanged"
    with pytest.raises(FileNotFoundError, match="watched folder not found"):
        ingestor.scan_folder(tmp_path / "nope")


def test_ingest_items_directly(sqlite_db):
    t0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
    items = [
        NewsItem("a", t0, "Wirewatch", "Helio Motors recalls 40,000 sedans over brake fault"),
        NewsItem("b", t0 + timedelta(hours=3), "Quay", "Helio Motors recalls 40,000 sedans over brake fault"),
        NewsItem("c", t0 + timedelta(days=5), "Quay", "Helio Motors recalls 40,000 sedans over brake fault"),
    ]
    ingestor = Ingestor(sqlite_db, dedup_window=timedelta(hours=48))
    result = ingestor.ingest_items(items)
    assert (result.new_ids, result.near_duplicates) == (["a", "b", "c"], 1)
    assert _groups(sqlite_db) == {"a": "a", "b": "a", "c": "c"}  # c is outside the window
    assert ingestor.ingest_items(items).new_ids == []


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "rss"])
def test_a_bad_record_is_reported_and_the_good_ones_stored_and_scored_once(db, tmp_path, fmt):
    folder = tmp_path / "inbox"
    folder.mkdir()
    path = write_batch(folder / f"batch.{fmt}", fmt).resolve()
    rows = {r["id"]: row for row, r in enumerate(records(fmt), 1)}  # the RSS batch has no n1
    good = STORED & set(rows)
    monitor = Monitor(db, ConstantScorer(), [], ingestor=Ingestor(db, min_age_s=0))

    result = monitor.cycle(folder)
    assert (result.new_items, result.scored) == (len(good), len(good))
    [error] = result.errors  # one line: file, row and field of the item left out
    assert error.startswith(f"{path}: row {rows['u1']}") and "field 'url': url of 3018 characters" in error
    with session_scope(db) as session:
        stored = {i.id: i for i in session.scalars(sa.select(Item))}
        scored = set(session.scalars(sa.select(Score.item_id)))
        record = session.scalars(sa.select(ProcessedFile)).one()
    assert set(stored) == scored == good
    assert len(stored["s1"].source) == Item.__table__.c.source.type.length
    if "n1" in stored:
        assert stored["n1"].title == CLEAN_TITLE
    assert (record.status, record.items, record.error) == ("done", len(good), error)

    again = monitor.cycle(folder)  # unchanged: neither read again nor reported again
    assert (again.new_items, again.scored, again.errors) == (0, 0, [])
    fixed = [{**r, "url": "https://news.test/u1"} if r["id"] == "u1" else r for r in records(fmt)]
    write_batch(path, fmt, fixed)
    again = monitor.cycle(folder)  # the fixed file: only the item left out before is new
    assert (again.new_items, again.scored, again.errors) == (1, 1, [])
    with session_scope(db) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Item)) == len(good) + 1
        assert session.scalar(sa.select(sa.func.count()).select_from(Score)) == len(good) + 1


def test_a_file_with_no_good_record_fails_with_the_first_error(sqlite_db, tmp_path):
    path = write_batch(tmp_path / "bad.jsonl", "jsonl", [r for r in RECORDS if r["id"] == "u1"] * 2)
    with pytest.raises(DataError, match=r"row 1 \(line 1\), field 'url'"):
        Ingestor(sqlite_db).ingest_file(path)
    with session_scope(sqlite_db) as session:
        assert session.scalars(sa.select(ProcessedFile.status)).one() == "failed"


def _deep_folder(root, length: int):
    """A folder under ``root`` whose resolved path is ``length`` characters long."""
    folder = root.resolve()
    while len(str(folder)) < length - 201:
        folder = folder / ("d" * 200)
    folder = folder / ("e" * (length - len(str(folder)) - 1))
    folder.mkdir(parents=True)
    assert len(str(folder)) == length
    return folder


def test_a_deep_folder_fits_the_tables_and_a_path_too_long_to_record_is_refused(db, tmp_path):
    """The origin ``path:row`` of a file 1,019 characters deep is cut to its column, keeping the file
    name and row; a file whose path finance_files cannot record fails with one line, nothing read."""
    from apps.finance_monitor.sources import MAX_ORIGIN_LENGTH
    from apps.finance_monitor.storage import MAX_FILE_PATH_LENGTH

    deep = _deep_folder(tmp_path / "a", MAX_FILE_PATH_LENGTH - 11)
    fits = write_batch(deep / "batch.csv", "csv", [r for r in RECORDS if r["id"] in ("g1", "g2")])
    assert len(str(fits.resolve())) == MAX_FILE_PATH_LENGTH - 1
    result = Ingestor(db, min_age_s=0).scan_folder(deep)
    assert [(r.status, sorted(r.new_ids)) for r in result] == [("ingested", ["g1", "g2"])]
    with session_scope(db) as session:
        origins = dict(session.execute(sa.select(Item.id, Item.origin)).all())
        assert session.scalars(sa.select(ProcessedFile.status)).one() == "done"
    assert all(len(o) == MAX_ORIGIN_LENGTH and o.startswith("…") for o in origins.values())
    assert origins["g1"].endswith("/batch.csv:1") and origins["g2"].endswith("/batch.csv:2")

    deeper = _deep_folder(tmp_path / "b", MAX_FILE_PATH_LENGTH + 100)
    write_batch(deeper / "batch.csv", "csv", [r for r in RECORDS if r["id"] == "s1"])
    [failed] = Ingestor(db, min_age_s=0).scan_folder(deeper)
    assert failed.status == "failed" and "\n" not in failed.error
    assert f"path of {MAX_FILE_PATH_LENGTH + 110} characters; at most {MAX_FILE_PATH_LENGTH}" in failed.error
    with session_scope(db) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Item)) == 2
        assert session.scalar(sa.select(sa.func.count()).select_from(ProcessedFile)) == 1
