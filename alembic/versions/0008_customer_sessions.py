"""Expand: customer_sessions, the server-side record that lets customers' tokens be revoked

Revision ID: 0008_customer_sessions
Revises: 0007_translation_slugs_unique
Create Date: 2026-12-01 00:00:08

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0008_customer_sessions"
down_revision: Union[str, Sequence[str], None] = "0007_translation_slugs_unique"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # A new table: nobody reads or writes it yet, so nothing here waits on the shop.
    op.create_table(
        "customer_sessions",
        sa.Column("id", BigIntPK, primary_key=True),
        sa.Column("user_id", BigIntPK, sa.ForeignKey("users.id", ondelete="CASCADE",
                                                    name="fk_customer_sessions_user_id_users"), nullable=False),
        sa.Column("refresh_jti", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_customer_sessions"),
    )
    op.create_index("ix_customer_sessions_user_id", "customer_sessions", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_customer_sessions_user_id", table_name="customer_sessions")
    op.drop_table("customer_sessions")
