"""Database schema: Alembic migrations driven from Python (no ``alembic.ini`` needed).

:mod:`core.storage` gives engines, sessions and column types; this module upgrades the tables they
use. The Alembic folder itself (``env.py``, the script template and core's revision files) is
``core/migrations/``. Every app owns one Alembic branch named after its table prefix (``core``, ``support``,
``finance``, ``recommend``) with its revision files in its own ``versions`` folder. :func:`migrate`
upgrades all branches at once from core's folder, every folder passed to
:func:`register_migrations`, and every ``apps/<app>/migrations/versions`` folder found beside
``core``. All branches share one ``alembic_version`` table.

An app starts its branch with::

    register_migrations("support", Path(__file__).parent / "migrations" / "versions", SupportBase.metadata)
    new_revision("create tickets", "support")   # autogenerates support_0001_create_tickets.py

The revision files import only ``alembic`` and ``sqlalchemy`` so they run without the app.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import threading
from argparse import Namespace
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError

import core.artifact_registry  # noqa: F401  (puts core_artifacts on CoreBase.metadata for autogenerate)
import core.auth.models  # noqa: F401  (core_users, core_sessions, core_api_keys, core_audit_log)
from core.paths import project_root
from core.storage import CoreBase, StorageError, db_error_text, engine_for, mask_url

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
CORE_VERSIONS_DIR = MIGRATIONS_DIR / "versions"
_BRANCH_RE = re.compile(r"[a-z][a-z0-9]*")


@dataclass(frozen=True)
class MigrationBranch:
    """One app's migrations: its Alembic branch label, revision folder and table metadata."""

    name: str
    versions_dir: Path
    metadata: sa.MetaData | None = None


_BRANCHES: dict[str, MigrationBranch] = {
    "core": MigrationBranch("core", CORE_VERSIONS_DIR, CoreBase.metadata)
}


def register_migrations(branch: str, versions_dir: str | Path, metadata: sa.MetaData | None = None) -> None:
    """Declare an app's migration branch (call at import of the app's storage module).

    Args:
        branch: Branch label and table prefix, lower-case letters and digits (``"support"``).
        versions_dir: Folder of the branch's revision files.
        metadata: The app's table metadata, used by :func:`new_revision` to autogenerate;
            every table name must start with ``f"{branch}_"``.

    Raises:
        ValueError: Bad branch name, a table without the prefix, or the branch already
            registered with another folder.
        FileNotFoundError: ``versions_dir`` is not a directory.
    """
    if not _BRANCH_RE.fullmatch(branch):
        raise ValueError(f"migration branch {branch!r} must be lower-case letters and digits, e.g. 'support'")
    path = Path(versions_dir).expanduser().resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"migration folder for branch {branch!r} does not exist: {path}")
    if metadata is not None:
        stray = sorted(name for name in metadata.tables if not name.startswith(f"{branch}_"))
        if stray:
            raise ValueError(f"tables of branch {branch!r} must be named '{branch}_*'; got {stray}")
    known = _BRANCHES.get(branch)
    if known is not None and known.versions_dir != path:
        raise ValueError(
            f"migration branch {branch!r} is already registered with {known.versions_dir}, not {path}"
        )
    _BRANCHES[branch] = MigrationBranch(branch, path, metadata)
    logger.debug("Registered migrations", extra={"branch": branch, "versions_dir": str(path)})


def registered_branches() -> dict[str, MigrationBranch]:
    """The registered branches by name (``core`` always included)."""
    return dict(_BRANCHES)


def discover_migrations(apps_dir: Path | None = None) -> list[Path]:
    """The ``<app>/migrations/versions`` folders under ``apps_dir`` (default the suite's ``apps``)."""
    root = apps_dir if apps_dir is not None else project_root() / "apps"
    return sorted(p.resolve() for p in root.glob("*/migrations/versions") if p.is_dir())


def version_locations() -> list[Path]:
    """Every folder of revision files :func:`migrate` reads: core's, registered, discovered."""
    found = [CORE_VERSIONS_DIR, *(b.versions_dir for b in _BRANCHES.values()), *discover_migrations()]
    return list(dict.fromkeys(p.resolve() for p in found))


def _config(connection: Connection | None = None, branch: MigrationBranch | None = None) -> Config:
    cfg = Config(cmd_opts=Namespace(quiet=True))  # quiet: alembic would print progress to stdout

    def esc(value: object) -> str:  # configparser interpolation
        return str(value).replace("%", "%%")

    cfg.set_main_option("script_location", esc(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", esc(os.pathsep.join(str(p) for p in version_locations())))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    cfg.set_main_option("timezone", "UTC")
    cfg.attributes["connection"] = connection
    if branch is not None:
        cfg.attributes["target_metadata"] = branch.metadata
        cfg.attributes["table_prefix"] = f"{branch.name}_"
    return cfg


def _ruff(path: Path) -> None:
    """Fix and format a generated revision file so it passes the repository's lint (if ruff is here)."""
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        return
    for args in (["check", "--fix", "--exit-zero", "--silent"], ["format", "--silent"]):
        subprocess.run([ruff, *args, str(path)], capture_output=True, check=False)


@contextmanager
def _sqlite_foreign_keys_off(connection: Connection) -> Iterator[None]:
    """SQLite batch migrations copy and drop tables; with foreign keys on, the drop would cascade."""
    if connection.dialect.name != "sqlite":
        yield
        return
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    connection.commit()
    try:
        yield
        violations = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if violations:
            raise StorageError(f"migration left rows violating foreign keys: {violations[:5]}")
    finally:
        connection.rollback()
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()


# Alembic loads revision files as modules, which is not thread-safe: one thread of a process at a time.
_PROCESS_LOCK = threading.RLock()
# Any constant shared by every process of the suite: the key of its PostgreSQL advisory lock.
_PG_MIGRATE_LOCK = 0x41494743_4D494752  # "AIGC" "MIGR"


@contextmanager
def _migration_lock(connection: Connection) -> Iterator[None]:
    """Hold the database's migration lock: one migrator at a time, across threads and processes.

    PostgreSQL: a session-level advisory lock (waited for). SQLite file: an exclusive file lock on
    ``<database>.migrate.lock`` beside it. An in-memory SQLite database is private to its
    connection, so it needs none.
    """
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_lock({_PG_MIGRATE_LOCK})")
        connection.commit()
        try:
            yield
        finally:
            connection.rollback()
            connection.exec_driver_sql(f"SELECT pg_advisory_unlock({_PG_MIGRATE_LOCK})")
            connection.commit()
        return
    database = connection.engine.url.database or ""
    if dialect != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        yield
        return
    from filelock import FileLock

    with FileLock(f"{Path(database).expanduser()}.migrate.lock"):
        yield


def _revisions(connection: Connection) -> set[str]:
    try:
        return set(MigrationContext.configure(connection).get_current_heads())
    finally:
        connection.rollback()


def migrate(engine_or_url: Engine | str | URL | None = None, target: str = "heads") -> set[str]:
    """Upgrade the database schema of every branch (creates the tables on an empty database).

    Running it again is a no-op. On SQLite, foreign keys are off while migrating. Safe when many
    threads or processes start at once on an empty database: they take turns through a lock
    (PostgreSQL advisory lock, or a file lock beside the SQLite file), and a database already at
    the newest revisions is not locked at all.

    Args:
        engine_or_url: Engine or URL; default ``AIGC_DB_URL`` or the local SQLite file.
        target: Alembic target, e.g. ``"heads"`` (all branches) or ``"support@head"``.

    Returns:
        The revisions the database is at afterwards.

    Raises:
        StorageError: The database cannot be reached or a migration fails.
    """
    with _PROCESS_LOCK, engine_for(engine_or_url) as engine, engine.connect() as connection:
        if target == "heads" and (current := _revisions(connection)) and current == head_revisions():
            return current
        with _migration_lock(connection), _sqlite_foreign_keys_off(connection):
            try:
                with connection.begin():
                    command.upgrade(_config(connection), target)
            except (CommandError, DBAPIError) as err:
                raise StorageError(
                    f"Migrating {mask_url(engine.url)} to {target!r} failed: {db_error_text(err)}"
                ) from err
        heads = set(MigrationContext.configure(connection).get_current_heads())
        logger.info(
            "Database schema upgraded", extra={"url": mask_url(engine.url), "revisions": sorted(heads)}
        )
    return heads


def current_revisions(engine_or_url: Engine | str | URL | None = None) -> set[str]:
    """The revisions the database is at (empty before the first :func:`migrate`).

    Args:
        engine_or_url: Engine or URL; default ``AIGC_DB_URL`` or the local SQLite file.

    Returns:
        One revision per branch.
    """
    with engine_for(engine_or_url) as engine, engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def head_revisions() -> set[str]:
    """The newest revision of every branch; a database is up to date when it is at these."""
    with _PROCESS_LOCK:
        return set(ScriptDirectory.from_config(_config()).get_heads())


def new_revision(
    message: str,
    branch: str,
    *,
    autogenerate: bool = True,
    engine_or_url: Engine | str | URL | None = None,
) -> Path:
    """Write a new revision file for ``branch`` (a developer tool, like ``alembic revision``).

    The first revision of a branch starts it (``branch_labels``); later ones follow its head.
    Revision ids are readable: ``support_0001``, ``support_0002``, ...

    Args:
        message: What the revision does; also the file name slug.
        branch: A registered branch (:func:`register_migrations`).
        autogenerate: Diff the branch's metadata against the database (only ``{branch}_*``
            tables); otherwise write an empty revision.
        engine_or_url: The database to diff against, which must be at head. Default: a scratch
            in-memory SQLite database, migrated first.

    Returns:
        Path of the written file.

    Raises:
        ValueError: Unknown branch, or autogenerate without registered metadata.
    """
    spec = _BRANCHES.get(branch)
    if spec is None:
        raise ValueError(f"unknown migration branch {branch!r}; call register_migrations() first")
    if autogenerate and spec.metadata is None:
        raise ValueError(f"branch {branch!r} was registered without metadata; cannot autogenerate")
    with engine_for(engine_or_url if engine_or_url is not None else "sqlite://") as engine:
        if engine_or_url is None:
            migrate(engine)
        with engine.begin() as connection:
            cfg = _config(connection, spec)
            scripts = list(ScriptDirectory.from_config(cfg).walk_revisions())
            started = any(branch in s.branch_labels for s in scripts)
            count = sum(1 for s in scripts if Path(s.path).resolve().parent == spec.versions_dir)
            result: Any = command.revision(
                cfg,
                message=message,
                autogenerate=autogenerate,
                head=f"{branch}@head" if started else "base",
                branch_label=None if started else branch,
                version_path=str(spec.versions_dir),
                rev_id=f"{branch}_{count + 1:04d}",
            )
    path = Path(result.path)
    _ruff(path)
    logger.info("Wrote migration", extra={"branch": branch, "path": str(path)})
    return path
