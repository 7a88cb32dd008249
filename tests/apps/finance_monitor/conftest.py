"""Fixtures of the finance monitor tests: migrated databases (SQLite, and PostgreSQL when it answers)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

import apps.finance_monitor.storage  # noqa: F401 - registers the finance migration branch
from core.storage import create_engine, migrate
from tests.apps.finance_monitor.model_fixtures import (  # noqa: F401 - fixtures
    tiny_joint_dir,
    tiny_sentiment_dir,
    tiny_topic_dir,
)


@pytest.fixture
def isolated_url(db_url: str) -> Iterator[str]:
    """``db_url``; on PostgreSQL a fresh schema per test (via search_path), dropped afterwards."""
    if not db_url.startswith("postgresql"):
        yield db_url
        return
    schema = f"test_fin_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(db_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        url = make_url(db_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def db(isolated_url: str) -> Iterator[Engine]:
    """A migrated engine on SQLite and on PostgreSQL."""
    engine = create_engine(isolated_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_db(tmp_path) -> Iterator[Engine]:
    """A migrated SQLite engine (for tests whose logic does not depend on the database)."""
    engine = create_engine(f"sqlite:///{tmp_path / 'finance.db'}")
    migrate(engine)
    yield engine
    engine.dispose()
