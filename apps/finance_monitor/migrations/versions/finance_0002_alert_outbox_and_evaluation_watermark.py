"""Alert outbox (finance_deliveries) and the alert-evaluation watermark (finance_watermarks).

Existing databases start with no watermark, so the first monitor cycle after the upgrade
evaluates every stored score once: alerts already raised are only extended (one alert per
incident), and incidents lost to a kill before the rules ran are raised now. Old alerts keep
their ``deliveries`` column and get no outbox rows (they were sent, or not, before).

Revision ID: finance_0002
Revises: finance_0001
Create Date: 2026-12-02 06:13:37.580402+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "finance_0002"
down_revision: str | Sequence[str] | None = "finance_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "finance_watermarks",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=256), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", "model_version", name=op.f("pk_finance_watermarks")),
    )
    op.create_table(
        "finance_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("sink", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("target", sa.String(length=2048), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["finance_alerts.id"],
            name=op.f("fk_finance_deliveries_alert_id_finance_alerts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_finance_deliveries")),
        sa.UniqueConstraint("alert_id", "sink", name=op.f("uq_finance_deliveries_alert_id_sink")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_finance_deliveries_idempotency_key")),
    )
    with op.batch_alter_table("finance_deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_finance_deliveries_alert_id"), ["alert_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_finance_deliveries_next_attempt_at"), ["next_attempt_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_finance_deliveries_status"), ["status"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("finance_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_finance_deliveries_status"))
        batch_op.drop_index(batch_op.f("ix_finance_deliveries_next_attempt_at"))
        batch_op.drop_index(batch_op.f("ix_finance_deliveries_alert_id"))

    op.drop_table("finance_deliveries")
    op.drop_table("finance_watermarks")
