"""Create the support bot tables: conversations, messages, message sources, hand-offs, feedback.

Revision ID: support_0001
Revises:
Create Date: 2026-11-29 05:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "support_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("support",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "support_conversations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("kb", sa.String(length=1024), nullable=True),
        sa.Column("intent", sa.String(length=128), nullable=True),
        sa.Column("handoff", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_conversations")),
    )
    with op.batch_alter_table("support_conversations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_support_conversations_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_support_conversations_intent"), ["intent"], unique=False)

    op.create_table(
        "support_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("route", sa.String(length=16), nullable=True),
        sa.Column("confidence", sa.Double(), nullable=True),
        sa.Column("handoff", sa.Boolean(), nullable=False),
        sa.Column("intent", sa.String(length=128), nullable=True),
        sa.Column("intent_confidence", sa.Double(), nullable=True),
        sa.Column("query", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=True),
        sa.Column("ttft_ms", sa.Double(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["support_conversations.id"],
            name=op.f("fk_support_messages_conversation_id_support_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_messages")),
        sa.UniqueConstraint(
            "conversation_id", "position", name=op.f("uq_support_messages_conversation_id_position")
        ),
    )
    with op.batch_alter_table("support_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_support_messages_conversation_id"), ["conversation_id"], unique=False
        )

    op.create_table(
        "support_feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("corrected_answer", sa.Text(), nullable=True),
        sa.Column("agent", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["support_messages.id"],
            name=op.f("fk_support_feedback_message_id_support_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_feedback")),
        sa.UniqueConstraint("message_id", name=op.f("uq_support_feedback_message_id")),
    )
    with op.batch_alter_table("support_feedback", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_support_feedback_created_at"), ["created_at"], unique=False)

    op.create_table(
        "support_handoffs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=36), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["support_conversations.id"],
            name=op.f("fk_support_handoffs_conversation_id_support_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["support_messages.id"],
            name=op.f("fk_support_handoffs_message_id_support_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_handoffs")),
        sa.UniqueConstraint("message_id", name=op.f("uq_support_handoffs_message_id")),
    )
    with op.batch_alter_table("support_handoffs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_support_handoffs_conversation_id"), ["conversation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_support_handoffs_status"), ["status"], unique=False)

    op.create_table(
        "support_message_sources",
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.String(length=512), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column("cosine", sa.Double(), nullable=True),
        sa.Column("cited", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["support_messages.id"],
            name=op.f("fk_support_message_sources_message_id_support_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "entry_id", name=op.f("pk_support_message_sources")),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("support_message_sources")
    with op.batch_alter_table("support_handoffs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_support_handoffs_status"))
        batch_op.drop_index(batch_op.f("ix_support_handoffs_conversation_id"))

    op.drop_table("support_handoffs")
    with op.batch_alter_table("support_feedback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_support_feedback_created_at"))

    op.drop_table("support_feedback")
    with op.batch_alter_table("support_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_support_messages_conversation_id"))

    op.drop_table("support_messages")
    with op.batch_alter_table("support_conversations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_support_conversations_intent"))
        batch_op.drop_index(batch_op.f("ix_support_conversations_created_at"))

    op.drop_table("support_conversations")
