"""`python -m bench --per-row`: the hand-written slug loop is right and its check catches
what is wrong; the suite's options; the slowest writes' wait events. Times are not
checked: they are the benchmark's business, not a test's."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import sqlalchemy as sa

from bench import perrow, report, rowloop, targets
from bench.cli import parse_args
from bench.measure import PER_ROW_METHODS
from bench.load import dsn
from tests.conftest import POSTGRES_ADMIN_URL
from tests.processes import ROOT, subprocess_env


def test_per_row_runs_its_own_methods_and_refuses_the_orders_ones(capsys):
    options = parse_args(["--per-row", "--smoke"])
    assert options.methods == list(PER_ROW_METHODS) and options.batch_size == 500 and not options.scaling
    assert parse_args(["--per-row", "--rows", "600000"]).batch_size == perrow.default_batch_size()
    with pytest.raises(SystemExit):
        parse_args(["--per-row", "--methods", "update,rowloop"])
    assert "unknown method(s) update" in capsys.readouterr().err


def test_the_slowest_writes_are_matched_to_the_samples_of_their_own_backend():
    # (kind, wall start, latency ms, from slot, slot, pid, backend cpu ms, backend run queue ms, thread run queue ms)
    statements = [("update", 100.0 + i, 2.0, 2.0, 100.0 + i, 11, 1.0, 0.5, 0.0) for i in range(150)]
    statements.append(("insert", 200.0, 250.0, 250.0, 200.0, 12, 20.0, 200.0, 1.0))  # the slowest
    statements.append(("update", 300.0, 90.0, 90.0, 300.0, 11, 5.0, 0.0, 0.0))  # second, never sampled
    activity = [(200.05, 12, "LWLock:WALWrite"), (200.1, 12, "CPU"), (200.2, 12, "LWLock:WALWrite"),
                (200.1, 11, "IO:DataFileRead"),  # another backend at that moment: not the slow write's
                (200.4, 12, "IO:WALSync")]  # after the slow write ended
    slow = report.slowest_writes(statements, activity)
    assert slow["count"] == 2 and slow["max_ms"] == 250.0 and slow["from_ms"] == 90.0
    assert slow["samples"] == {"LWLock:WALWrite": 2, "CPU": 1}
    assert slow["writes_seen_in"] == {"LWLock:WALWrite": 1, "CPU": 1}
    assert slow["not_sampled"] == 1
    assert slow["backend_runq_ms_sum"] == 200.0 and slow["latency_ms_sum"] == 340.0
    assert report.slowest_writes([], activity) is None


def test_per_row_targets_compare_ours_with_the_hand_written_loop():
    def result(method, rows_per_s):
        return {"method": method, "rows_per_s": rows_per_s, "txn": {"p99": 120.0},
                "load": {"p99": 5.0, "max_blocked_ms": 0.0}}

    by_name = {t["target"]: t for t in targets.evaluate_per_row_targets(
        [result("rowloop", 30_000.0), result("rowinprocess", 21_000.0)])}
    [ratio] = [t for name, t in by_name.items() if name.startswith("ours in-process, one lane")]
    assert (ratio["measured"], ratio["status"]) == ("0.70x", "missed")
    [rate] = [t for name, t in by_name.items() if name.startswith("ours in-process >= 20,000")]
    assert rate["status"] == "met"
    # With two lanes measured, the rate target is theirs (the in-process default here).
    by_name = {t["target"]: t for t in targets.evaluate_per_row_targets(
        [result("rowloop", 5_000.0), result("rowinprocess", 13_000.0), result("rowinprocess2", 19_000.0)])}
    [rate] = [t for name, t in by_name.items() if name.startswith("ours in-process >= 20,000")]
    assert (rate["measured"], rate["status"]) == ("19,000 rows/s (rowinprocess2)", "missed")


def test_the_hand_written_loop_picks_unique_slugs_and_the_check_catches_wrong_ones(postgres_available):
    from backend.migrations.safety.databases import create_scratch_database, drop_scratch_database

    url = create_scratch_database(POSTGRES_ADMIN_URL, "benchperrow")
    try:
        dataset = perrow.prepare(url, 1_500, seed=3)
        perrow.reset(dataset, 500, checkpoint=False)
        assert perrow.verify(dataset)["still_null"] == dataset.translations
        done = rowloop.run(dsn(url), page_size=200)
        assert done["rows"] == dataset.translations and len(done["txn_ms"]) == -(-dataset.translations // 200)
        check = perrow.verify(dataset)
        assert check["correct"], check
        engine = sa.create_engine(url)
        with engine.begin() as connection:
            shared = connection.execute(sa.text(
                "SELECT count(*) FROM product_translations WHERE slug ~ '-[0-9]+$'")).scalar_one()
            assert shared > 0  # the generated names collide, so suffixes were needed
            first, second = connection.execute(sa.text(
                "SELECT id, slug FROM product_translations WHERE locale = 'en' ORDER BY id LIMIT 2")).all()
            connection.execute(sa.text("UPDATE product_translations SET slug = :slug WHERE id = :id"),
                               {"slug": first.slug, "id": second.id})
        assert perrow.verify(dataset)["duplicates"] == 1 and not perrow.verify(dataset)["correct"]
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE product_translations SET slug = 'not-its-name-7' WHERE id = :id"),
                               {"id": second.id})
        assert perrow.verify(dataset)["wrong"] == 1
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE product_translations SET slug = NULL WHERE id = :id"), {"id": second.id})
        assert perrow.verify(dataset)["still_null"] == 1
        engine.dispose()
    finally:
        drop_scratch_database(url)


@pytest.mark.timeout(150)
def test_per_row_smoke_run_is_correct_in_process_and_by_the_loop(postgres_available, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--per-row", "--smoke", "--methods", "rowloop,rowinprocess",
         "--output-dir", str(tmp_path), "--database-url", POSTGRES_ADMIN_URL],
        cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=140,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(next(tmp_path.glob("*-perrow-smoke.json")).read_text())
    assert [m["method"] for m in results["methods"]] == ["rowloop", "rowinprocess"]
    for method in results["methods"]:
        assert method["check"]["correct"], method["check"]
        assert method["check"]["checked"] == results["dataset"]["translations"] == method["rows"]
    ours = results["methods"][1]
    assert ours["run"]["status"] == "completed" and ours["run"]["rows_done"] == results["dataset"]["translations"]
    assert results["methods"][0]["ratio_to_rowloop"] == 1.0
    table = next(tmp_path.glob("*-perrow-smoke.md")).read_text()
    assert "hand-written psycopg2 loop" in table and "vs hand loop" in table and "slowest writes" in table


@pytest.mark.timeout(150)
def test_the_id_suffixed_slugs_run_in_two_lanes_and_their_check_is_exact(postgres_available, tmp_path):
    """The N-lane figure's backfill (bench.idslugs): its runs may use every lane, and its
    check wants each slug to be exactly the base with the product id."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--per-row", "--smoke", "--methods", "rowinprocess,rowidslugs1,rowidslugs2",
         "--output-dir", str(tmp_path), "--database-url", POSTGRES_ADMIN_URL, "--keep-database"],
        cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=140,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(next(tmp_path.glob("*-perrow-smoke.json")).read_text())
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + results["dataset"]["database"]
    try:
        by_method = {m["method"]: m for m in results["methods"]}
        for method in ("rowidslugs1", "rowidslugs2"):
            assert by_method[method]["check"]["correct"], by_method[method]["check"]
            assert by_method[method]["run"]["max_parallel"] == 4
        dataset = perrow.RowDataset(url=url, translations=results["dataset"]["translations"], orders=0, items=0,
                                    base_max_order_id=0, generate_s=0, prepare_s=0)
        assert perrow.verify(dataset, "rowidslugs2")["correct"]  # the last method's slugs are still there
        engine = sa.create_engine(url)
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE product_translations SET slug = slug || '0' WHERE id = "
                                       "(SELECT min(id) FROM product_translations)"))
        engine.dispose()
        assert perrow.verify(dataset, "rowidslugs2")["wrong"] == 1
    finally:
        from backend.migrations.safety.databases import drop_scratch_database

        drop_scratch_database(url)
