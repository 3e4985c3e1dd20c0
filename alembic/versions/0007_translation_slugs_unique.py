"""Contract: product_translations.slug NOT NULL and unique per locale, after its backfill

Revision ID: 0007_translation_slugs_unique
Revises: 0006_orders_total_not_null
Create Date: 2026-11-24 00:00:07

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from backend.migrations.backfill_ops import require_backfill
from backend.migrations.online import add_unique_constraint, create_index, drop_index, set_not_null

revision: str = "0007_translation_slugs_unique"
down_revision: Union[str, Sequence[str], None] = "0006_orders_total_not_null"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


TABLE = "product_translations"
UNIQUE = "uq_product_translations_locale_slug"
LOOKUP = "ix_product_translations_locale_slug"  # 0004's index, which the unique one replaces


def upgrade() -> None:
    require_backfill("translation_slugs", revision=revision)
    set_not_null(TABLE, "slug", existing_type=sa.String(140))
    add_unique_constraint(UNIQUE, TABLE, ["locale", "slug"])
    drop_index(LOOKUP, TABLE)


def downgrade() -> None:
    create_index(LOOKUP, TABLE, ["locale", "slug"])
    with op.batch_alter_table(TABLE) as batch_op:
        batch_op.drop_constraint(UNIQUE, type_="unique")
        batch_op.alter_column("slug", existing_type=sa.String(140), nullable=True)
