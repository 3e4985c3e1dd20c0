"""Expand: users.email_normalized, filled by the users_email_normalized backfill

Revision ID: 0005_users_email_normalized
Revises: 0004_translation_slugs
Create Date: 2026-11-24 00:00:05

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from backend.backfill.ops import schedule_backfill, unschedule_backfill

revision: str = "0005_users_email_normalized"
down_revision: Union[str, Sequence[str], None] = "0004_translation_slugs"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("email_normalized", sa.String(320), nullable=True))
        # Not CONCURRENTLY: see 0004 (it would hang the processes waiting on the schema lock).
        # migration-lint: ack M004 one index build at deploy time while writes wait; --rehearse measures it
        batch_op.create_index(batch_op.f("ix_users_email_normalized"), ["email_normalized"])
    schedule_backfill("users_email_normalized", revision=revision)


def downgrade() -> None:
    unschedule_backfill("users_email_normalized")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_email_normalized"))
        batch_op.drop_column("email_normalized")
