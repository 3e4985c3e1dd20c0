"""`python -m bench.upgrade`: how long the shop's statements stall while a PostgreSQL
shop is upgraded from 0002_backfill_state to head with `run_migrations.py --batched`,
per revision and per backfill (the number an online migration has to keep small)."""
