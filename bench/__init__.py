"""`python -m bench`: the orders_total_cents backfill done six ways on one PostgreSQL
database, under concurrent shop traffic (see docs/performance.md)."""
