"""A migrated database (SQLite, and PostgreSQL in a fresh schema when it answers) for the auth tests."""

from __future__ import annotations

import pytest

from core.schema import migrate
from core.storage import create_engine


@pytest.fixture
def engine(isolated_db_url):
    eng = create_engine(isolated_db_url)
    migrate(eng)
    yield eng
    eng.dispose()
