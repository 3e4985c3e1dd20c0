"""Contract: product_translations.slug NOT NULL and unique per locale, after its backfill

Revision ID: 0007_translation_slugs_unique
Revises: 0006_orders_total_not_null
Create Date: 2026-11-24 00:00:07

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from backend.backfill.ops import require_backfill

revision: str = "0007_translation_slugs_unique"
down_revision: Union[str, Sequence[str], None] = "0006_orders_total_not_null"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    require_backfill("translation_slugs", revision=revision)
    with op.batch_alter_table("product_translations") as batch_op:
        batch_op.alter_column("slug", existing_type=sa.String(140), nullable=False)
        batch_op.drop_index("ix_product_translations_locale_slug")
        # migration-lint: ack M004 the constraint the models declare, after the backfill; its lock is one index build (--rehearse)
        batch_op.create_unique_constraint(batch_op.f("uq_product_translations_locale_slug"), ["locale", "slug"])


def downgrade() -> None:
    with op.batch_alter_table("product_translations") as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_product_translations_locale_slug"), type_="unique")
        batch_op.create_index("ix_product_translations_locale_slug", ["locale", "slug"])
        batch_op.alter_column("slug", existing_type=sa.String(140), nullable=True)
