"""Add support_gap_reports and support_gap_drafts: knowledge-gap clusters and their drafts (issue 16).

Revision ID: support_0003
Revises: support_0002
Create Date: 2026-12-02 15:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "support_0003"
down_revision: str | Sequence[str] | None = "support_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "support_gap_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kb", sa.String(length=1024), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("questions", sa.Integer(), nullable=False),
        sa.Column("gaps", sa.Integer(), nullable=False),
        sa.Column("unclustered", sa.JSON(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_gap_reports")),
    )
    with op.batch_alter_table("support_gap_reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_support_gap_reports_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_support_gap_reports_kb"), ["kb"], unique=False)

    op.create_table(
        "support_gap_drafts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("questions", sa.JSON(), nullable=False),
        sa.Column("nearest", sa.JSON(), nullable=False),
        sa.Column("draft_answer", sa.Text(), nullable=True),
        sa.Column("draft_sources", sa.JSON(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("flag_reason", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("question", sa.Text(), nullable=True),
        sa.Column("final_answer", sa.Text(), nullable=True),
        sa.Column("entry_id", sa.String(length=64), nullable=True),
        sa.Column("reviewed_by", sa.String(length=64), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["support_gap_reports.id"],
            name=op.f("fk_support_gap_drafts_report_id_support_gap_reports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_gap_drafts")),
    )
    with op.batch_alter_table("support_gap_drafts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_support_gap_drafts_report_id"), ["report_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_support_gap_drafts_status"), ["status"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("support_gap_drafts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_support_gap_drafts_status"))
        batch_op.drop_index(batch_op.f("ix_support_gap_drafts_report_id"))

    op.drop_table("support_gap_drafts")
    with op.batch_alter_table("support_gap_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_support_gap_reports_kb"))
        batch_op.drop_index(batch_op.f("ix_support_gap_reports_created_at"))

    op.drop_table("support_gap_reports")
