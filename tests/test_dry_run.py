"""`--dry-run NAME` samples work still to do (issue 21): after a cancelled run, the
sample batches start at keys the pending filter still finds, not at ranges already
done (which cost nothing and gave "500,083 rows/s, 0m 00s")."""
from backend.backfill.estimate import dry_run
from tests.backfill_helpers import insert_rows, touch_service, touched


def test_the_sample_batches_cover_only_rows_still_pending(sqlite_url):
    service = touch_service(sqlite_url)
    insert_rows(service.engine, range(1, 41))
    with service.engine.begin() as connection:  # a cancelled run did ids 1-30
        connection.exec_driver_sql("UPDATE touch_rows SET touched = 1 WHERE id <= 30")
    seen = []
    backfill = service.catalog.get("test_touch_filtered")
    original = type(backfill).process
    type(backfill).process = lambda self, connection, key_range: seen.append(key_range) or original(
        self, connection, key_range)
    try:
        with service.engine.connect() as connection:
            report = dry_run(connection, backfill)  # batches of 7, 3 samples at most
    finally:
        type(backfill).process = original
    assert (report.rows_to_do, report.sample_batches, report.sample_rows) == (10, 2, 10)
    assert [(r.start, r.end) for r in seen] == [(31, 37), (38, 40)]
    assert set(touched(service.engine).values()) == {1, 0}  # rolled back: still 30 done, 10 to do
    assert sum(touched(service.engine).values()) == 30
    service.engine.dispose()


def test_nothing_pending_means_no_sample(sqlite_url):
    service = touch_service(sqlite_url)
    insert_rows(service.engine, range(1, 11))
    with service.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE touch_rows SET touched = 1")
    report, _plan = service.dry_run("test_touch_filtered")
    assert (report.rows_to_do, report.sample_batches, report.rows_per_second) == (0, 0, None)
    service.engine.dispose()
