"""M009 acknowledged: a read that only decides how to report"""
import sqlalchemy as sa
from alembic import op

revision = "m009_data_dependent_acked"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("exchange_rate", sa.Numeric(12, 6), nullable=True))
    # migration-lint: ack M009 only logs how many rows the backfill will have; the schema change is unconditional
    rows = op.get_bind().execute(sa.text("SELECT count(*) FROM orders")).scalar()  # finding: M009
    print(f"exchange_rate: {rows} orders to fill")


def downgrade() -> None:
    op.drop_column("orders", "exchange_rate")
