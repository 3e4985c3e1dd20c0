"""The methods that run in a process of their own: `python -m bench.methods NAME`.

Each one fills orders.total_cents on the database at `--url` and prints one JSON
line: its wall-clock window, its duration (the work only: not the interpreter's
start nor the imports), the duration of each of its transactions (the engine's own
are read from backfill_batches by the caller) and the process's peak memory.

One process per method so that each has its own peak: VmHWM from /proc/self/status
(the high-water mark of this process's memory); `ru_maxrss` is reported too, but on
Linux it carries over the parent's peak across fork/exec, so it is not the primary.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from typing import Callable

import sqlalchemy as sa

from backend.db import create_db_engine

# Exactly what `op.execute(...)` in an Alembic revision would run, and the same
# per-row expression as the orders_total_cents backfill, over the whole table.
SINGLE_UPDATE = sa.text(
    "UPDATE orders SET total_cents = "
    "(SELECT COALESCE(SUM(quantity::bigint * unit_price_cents), 0) FROM order_items WHERE order_items.order_id = orders.id)"
)
PAGE_IDS = sa.text("SELECT id FROM orders ORDER BY id LIMIT :limit OFFSET :offset")
PAGE_UPDATE = sa.text(
    "UPDATE orders SET total_cents = "
    "(SELECT COALESCE(SUM(quantity::bigint * unit_price_cents), 0) FROM order_items WHERE order_items.order_id = orders.id) "
    "WHERE id = ANY(:ids)"
)


def single_update(engine: sa.Engine, batch_size: int, run_id: int | None) -> dict:
    """1. One set-based UPDATE over the whole table, one transaction."""
    started = time.perf_counter()
    with engine.begin() as connection:
        rows = connection.execute(SINGLE_UPDATE).rowcount
    return {"rows": rows, "txn_ms": [(time.perf_counter() - started) * 1000]}


def orm_loop(engine: sa.Engine, batch_size: int, run_id: int | None) -> dict:
    """2. The ORM loop people write: load a page of Order objects (keyset on id, the
    items eager-loaded so there is no N+1), set the attribute in Python, commit
    every `batch_size` orders."""
    from sqlalchemy.orm import Session, selectinload

    from bench.orm import Order

    txn_ms: list[float] = []
    rows = 0
    with Session(engine) as session:
        last_id = 0
        while True:
            started = time.perf_counter()
            orders = session.scalars(
                sa.select(Order).where(Order.id > last_id).order_by(Order.id).limit(batch_size)
                .options(selectinload(Order.items))
            ).all()
            if not orders:
                session.rollback()
                break
            for order in orders:
                order.total_cents = sum(item.quantity * item.unit_price_cents for item in order.items)
            last_id = orders[-1].id
            session.commit()
            txn_ms.append((time.perf_counter() - started) * 1000)
            rows += len(orders)
    return {"rows": rows, "txn_ms": txn_ms}


def offset_paging(engine: sa.Engine, batch_size: int, run_id: int | None) -> dict:
    """3. LIMIT/OFFSET paging: read a page of ids, update them, commit; next page."""
    txn_ms: list[float] = []
    rows = offset = 0
    while True:
        started = time.perf_counter()
        with engine.begin() as connection:
            ids = connection.execute(PAGE_IDS, {"limit": batch_size, "offset": offset}).scalars().all()
            if ids:
                rows += connection.execute(PAGE_UPDATE, {"ids": ids}).rowcount
        if not ids:
            break
        txn_ms.append((time.perf_counter() - started) * 1000)
        offset += batch_size
    return {"rows": rows, "txn_ms": txn_ms}


def in_process(engine: sa.Engine, batch_size: int, run_id: int | None) -> dict:
    """4. This project in-process: run_in_process over a BackfillService, as shipped
    (the batch size is the run row's, set by the caller)."""
    from backend.backfill.registry import load_catalog
    from backend.backfill.inprocess import run_in_process
    from backend.backfill.service import BackfillService

    if run_id is None:
        raise SystemExit("inprocess needs --run-id")
    service = BackfillService(engine, load_catalog())
    progress = run_in_process(service, run_id)
    return {"rows": progress.rows_done, "status": progress.status, "last_error": progress.last_error,
            "txn_ms": None}


def row_loop(engine: sa.Engine, batch_size: int, run_id: int | None) -> dict:
    """Per-row suite, the peer: the slug backfill hand-written with psycopg2 (bench.rowloop)."""
    from bench import rowloop
    from bench.load import dsn

    return rowloop.run(dsn(engine.url.render_as_string(hide_password=False), "bench-rowloop"), batch_size)


def row_in_process(lanes: int) -> Callable[[sa.Engine, int, int | None], dict]:
    """Per-row suite: ours in-process on the translation_slugs run, in `lanes` lanes
    (BACKFILL_INPROCESS_LANES; the backfill's max_parallel is 2)."""
    def run(engine: sa.Engine, batch_size: int, run_id: int | None) -> dict:
        os.environ["BACKFILL_INPROCESS_LANES"] = str(lanes)
        return in_process(engine, batch_size, run_id)

    return run


def row_id_slugs(lanes: int) -> Callable[[sa.Engine, int, int | None], dict]:
    """Per-row suite, the N-lane figure: ours in-process on bench.idslugs (the same rows,
    no collision search, so its batches may run side by side) in `lanes` lanes."""
    def run(engine: sa.Engine, batch_size: int, run_id: int | None) -> dict:
        os.environ["BACKFILL_INPROCESS_LANES"] = str(lanes)
        return in_process(engine, batch_size, run_id)

    return run


METHODS: dict[str, Callable[[sa.Engine, int, int | None], dict]] = {
    "update": single_update,
    "orm": orm_loop,
    "offset": offset_paging,
    "inprocess": in_process,
    "rowloop": row_loop,
    "rowinprocess": row_in_process(1),
    "rowinprocess2": row_in_process(2),
    "rowidslugs1": row_id_slugs(1),
    "rowidslugs2": row_id_slugs(2),
}


def vm_hwm_kb(pid: int | str = "self") -> int | None:
    """The peak resident memory of a process (Linux), in KiB."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run one benchmark method and print its numbers as JSON")
    parser.add_argument("method", choices=sorted(METHODS))
    parser.add_argument("--url", required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--run-id", type=int)
    args = parser.parse_args(argv)

    if args.method in ("inprocess", "rowinprocess", "rowinprocess2", "rowidslugs1", "rowidslugs2"):  # before the clock starts
        from backend.backfill.registry import load_catalog
        from backend.backfill.inprocess import run_in_process  # noqa: F401
        from bench import idslugs

        load_catalog()
        if args.method.startswith("rowidslugs"):
            idslugs.register()
    elif args.method == "rowloop":
        import bench.rowloop  # noqa: F401  (unidecode's tables load on first use: warm them)
        from backend.text import slugify

        slugify("Größe", "de")
    elif args.method == "orm":
        from sqlalchemy.orm import configure_mappers

        import bench.orm  # noqa: F401

        configure_mappers()
    engine = create_db_engine(args.url)
    with engine.connect() as connection:  # connect before the clock starts, as a long-lived script would be
        connection.execute(sa.text("SELECT 1"))
    wall_start, started = time.time(), time.perf_counter()
    result = METHODS[args.method](engine, args.batch_size, args.run_id)
    wall_s = time.perf_counter() - started
    result.update(
        method=args.method, wall_start=wall_start, wall_end=time.time(), wall_s=wall_s,
        peak_rss_kb=vm_hwm_kb(), ru_maxrss_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    )
    engine.dispose()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
