"""The benchmark's scratch database: created on the server of `--database-url`,
built the way production gets there, reset between methods, checked, dropped.

Built like a real upgrade: the foundation schema (revision 0002), generated shop data,
then revision 0003 adds the nullable orders.total_cents and schedules the run. The
expected totals are computed once, with a join and GROUP BY (not the backfill's
statement), into bench_expected.

Between methods: the orders (and items) the concurrent load inserted are deleted,
total_cents goes back to NULL, the engine's runs, batches and transitions are
emptied and one pending run is scheduled again with the benchmark's batch size,
then VACUUM FULL rewrites orders packed as the generator left it (no free space, so
no method gets HOT updates that another did not) and ANALYZE, and a CHECKPOINT
(when allowed) so that no method pays for the previous one's dirty pages.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa

from backend.backfill import runs
from backend.backfill.registry import load_catalog
from backend.backfill.model import Run
from backend.backfill.state import backfill_batches, backfill_runs
from backend.datagen import generate
from backend.db import create_db_engine
from backend.migrations.alembic_api import upgrade

BACKFILL = "orders_total_cents"
FOUNDATION = "0002_backfill_state"
EXPAND = "0003_orders_total_cents"


def default_batch_size() -> int:
    """The shipped backfill's own starting batch size."""
    return load_catalog().get(BACKFILL).batch_size


def dataset_shape(orders: int) -> dict[str, int]:
    """Users and products for `orders` orders: enough that they are not all hot rows."""
    return {"users": min(max(orders // 50, 100), 20_000), "products": min(max(orders // 500, 50), 2_000)}


@dataclass
class Dataset:
    url: str
    orders: int
    items: int
    base_max_order_id: int
    generate_s: float
    prepare_s: float

    @property
    def rows(self) -> int:
        """The rows the backfill processes."""
        return self.orders


def prepare(url: str, orders: int, seed: int) -> Dataset:
    """Foundation schema, generated data, then the expand revision; expected totals."""
    started = time.perf_counter()
    upgrade(url, FOUNDATION)
    summary = generate(url, orders=orders, seed=seed, **dataset_shape(orders))
    upgrade(url, EXPAND)
    engine = create_db_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(
                "CREATE TABLE bench_expected AS "
                "SELECT o.id AS order_id, COALESCE(SUM(i.quantity::bigint * i.unit_price_cents), 0)::bigint AS total "
                "FROM orders o LEFT JOIN order_items i ON i.order_id = o.id GROUP BY o.id"
            ))
            connection.execute(sa.text("ALTER TABLE bench_expected ADD PRIMARY KEY (order_id)"))
            base_max = expanded_shop(connection, BACKFILL, EXPAND)
    finally:
        engine.dispose()
    return Dataset(url=url, orders=summary.orders, items=summary.items, base_max_order_id=base_max,
                   generate_s=summary.seconds, prepare_s=time.perf_counter() - started)


def expanded_shop(connection, backfill: str, revision: str) -> int:
    """After the expand revision: check it scheduled exactly one run of `backfill`;
    return the highest generated order id (the load's orders come above it)."""
    scheduled = connection.execute(
        sa.select(sa.func.count()).select_from(backfill_runs).where(backfill_runs.c.name == backfill)
    ).scalar_one()
    if scheduled != 1:
        raise RuntimeError(f"revision {revision} should have scheduled one {backfill} run, found {scheduled}")
    return int(connection.execute(sa.text("SELECT COALESCE(max(id), 0) FROM orders")).scalar_one())


def reset_scratch(url: str, base_max_order_id: int, *, backfill: str, revision: str, batch_size: int,
                  clear_sql: str, repack: tuple[str, ...], analyze: tuple[str, ...], checkpoint: bool) -> int:
    """Back to the state right after `revision`: the load's orders gone, the backfilled
    column cleared (`clear_sql`), one pending run of `backfill`, the tables repacked
    and analysed, a CHECKPOINT; returns the run's id."""
    definition = load_catalog().get(backfill)
    engine = create_db_engine(url)
    try:
        with engine.begin() as connection:
            base = {"base": base_max_order_id}
            connection.execute(sa.text("DELETE FROM order_items WHERE order_id > :base"), base)
            connection.execute(sa.text("DELETE FROM orders WHERE id > :base"), base)
            connection.execute(sa.text(clear_sql))
            connection.execute(sa.text(
                "TRUNCATE backfill_transitions, backfill_batches, backfill_runs RESTART IDENTITY"
            ))
            run_id = runs.create_run(connection, backfill, batch_size=batch_size,
                                     max_parallel=definition.max_parallel, key_type=definition.key_type,
                                     scheduled_by=revision)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for table in repack:
                connection.execute(sa.text(f"VACUUM FULL {table}"))
            connection.execute(sa.text(f"VACUUM ANALYZE {', '.join(analyze)}"))
            if checkpoint:
                try:
                    connection.execute(sa.text("CHECKPOINT"))
                except sa.exc.DBAPIError:
                    pass  # needs superuser (or pg_checkpoint): the reset is still valid without it
    finally:
        engine.dispose()
    return run_id


def reset(dataset: Dataset, batch_size: int, *, checkpoint: bool = True, method: str | None = None) -> int:
    """Back to the state right after the expand revision; returns the pending run's id
    (every method of this suite runs the one backfill: `method` is for bench.perrow's)."""
    return reset_scratch(dataset.url, dataset.base_max_order_id, backfill=BACKFILL, revision=EXPAND,
                         batch_size=batch_size,
                         clear_sql="UPDATE orders SET total_cents = NULL WHERE total_cents IS NOT NULL",
                         repack=("orders",), analyze=("orders", "order_items"), checkpoint=checkpoint)


def verify(dataset: Dataset, method: str | None = None) -> dict:
    """Every generated order has its expected total; orders added by the concurrent
    load have theirs right too; nothing is left NULL."""
    engine = create_db_engine(dataset.url)
    try:
        with engine.connect() as connection:
            checked, wrong = connection.execute(sa.text(
                "SELECT count(*), count(*) FILTER (WHERE o.total_cents IS DISTINCT FROM e.total) "
                "FROM bench_expected e JOIN orders o ON o.id = e.order_id"
            )).one()
            added, added_wrong = connection.execute(sa.text(
                "SELECT count(*), count(*) FILTER (WHERE o.total_cents IS DISTINCT FROM "
                "(SELECT COALESCE(SUM(quantity::bigint * unit_price_cents), 0) FROM order_items i WHERE i.order_id = o.id)) "
                "FROM orders o WHERE o.id > :base"
            ), {"base": dataset.base_max_order_id}).one()
            still_null = connection.execute(sa.text("SELECT count(*) FROM orders WHERE total_cents IS NULL")).scalar_one()
    finally:
        engine.dispose()
    correct = checked == dataset.orders and wrong == 0 and added_wrong == 0 and still_null == 0
    return {"correct": bool(correct), "checked": int(checked), "wrong": int(wrong), "missing": int(dataset.orders - checked),
            "added_by_load": int(added), "added_wrong": int(added_wrong), "still_null": int(still_null)}


def run_row(url: str, run_id: int) -> Run:
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            return runs.get_run(connection, run_id)
    finally:
        engine.dispose()


def batches(url: str, run_id: int) -> list[dict]:
    """The engine's own record of each succeeded batch: its transaction's duration
    (claim excluded, COMMIT excluded), the batch size asked for, the keys it covered."""
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            return [dict(row) for row in connection.execute(
                sa.select(backfill_batches.c.duration_ms, backfill_batches.c.batch_size,
                          backfill_batches.c.rows_in_range)
                .where(backfill_batches.c.run_id == run_id, backfill_batches.c.duration_ms.is_not(None))
                .order_by(backfill_batches.c.seq)
            ).mappings()]
    finally:
        engine.dispose()


def server_version(url: str) -> str:
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text("SHOW server_version")).scalar_one()
    finally:
        engine.dispose()


def server_settings(url: str) -> dict[str, str]:
    names = ("shared_buffers", "work_mem", "max_wal_size", "synchronous_commit", "autovacuum", "jit")
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            return {name: connection.execute(sa.text(f"SHOW {name}")).scalar_one() for name in names}
    finally:
        engine.dispose()
