"""Hand-off queue (issue 16): case states and times, the bot's suggestion, agent replies, notifications.

* ``support_handoffs``: ``status`` open → ``waiting`` (then ``taken``, ``resolved``);
  ``created_at`` becomes ``handed_off_at``; new ``taken_at``, ``taken_by``, ``resolved_by``,
  ``updated_at``, ``suggestion``, ``suggestion_sources``; at most one open case per conversation
  (a partial unique index; older duplicate open rows, one per handed-off answer before this
  revision, are folded into the conversation's first);
* ``support_messages.author``: the agent who wrote a reply (role ``agent``);
* ``support_handoff_deliveries``: the outbox of hand-off notifications (:mod:`core.outbox`).

Revision ID: support_0004
Revises: support_0003
Create Date: 2026-12-02 20:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "support_0004"
down_revision: str | Sequence[str] | None = "support_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = sa.text("status IN ('waiting', 'taken')")


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("support_handoffs", schema=None) as batch_op:
        batch_op.alter_column("created_at", new_column_name="handed_off_at")
        batch_op.add_column(sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("taken_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("resolved_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("suggestion", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("suggestion_sources", sa.JSON(), nullable=True))
    op.execute("UPDATE support_handoffs SET status = 'waiting' WHERE status = 'open'")
    op.execute("UPDATE support_handoffs SET updated_at = COALESCE(resolved_at, handed_off_at)")
    op.execute("UPDATE support_handoffs SET suggestion_sources = '[]'")
    # Before: one open row per handed-off answer. Now: one case per conversation until resolved.
    op.execute(
        "DELETE FROM support_handoffs WHERE status = 'waiting' AND EXISTS ("
        " SELECT 1 FROM support_handoffs AS first"
        " WHERE first.conversation_id = support_handoffs.conversation_id AND first.status = 'waiting'"
        " AND (first.handed_off_at < support_handoffs.handed_off_at"
        " OR (first.handed_off_at = support_handoffs.handed_off_at AND first.id < support_handoffs.id)))"
    )
    with op.batch_alter_table("support_handoffs", schema=None) as batch_op:
        batch_op.alter_column("updated_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.alter_column("suggestion_sources", existing_type=sa.JSON(), nullable=False)
        batch_op.create_index(
            batch_op.f("ix_support_handoffs_handed_off_at"), ["handed_off_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_support_handoffs_taken_by"), ["taken_by"], unique=False)
    op.create_index(
        "ix_support_handoffs_open_conversation",
        "support_handoffs",
        ["conversation_id"],
        unique=True,
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    )

    with op.batch_alter_table("support_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("author", sa.String(length=64), nullable=True))

    op.create_table(
        "support_handoff_deliveries",
        sa.Column("handoff_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
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
            ["handoff_id"],
            ["support_handoffs.id"],
            name=op.f("fk_support_handoff_deliveries_handoff_id_support_handoffs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_handoff_deliveries")),
        sa.UniqueConstraint("handoff_id", "sink", name=op.f("uq_support_handoff_deliveries_handoff_id_sink")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_support_handoff_deliveries_idempotency_key")),
    )
    with op.batch_alter_table("support_handoff_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_support_handoff_deliveries_handoff_id"), ["handoff_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_support_handoff_deliveries_next_attempt_at"), ["next_attempt_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_support_handoff_deliveries_status"), ["status"], unique=False)


def downgrade() -> None:
    """Downgrade schema (taken cases become open again; agents' replies stay as messages)."""
    with op.batch_alter_table("support_handoff_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_support_handoff_deliveries_status"))
        batch_op.drop_index(batch_op.f("ix_support_handoff_deliveries_next_attempt_at"))
        batch_op.drop_index(batch_op.f("ix_support_handoff_deliveries_handoff_id"))
    op.drop_table("support_handoff_deliveries")

    with op.batch_alter_table("support_messages", schema=None) as batch_op:
        batch_op.drop_column("author")

    op.drop_index("ix_support_handoffs_open_conversation", table_name="support_handoffs")
    op.execute("UPDATE support_handoffs SET status = 'open' WHERE status IN ('waiting', 'taken')")
    with op.batch_alter_table("support_handoffs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_support_handoffs_taken_by"))
        batch_op.drop_index(batch_op.f("ix_support_handoffs_handed_off_at"))
        batch_op.drop_column("suggestion_sources")
        batch_op.drop_column("suggestion")
        batch_op.drop_column("updated_at")
        batch_op.drop_column("resolved_by")
        batch_op.drop_column("taken_by")
        batch_op.drop_column("taken_at")
        batch_op.alter_column("handed_off_at", new_column_name="created_at")
