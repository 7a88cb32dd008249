"""Alembic migrations of the support bot (branch ``support``)."""
