"""Alembic migrations of the finance monitor (branch ``finance``)."""
