"""Schema migrations: the Alembic glue (env.py's helpers, the programmatic upgrade),
the schema lock and its lock-timeout retries, the online schema helpers revisions
use, `--batched` orchestration, offline SQL, and rehearsal/backup (safety/)."""
