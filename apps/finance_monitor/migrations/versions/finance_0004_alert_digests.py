"""Alert digests (finance_alert_digests): clusters, entities, sentiment shares and a cited summary.

Alerts raised before the upgrade have no digest; `aigc finance digest --alert ID` and the Alerts
page compute one on demand and store it.

Revision ID: finance_0004
Revises: finance_0003
Create Date: 2026-12-02 15:10:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "finance_0004"
down_revision: str | Sequence[str] | None = "finance_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "finance_alert_digests",
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("items_key", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.JSON(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["finance_alerts.id"],
            name=op.f("fk_finance_alert_digests_alert_id_finance_alerts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_finance_alert_digests")),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("finance_alert_digests")
