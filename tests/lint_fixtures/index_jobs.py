"""An index and a constraint validation scheduled as jobs (backend.migrations.index_jobs),
and a later gate on them, however imported: clean (the index is built concurrently
by the job, so no M004; the constraint is added NOT VALID, an instant lock)"""
import sqlalchemy as sa
from alembic import op

from backend.migrations import index_jobs
from backend.migrations.index_jobs import require_index, schedule_index, schedule_validation, unschedule_index
from backend.migrations.index_jobs import unschedule_validation

revision = "index_jobs"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    schedule_index("ix_orders_placed_at", "orders", ["placed_at"], revision=revision)
    index_jobs.schedule_index("ix_orders_open", "orders", ["user_id"], where="status = 'open'", revision=revision)
    op.create_check_constraint("ck_orders_total_positive", "orders", sa.text("total_cents >= 0"),
                               postgresql_not_valid=True)
    schedule_validation("orders", "ck_orders_total_positive", revision=revision)
    require_index("ix_orders_placed_at", revision=revision)


def downgrade() -> None:
    unschedule_validation("orders", "ck_orders_total_positive")
    op.drop_constraint("ck_orders_total_positive", "orders", type_="check")
    index_jobs.unschedule_index("ix_orders_open", "orders")
    unschedule_index("ix_orders_placed_at", "orders")
