"""Expand: product_translations.slug, nullable, filled by the translation_slugs backfill

Revision ID: 0004_translation_slugs
Revises: 0003_orders_total_cents
Create Date: 2026-11-24 00:00:04

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from backend.migrations.backfill_ops import schedule_backfill, unschedule_backfill
from backend.migrations.online import add_column, create_index, drop_index

revision: str = "0004_translation_slugs"
down_revision: Union[str, Sequence[str], None] = "0003_orders_total_cents"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # add_column can run again: the index build below commits it first, so a try that
    # failed during the build finds the column (and the scheduled run) already there.
    add_column("product_translations", sa.Column("slug", sa.String(140), nullable=True))
    schedule_backfill("translation_slugs", revision=revision)
    # The backfill looks up taken slugs by this index; 0007 makes (locale, slug) unique.
    create_index("ix_product_translations_locale_slug", "product_translations", ["locale", "slug"])


def downgrade() -> None:
    unschedule_backfill("translation_slugs", revision=revision)
    drop_index("ix_product_translations_locale_slug", "product_translations")
    with op.batch_alter_table("product_translations") as batch_op:
        batch_op.drop_column("slug")
