"""Add support_conversations.owner: the agent who started the conversation (issue 14).

Revision ID: support_0002
Revises: support_0001
Create Date: 2026-12-02 06:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "support_0002"
down_revision: str | Sequence[str] | None = "support_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("support_conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_support_conversations_owner"), ["owner"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("support_conversations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_support_conversations_owner"))
        batch_op.drop_column("owner")
