"""Alembic migrations of core (branch ``core``); :mod:`core.schema` runs them."""
