"""Everything Alembic's autogenerate compares against: the shop's models and the
backfill engine's own state tables."""
from backend.backfill.state import metadata as backfill_metadata
from backend.models import Base

target_metadata = [Base.metadata, backfill_metadata]
