"""Expand: product_translations.slug, nullable, filled by the translation_slugs backfill

Revision ID: 0004_translation_slugs
Revises: 0003_orders_total_cents
Create Date: 2026-11-24 00:00:04

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from backend.backfill.ops import schedule_backfill, unschedule_backfill

revision: str = "0004_translation_slugs"
down_revision: Union[str, Sequence[str], None] = "0003_orders_total_cents"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("product_translations") as batch_op:
        batch_op.add_column(sa.Column("slug", sa.String(140), nullable=True))
        # Plain index while the backfill looks up taken slugs; 0007 makes it unique.
        # Not CONCURRENTLY: that waits for every open snapshot, including those of the other
        # processes blocked on the schema lock (pg_advisory_lock), which would then wait forever.
        # migration-lint: ack M004 one index build at deploy time while writes wait; --rehearse measures it
        batch_op.create_index("ix_product_translations_locale_slug", ["locale", "slug"])
    schedule_backfill("translation_slugs", revision=revision)


def downgrade() -> None:
    unschedule_backfill("translation_slugs")
    with op.batch_alter_table("product_translations") as batch_op:
        batch_op.drop_index("ix_product_translations_locale_slug")
        batch_op.drop_column("slug")
