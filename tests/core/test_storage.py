"""Tests for core.storage and core.schema (migrations), on SQLite and (when it answers) PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core import schema, storage
from core.artifact_registry import list_artifacts, record_artifact
from core.paths import data_dir
from core.schema import current_revisions, head_revisions, migrate, new_revision, register_migrations
from core.storage import (
    TYPE_ANNOTATION_MAP,
    CoreBase,
    StorageError,
    create_engine,
    get_db_url,
    new_metadata,
    session_scope,
    upsert,
)


class DemoBase(DeclarativeBase):
    metadata = new_metadata()
    type_annotation_map = TYPE_ANNOTATION_MAP


class Event(DemoBase):
    __tablename__ = "demo_events"
    __table_args__ = (sa.UniqueConstraint("source", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(32))
    external_id: Mapped[str] = mapped_column(sa.String(64))
    title: Mapped[str] = mapped_column(sa.String(200))
    happened_at: Mapped[datetime]
    # Attribute and column names differ on purpose: upsert must map between them.
    extra: Mapped[dict[str, Any]] = mapped_column("payload", default=dict)
    updated_at: Mapped[datetime | None] = mapped_column(onupdate=storage.utcnow)


@pytest.fixture
def url(isolated_db_url: str) -> str:
    """``db_url``, isolated per test (see tests/conftest.py)."""
    return isolated_db_url


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    eng = create_engine(url)
    yield eng
    eng.dispose()


@pytest.fixture
def events(engine: Engine) -> Engine:
    DemoBase.metadata.create_all(engine)
    return engine


def _event(key: str, title: str, **extra: Any) -> dict[str, Any]:
    when = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    return {"source": "rss", "external_id": key, "title": title, "happened_at": when, "extra": extra}


def test_db_url_defaults_to_sqlite_in_data_dir(monkeypatch):
    assert get_db_url() == f"sqlite:///{data_dir() / 'aigc.db'}"
    monkeypatch.setenv("AIGC_DB_URL", "postgres://u:p@db.example:5432/aigc")
    assert get_db_url() == "postgresql://u:p@db.example:5432/aigc"


def test_sqlite_engine_creates_folder_and_sets_pragmas(tmp_path):
    path = tmp_path / "nested" / "deeper" / "aigc.db"
    eng = create_engine(f"sqlite:///{path}")
    migrate(eng)  # turns foreign keys off while migrating: they must be back on afterwards
    with eng.connect() as conn:
        pragma = {p: conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("journal_mode", "foreign_keys")}
        pragma["busy_timeout"] = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
    eng.dispose()
    assert path.is_file()
    assert pragma == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "busy_timeout": storage.SQLITE_BUSY_TIMEOUT_MS,
    }


def test_migrate_creates_tables_and_is_idempotent(url, engine):
    first = migrate(url)
    assert "core_0002" in first
    assert first == head_revisions() == current_revisions(url)
    assert migrate(engine) == first  # second run: nothing to do, nothing breaks
    tables = set(sa.inspect(engine).get_table_names())
    assert {"core_artifacts", "alembic_version"} <= tables
    if engine.dialect.name == "postgresql":
        # The version table follows search_path into the test's schema, not into public.
        admin = sa.create_engine(make_url(url).difference_update_query(["options"]))
        assert not sa.inspect(admin).has_table("alembic_version", schema="public")
        admin.dispose()


def test_migrations_match_models(engine):
    migrate(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_name": lambda n, t, _: t != "table" or n.startswith("core_"),
            },
        )
        assert compare_metadata(context, CoreBase.metadata) == []


def test_utc_round_trip(events):
    local = datetime(2024, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    with session_scope(events) as session:
        session.add(Event(source="rss", external_id="a", title="t", happened_at=local))
    with session_scope(events) as session:
        got = session.scalars(sa.select(Event.happened_at)).one()
        found = session.scalars(
            sa.select(Event.id).where(Event.happened_at > local - timedelta(minutes=1))
        ).all()
        raw = session.execute(sa.text("SELECT happened_at FROM demo_events")).scalar()
    assert got == local
    assert got.utcoffset() == timedelta(0)
    assert (got.hour, got.minute) == (6, 30)
    assert len(found) == 1
    if events.dialect.name == "sqlite":
        assert str(raw).startswith("2024-03-01 06:30:00")  # stored as UTC, not as local time
    else:
        assert raw == local


def test_naive_datetime_is_rejected(events):
    with pytest.raises(StatementError, match="naive datetime") as info, session_scope(events) as session:
        session.add(Event(source="rss", external_id="a", title="t", happened_at=datetime(2024, 3, 1)))
    assert isinstance(info.value.orig, ValueError)


def test_upsert_is_idempotent_by_natural_key(events):
    key = ["source", "external_id"]
    with session_scope(events) as session:
        upsert(session, Event, [_event("a", "first", v=1), _event("b", "other")], key)
    with session_scope(events) as session:
        # Same keys again, "a" changed twice in one batch: the last version wins.
        upsert(
            session, Event, [_event("a", "second", v=2), _event("a", "third", v=3), _event("b", "other")], key
        )
    with session_scope(events) as session:
        upsert(session, Event, [_event("a", "ignored")], key, update_columns=[])
        upsert(session, Event, [_event("c", "new")], key)
    with session_scope(events) as session:
        columns = (Event.external_id, Event.title, Event.extra)
        got = [tuple(r) for r in session.execute(sa.select(*columns).order_by(Event.external_id))]
        updated = dict(session.execute(sa.select(Event.external_id, Event.updated_at)).tuples().all())
    assert got == [("a", "third", {"v": 3}), ("b", "other", {}), ("c", "new", {})]
    assert updated["a"] is not None and updated["a"].utcoffset() == timedelta(0)  # onupdate ran on conflict
    assert updated["c"] is None  # a plain insert is not an update


def test_upsert_validates_input():
    eng = create_engine("sqlite://")
    DemoBase.metadata.create_all(eng)
    with session_scope(eng) as session:
        with pytest.raises(ValueError, match="not a primary key or unique constraint"):
            upsert(session, Event, [_event("a", "t")], ["title"])
        with pytest.raises(ValueError, match="not columns"):
            upsert(session, Event, [_event("a", "t")], ["nope"])
        with pytest.raises(ValueError, match="lacks key column"):
            upsert(session, Event, [{"title": "t", "source": "rss"}], ["source", "external_id"])
        with pytest.raises(ValueError, match="unknown column"):
            upsert(session, Event, [{**_event("a", "t"), "bogus": 1}], ["source", "external_id"])
    eng.dispose()


def test_session_scope_rolls_back_on_error(events):
    with pytest.raises(RuntimeError, match="boom"), session_scope(events) as session:
        session.add(Event(**_event("a", "t")))
        session.flush()
        raise RuntimeError("boom")
    with session_scope(events) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Event)) == 0
        session.add(Event(**_event("a", "t")))
    with session_scope(events) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Event)) == 1


def test_artifacts_record_and_list(url, tmp_path):
    migrate(url)
    clf = record_artifact(
        "classifier", tmp_path / "clf", model_id="minilm-l6", metadata={"f1": 0.5}, engine=url
    )
    record_artifact("lora-adapter", tmp_path / "lora", model_id="smollm2-135m-instruct", engine=url)
    again = record_artifact(
        "classifier", tmp_path / "clf", model_id="minilm-l6", metadata={"f1": 0.8}, engine=url
    )

    assert again.id == clf.id  # same path: updated, not duplicated
    everything = list_artifacts(engine=url)
    assert [a.path for a in everything] == [str(tmp_path / "clf"), str(tmp_path / "lora")]  # newest first
    assert everything[0].meta == {"f1": 0.8}
    assert everything[0].created_at.tzinfo is not None and everything[0].created_at.utcoffset() == timedelta(
        0
    )
    assert [a.kind for a in list_artifacts("lora-adapter", engine=url)] == ["lora-adapter"]
    assert [a.kind for a in list_artifacts(model_id="minilm-l6", engine=url)] == ["classifier"]
    assert len(list_artifacts(limit=1, engine=url)) == 1


def test_artifacts_need_migrated_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(StorageError, match="aigc db upgrade"):
        record_artifact("classifier", tmp_path / "clf", engine=url)
    with pytest.raises(ValueError, match="JSON-serialisable"):
        record_artifact("classifier", tmp_path / "clf", metadata={"bad": object()}, engine=url)
    with pytest.raises(ValueError, match="kind"):
        record_artifact(" ", tmp_path / "clf", engine=url)


def test_unreachable_database_names_url_with_masked_password():
    url = "postgresql://alice:s3cret@127.0.0.1:1/aigc"  # plain scheme: an installed driver is picked
    for call in (migrate, current_revisions, lambda u: list_artifacts(engine=u)):
        with pytest.raises(StorageError) as info:
            call(url)
        message = str(info.value)
        assert "127.0.0.1:1" in message and "alice:***@" in message
        assert "s3cret" not in message
    with pytest.raises(StorageError, match="Invalid database URL"):
        create_engine("not a url")


def test_sqlite_folder_that_cannot_be_created(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match="Cannot create the folder"):
        create_engine(f"sqlite:///{tmp_path / 'file' / 'sub' / 'aigc.db'}")


def test_app_branch_autogenerate_and_migrate(url, tmp_path, monkeypatch):
    monkeypatch.setattr(schema, "_BRANCHES", dict(schema._BRANCHES))
    versions = tmp_path / "demo_versions"
    versions.mkdir()
    register_migrations("demo", versions, DemoBase.metadata)

    first = new_revision("create events", "demo")  # diffed against a scratch in-memory database
    second = new_revision("nothing yet", "demo", autogenerate=False)

    text = first.read_text()
    assert first.name == "demo_0001_create_events.py"
    assert "branch_labels: str | Sequence[str] | None = ('demo',)" in text.replace('"', "'")
    assert "demo_events" in text and "sa.DateTime(timezone=True)" in text
    assert "core_artifacts" not in text and "core.storage" not in text
    assert "down_revision: str | Sequence[str] | None = 'demo_0001'" in second.read_text().replace('"', "'")

    assert migrate(url) >= {"core_0002", "demo_0002"}
    engine = create_engine(url)
    assert {"demo_events", "core_artifacts"} <= set(sa.inspect(engine).get_table_names())
    engine.dispose()


def test_register_migrations_validates(tmp_path, monkeypatch):
    monkeypatch.setattr(schema, "_BRANCHES", dict(schema._BRANCHES))
    with pytest.raises(ValueError, match="lower-case"):
        register_migrations("Support-App", tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        register_migrations("support", tmp_path / "missing")
    with pytest.raises(ValueError, match="must be named 'other_\\*'"):
        register_migrations("other", tmp_path, DemoBase.metadata)
    with pytest.raises(ValueError, match="already registered"):
        register_migrations("core", tmp_path)
    with pytest.raises(StorageError, match="failed"):
        migrate(f"sqlite:///{tmp_path / 'x.db'}", target="no-such-revision")


def test_discover_app_migration_folders(tmp_path):
    (tmp_path / "finance_monitor" / "migrations" / "versions").mkdir(parents=True)
    (tmp_path / "recommender").mkdir()
    assert schema.discover_migrations(tmp_path) == [
        (tmp_path / "finance_monitor" / "migrations" / "versions").resolve()
    ]
    assert schema.CORE_VERSIONS_DIR in schema.version_locations()
    assert all(isinstance(p, Path) for p in schema.version_locations())


@pytest.mark.parametrize(
    ("url", "shown", "why"),
    [
        (
            "postgresql://u:secret@127.0.0.1:54x2/test",
            "postgresql://u:***@127.0.0.1:54x2/test",
            "port is not a number",
        ),
        ("u:secret@127.0.0.1:5432/test", "u:***@127.0.0.1:5432/test", "Could not parse"),
    ],
)
def test_malformed_db_urls_fail_in_one_line_without_the_password(url, shown, why):
    from core.storage import StorageError, create_engine, mask_url

    assert mask_url(url) == shown
    with pytest.raises(StorageError) as info:
        create_engine(url)
    message = str(info.value)
    assert shown in message and why in message and "secret" not in message and "\n" not in message
    assert "invalid literal for int()" not in message


def test_a_failed_migration_says_why_without_the_sql(tmp_path):
    from core.schema import migrate
    from core.storage import StorageError

    url = f"sqlite:///{tmp_path / 'clash.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE core_artifacts (x INTEGER)"))
    engine.dispose()
    with pytest.raises(StorageError, match="table core_artifacts already exists") as info:
        migrate(url)
    assert "[SQL:" not in str(info.value) and "\n" not in str(info.value)
