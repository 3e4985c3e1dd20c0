"""Contract: users.email_normalized NOT NULL and unique, after its backfill

Two spellings of one address (`Ann@X.org`, `ann@x.org`) are one account: the unique
index settles sign-up races that a check before the insert cannot. If the build
fails with "could not create unique index ... is duplicated", accounts were already
created twice (before this revision): merge or rename them (docs/security.md), then
run the upgrade again (the failed index is dropped and rebuilt).

Revision ID: 0009_users_email_unique
Revises: 0008_customer_sessions
Create Date: 2026-12-01 00:00:09

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from backend.migrations.backfill_ops import require_backfill
from backend.migrations.online import create_index, drop_index, set_not_null

revision: str = "0009_users_email_unique"
down_revision: Union[str, Sequence[str], None] = "0008_customer_sessions"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

UNIQUE = "uq_users_email_normalized"
LOOKUP = "ix_users_email_normalized"  # 0005's index, which the unique one replaces


def upgrade() -> None:
    require_backfill("users_email_normalized", revision=revision)
    set_not_null("users", "email_normalized", existing_type=sa.String(320))
    create_index(UNIQUE, "users", ["email_normalized"], unique=True)
    drop_index(LOOKUP, "users")


def downgrade() -> None:
    create_index(LOOKUP, "users", ["email_normalized"])
    drop_index(UNIQUE, "users")
    with op.batch_alter_table("users") as batch_op:
        batch_op.alter_column("email_normalized", existing_type=sa.String(320), nullable=True)
