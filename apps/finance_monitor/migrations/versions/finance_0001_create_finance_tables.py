"""Create the finance monitor tables: items, scores, alerts, alert items, processed files.

Revision ID: finance_0001
Revises:
Create Date: 2026-11-28 21:00:56.777374+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "finance_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("finance",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "finance_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(length=128), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("threshold", sa.Double(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("baseline_mean", sa.Double(), nullable=True),
        sa.Column("baseline_std", sa.Double(), nullable=True),
        sa.Column("volume", sa.Integer(), nullable=False),
        sa.Column("window", sa.String(length=16), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=128), nullable=True),
        sa.Column("muted_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deliveries", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_finance_alerts")),
    )
    with op.batch_alter_table("finance_alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_finance_alerts_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_finance_alerts_key"), ["key"], unique=False)
        batch_op.create_index(batch_op.f("ix_finance_alerts_rule"), ["rule"], unique=False)
        batch_op.create_index(batch_op.f("ix_finance_alerts_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_finance_alerts_window_start"), ["window_start"], unique=False)

    op.create_table(
        "finance_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("new_items", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_finance_files")),
        sa.UniqueConstraint("path", "sha256", name=op.f("uq_finance_files_path_sha256")),
    )
    with op.batch_alter_table("finance_files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_finance_files_path"), ["path"], unique=False)
        batch_op.create_index(batch_op.f("ix_finance_files_sha256"), ["sha256"], unique=False)

    op.create_table(
        "finance_items",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=256), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("tickers", sa.JSON(), nullable=False),
        sa.Column("group_id", sa.String(length=128), nullable=False),
        sa.Column("origin", sa.String(length=1024), nullable=True),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_finance_items")),
    )
    with op.batch_alter_table("finance_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_finance_items_group_id"), ["group_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_finance_items_source"), ["source"], unique=False)
        batch_op.create_index(batch_op.f("ix_finance_items_timestamp"), ["timestamp"], unique=False)

    op.create_table(
        "finance_alert_items",
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["finance_alerts.id"],
            name=op.f("fk_finance_alert_items_alert_id_finance_alerts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["finance_items.id"],
            name=op.f("fk_finance_alert_items_item_id_finance_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("alert_id", "item_id", name=op.f("pk_finance_alert_items")),
    )
    with op.batch_alter_table("finance_alert_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_finance_alert_items_item_id"), ["item_id"], unique=False)

    op.create_table(
        "finance_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.String(length=256), nullable=False),
        sa.Column("sentiment", sa.String(length=64), nullable=False),
        sa.Column("sentiment_confidence", sa.Double(), nullable=False),
        sa.Column("topic", sa.String(length=128), nullable=True),
        sa.Column("topic_confidence", sa.Double(), nullable=True),
        sa.Column("probabilities", sa.JSON(), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["finance_items.id"],
            name=op.f("fk_finance_scores_item_id_finance_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_finance_scores")),
        sa.UniqueConstraint("item_id", "model_version", name=op.f("uq_finance_scores_item_id_model_version")),
    )
    with op.batch_alter_table("finance_scores", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_finance_scores_item_id"), ["item_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_finance_scores_model_version"), ["model_version"], unique=False)
        batch_op.create_index(batch_op.f("ix_finance_scores_scored_at"), ["scored_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_finance_scores_topic"), ["topic"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("finance_scores", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_finance_scores_topic"))
        batch_op.drop_index(batch_op.f("ix_finance_scores_scored_at"))
        batch_op.drop_index(batch_op.f("ix_finance_scores_model_version"))
        batch_op.drop_index(batch_op.f("ix_finance_scores_item_id"))

    op.drop_table("finance_scores")
    with op.batch_alter_table("finance_alert_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_finance_alert_items_item_id"))

    op.drop_table("finance_alert_items")
    with op.batch_alter_table("finance_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_finance_items_timestamp"))
        batch_op.drop_index(batch_op.f("ix_finance_items_source"))
        batch_op.drop_index(batch_op.f("ix_finance_items_group_id"))

    op.drop_table("finance_items")
    with op.batch_alter_table("finance_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_finance_files_sha256"))
        batch_op.drop_index(batch_op.f("ix_finance_files_path"))

    op.drop_table("finance_files")
    with op.batch_alter_table("finance_alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_finance_alerts_window_start"))
        batch_op.drop_index(batch_op.f("ix_finance_alerts_status"))
        batch_op.drop_index(batch_op.f("ix_finance_alerts_rule"))
        batch_op.drop_index(batch_op.f("ix_finance_alerts_key"))
        batch_op.drop_index(batch_op.f("ix_finance_alerts_created_at"))

    op.drop_table("finance_alerts")
