"""Schema management: the migration lock, the metadata Alembic compares, and the
programmatic upgrade used by run.py and run_migrations.py."""
