"""Add finance_alerts.baseline_buckets: the rule's baseline length when the alert was raised.

A digest computed later (an alert raised with digests off, or one whose stored digest is stale)
compares the alert's window with the baseline the rule used, whatever rules file the reader has.
Alerts raised before this revision have none (``NULL``) and fall back to the reader's rules file.

Revision ID: finance_0005
Revises: finance_0004
Create Date: 2026-12-06 19:40:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "finance_0005"
down_revision: str | Sequence[str] | None = "finance_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("finance_alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("baseline_buckets", sa.Integer(), nullable=True))


def downgrade() -> None:
    """Downgrade schema (the recorded baseline lengths are dropped)."""
    with op.batch_alter_table("finance_alerts", schema=None) as batch_op:
        batch_op.drop_column("baseline_buckets")
