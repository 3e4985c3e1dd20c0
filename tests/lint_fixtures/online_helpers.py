"""The helpers of backend.migrations.online, however imported: they build CONCURRENTLY (no
M004), but set_not_null still needs its gate (M003) and add_column a default for a NOT
NULL column (M002)"""
import sqlalchemy as sa
from alembic import op

import backend.migrations.online
from backend.migrations.backfill_ops import require_backfill
from backend.migrations import online
from backend.migrations.online import add_column, add_foreign_key, add_unique_constraint, create_index, drop_index
from backend.migrations.online import set_not_null as require_value

revision = "online_helpers"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    require_value("orders", "total_cents", existing_type=sa.BigInteger())  # finding: M003
    online.set_not_null(table="users", column="email_normalized", existing_type=sa.String(320))  # finding: M003
    add_column("users", sa.Column("nickname", sa.String(64), nullable=False))  # finding: M002
    online.add_column("users", sa.Column("tier", sa.String(16), nullable=False, server_default="basic"))
    create_index("ix_orders_created_at", "orders", ["created_at"])
    online.create_index("ix_orders_currency", "orders", ["currency"], unique=True)
    backend.migrations.online.create_index("ix_orders_status", table="orders", columns=["status"])
    add_unique_constraint("uq_users_email_normalized", "users", ["email_normalized"])
    add_foreign_key("fk_orders_user_id", "orders", "users", ["user_id"], ["id"])
    drop_index("ix_orders_placed_at", "orders")
    require_backfill("translation_slugs", revision=revision)
    online.set_not_null("product_translations", "slug", existing_type=sa.String(140))  # after the gate: fine


def downgrade() -> None:
    create_index("ix_orders_placed_at", "orders", ["placed_at"])
    op.drop_constraint("fk_orders_user_id", "orders", type_="foreignkey")
    op.drop_constraint("uq_users_email_normalized", "users", type_="unique")
    drop_index("ix_orders_status", "orders")
    drop_index("ix_orders_currency", "orders")
    drop_index("ix_orders_created_at", "orders")
    op.drop_column("users", "tier")
    op.drop_column("users", "nickname")
    op.alter_column("users", "email_normalized", existing_type=sa.String(320), nullable=True)
    op.alter_column("orders", "total_cents", existing_type=sa.BigInteger(), nullable=True)
