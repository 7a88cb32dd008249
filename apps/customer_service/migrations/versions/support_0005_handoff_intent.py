"""Add support_handoffs.intent: the intent the agent who resolved a case said its question was.

The refresh trains the intent model on these labels (``training_data.resolved_handoffs``); cases
resolved before this revision have none (``NULL``), as do cases resolved without one.

Revision ID: support_0005
Revises: support_0004
Create Date: 2026-12-06 17:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "support_0005"
down_revision: str | Sequence[str] | None = "support_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("support_handoffs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("intent", sa.String(length=128), nullable=True))


def downgrade() -> None:
    """Downgrade schema (the agents' intent labels are dropped)."""
    with op.batch_alter_table("support_handoffs", schema=None) as batch_op:
        batch_op.drop_column("intent")
