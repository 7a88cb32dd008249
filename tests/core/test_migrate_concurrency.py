"""Schema creation when many threads or processes start at once on an empty database."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from core.schema import current_revisions, head_revisions, migrate
from core.storage import create_engine

ROOT = Path(__file__).resolve().parents[2]


def test_twenty_threads_migrate_an_empty_database_at_once(isolated_db_url):
    def start(_i: int) -> set[str]:
        engine = create_engine(isolated_db_url)
        try:
            return migrate(engine)
        finally:
            engine.dispose()

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(start, range(20)))
    assert all(r == head_revisions() for r in results)
    assert current_revisions(isolated_db_url) == head_revisions()


@pytest.mark.slow
def test_six_concurrent_db_upgrade_processes(isolated_db_url):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "core.cli", "db", "upgrade", "--url", isolated_db_url]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [err[-500:] for _out, err in outputs]
    assert current_revisions(isolated_db_url) == head_revisions()
