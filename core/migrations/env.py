"""Alembic environment for the suite; run through ``core.schema.migrate``, not the alembic CLI.

The caller passes an open connection (and, to autogenerate, the branch's metadata and table
prefix) in ``config.attributes``, so no URL or ``alembic.ini`` is read here.
"""

from __future__ import annotations

from typing import Any

from alembic import context

from core.storage import UTCDateTime

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "these migrations run through core.schema.migrate() or `aigc db upgrade`, not `alembic`"
    )
if context.is_offline_mode():
    raise RuntimeError(
        "offline (--sql) migrations are not supported; run `aigc db upgrade` against the database"
    )

target_metadata = config.attributes.get("target_metadata")
table_prefix: str | None = config.attributes.get("table_prefix")


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Autogenerate compares only the branch's own tables (other apps' tables are not dropped)."""
    if type_ == "table" and table_prefix is not None:
        return bool(name) and name.startswith(table_prefix)
    return True


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render ``UTCDateTime`` as ``sa.DateTime(timezone=True)``: revision files import no suite code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


context.configure(
    connection=connection,
    target_metadata=target_metadata,
    include_name=include_name,
    render_item=render_item,
    render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
    compare_type=True,
)

with context.begin_transaction():
    context.run_migrations()
