"""Fixtures of the finance monitor tests: migrated databases (SQLite, and PostgreSQL when it answers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

import apps.finance_monitor.storage  # noqa: F401 - registers the finance migration branch
from core.schema import migrate
from core.storage import create_engine
from tests.apps.finance_monitor.model_fixtures import (  # noqa: F401 - fixtures
    tiny_joint_dir,
    tiny_sentiment_dir,
    tiny_topic_dir,
)
from tests.apps.finance_monitor.sample_db import build_sample_db


@pytest.fixture
def isolated_url(isolated_db_url: str) -> str:
    """``db_url``, isolated per test (see tests/conftest.py)."""
    return isolated_db_url


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


@pytest.fixture(scope="module")
def sample_template(tmp_path_factory):
    """A SQLite file with the sample stream, its true labels and the two surge alerts."""
    return build_sample_db(tmp_path_factory.mktemp("finance-sample") / "sample.db")


@pytest.fixture
def sample_engine(sample_template, tmp_path):
    """A private copy of the sample database (tests may acknowledge and mute)."""
    target = tmp_path / "sample.db"
    target.write_bytes(sample_template.read_bytes())
    engine = create_engine(f"sqlite:///{target}")
    yield engine
    engine.dispose()
