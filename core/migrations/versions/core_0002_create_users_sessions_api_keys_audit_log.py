"""Create core_users, core_sessions, core_api_keys and core_audit_log: serving a team (issue 14).

Revision ID: core_0002
Revises: core_0001
Create Date: 2026-12-02 06:12:40.001438+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "core_0002"
down_revision: str | Sequence[str] | None = "core_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "core_audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=1024), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_core_audit_log")),
    )
    with op.batch_alter_table("core_audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_core_audit_log_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_core_audit_log_actor"), ["actor"], unique=False)
        batch_op.create_index(batch_op.f("ix_core_audit_log_at"), ["at"], unique=False)

    op.create_table(
        "core_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("credentials_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_sign_in_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_core_users")),
        sa.UniqueConstraint("name", name=op.f("uq_core_users_name")),
    )
    op.create_table(
        "core_api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["core_users.id"],
            name=op.f("fk_core_api_keys_user_id_core_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_core_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_core_api_keys_prefix")),
    )
    with op.batch_alter_table("core_api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_core_api_keys_user_id"), ["user_id"], unique=False)

    op.create_table(
        "core_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("credentials_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["core_users.id"],
            name=op.f("fk_core_sessions_user_id_core_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_core_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_core_sessions_token_hash")),
    )
    with op.batch_alter_table("core_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_core_sessions_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_core_sessions_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("core_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_core_sessions_user_id"))
        batch_op.drop_index(batch_op.f("ix_core_sessions_expires_at"))

    op.drop_table("core_sessions")
    with op.batch_alter_table("core_api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_core_api_keys_user_id"))

    op.drop_table("core_api_keys")
    op.drop_table("core_users")
    with op.batch_alter_table("core_audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_core_audit_log_at"))
        batch_op.drop_index(batch_op.f("ix_core_audit_log_actor"))
        batch_op.drop_index(batch_op.f("ix_core_audit_log_action"))

    op.drop_table("core_audit_log")
