"""Entity links (finance_entity_links) and the linker version of each linked item (finance_linked_items).

Existing items have no rows in either table: until they are linked (``aigc finance entities relink``,
or a new model version scoring them), their entities are their ``tickers`` as before.

Revision ID: finance_0003
Revises: finance_0002
Create Date: 2026-12-02 18:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "finance_0003"
down_revision: str | Sequence[str] | None = "finance_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "finance_entity_links",
        sa.Column("item_id", sa.String(length=128), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=True),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("mention", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["finance_items.id"],
            name=op.f("fk_finance_entity_links_item_id_finance_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("item_id", "entity", name=op.f("pk_finance_entity_links")),
    )
    with op.batch_alter_table("finance_entity_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_finance_entity_links_entity"), ["entity"], unique=False)
    op.create_table(
        "finance_linked_items",
        sa.Column("item_id", sa.String(length=128), nullable=False),
        sa.Column("linker_version", sa.String(length=64), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["finance_items.id"],
            name=op.f("fk_finance_linked_items_item_id_finance_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("item_id", name=op.f("pk_finance_linked_items")),
    )
    with op.batch_alter_table("finance_linked_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_finance_linked_items_linker_version"), ["linker_version"], unique=False
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("finance_linked_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_finance_linked_items_linker_version"))
    op.drop_table("finance_linked_items")
    with op.batch_alter_table("finance_entity_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_finance_entity_links_entity"))
    op.drop_table("finance_entity_links")
