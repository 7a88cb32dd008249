"""Alembic migrations of the recommender (branch ``recommend``)."""
