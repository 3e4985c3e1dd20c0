"""Expand: users.email_normalized, filled by the users_email_normalized backfill

Revision ID: 0005_users_email_normalized
Revises: 0004_translation_slugs
Create Date: 2026-11-24 00:00:05

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from backend.migrations.backfill_ops import schedule_backfill, unschedule_backfill
from backend.migrations.online import add_column, create_index, drop_index

revision: str = "0005_users_email_normalized"
down_revision: Union[str, Sequence[str], None] = "0004_translation_slugs"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # add_column can run again: the index build below commits it first, so a try that
    # failed during the build finds the column (and the scheduled run) already there.
    add_column("users", sa.Column("email_normalized", sa.String(320), nullable=True))
    schedule_backfill("users_email_normalized", revision=revision)
    create_index("ix_users_email_normalized", "users", ["email_normalized"])


def downgrade() -> None:
    unschedule_backfill("users_email_normalized", revision=revision)
    drop_index("ix_users_email_normalized", "users")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("email_normalized")
