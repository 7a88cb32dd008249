"""Create core_artifacts: trained models and other outputs the apps record.

Revision ID: core_0001
Revises:
Create Date: 2026-11-28 20:48:25.422910+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "core_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("core",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "core_artifacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("model_id", sa.String(length=256), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_core_artifacts")),
        sa.UniqueConstraint("path", name=op.f("uq_core_artifacts_path")),
    )
    with op.batch_alter_table("core_artifacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_core_artifacts_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_core_artifacts_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_core_artifacts_model_id"), ["model_id"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("core_artifacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_core_artifacts_model_id"))
        batch_op.drop_index(batch_op.f("ix_core_artifacts_kind"))
        batch_op.drop_index(batch_op.f("ix_core_artifacts_created_at"))

    op.drop_table("core_artifacts")
