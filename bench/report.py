"""Numbers to report: percentiles, the Markdown table, the JSON and the chart (the
targets, met or missed, are in targets.py)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

LABELS = {
    "update": "1. single UPDATE",
    "orm": "2. ORM loop",
    "offset": "3. LIMIT/OFFSET pages",
    "inprocess": "4. ours, in-process",
    "celery1": "5. ours, Celery 1 worker",
    "celery2": "5. ours, Celery 2 workers",
    "rowloop": "1. hand-written psycopg2 loop",
    "rowinprocess": "2. ours, in-process, 1 lane",
    "rowinprocess2": "3. ours, in-process, 2 lanes",
    "rowcelery1": "4. ours, Celery 1 worker",
    "rowidslugs1": "5. ours, in-process, 1 lane, id-suffixed slugs (no collision search)",
    "rowidslugs2": "6. ours, in-process, 2 lanes, id-suffixed slugs (no collision search)",
}
OURS = ("inprocess", "celery1", "celery2", "rowinprocess", "rowinprocess2", "rowcelery1", "rowidslugs1", "rowidslugs2")
SLOWEST_SHARE = 0.01  # the slowest 1% of the writes get their wait events reported

def reference_method(per_row: bool) -> str:
    """The method the others' rows/s are compared with."""
    return "rowloop" if per_row else "update"


def ratio(r: dict) -> float | None:
    return r.get("ratio_to_update", r.get("ratio_to_rowloop"))


def percentile(values: Iterable[float], p: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(math.ceil(p / 100 * len(ordered)), 1)
    return ordered[min(rank, len(ordered)) - 1]


def summary(values: list[float] | None) -> dict[str, Any] | None:
    if not values:
        return None
    return {"count": len(values), "p50": percentile(values, 50), "p99": percentile(values, 99), "max": max(values)}


def load_summary(load: dict, window: tuple[float, float]) -> dict[str, Any]:
    """The concurrent load's statements that started inside the method's window, and
    the lock waits of statements that started inside it."""
    start, end = window
    inside = [s for s in load["statements"] if start <= s[1] <= end]
    latencies = [s[2] for s in inside]
    waits = [w for w in load["lock_waits"] if start <= w[1] <= end]
    by_kind = {kind: summary([s[2] for s in inside if s[0] == kind]) for kind in ("update", "insert")}
    result = summary(latencies) or {"count": 0, "p50": None, "p99": None, "max": None}
    other_waits: dict[str, int] = {}
    for t, event in load.get("waits", []):
        if start <= t <= end:
            other_waits[event] = other_waits.get(event, 0) + 1
    result.update(
        by_kind=by_kind,
        # by when they were due: those queued behind a blocked statement ran after the window
        from_schedule=summary([s[3] for s in load["statements"] if start <= s[4] <= end]),
        max_blocked_ms=max((w[2] for w in waits), default=0.0),
        blocked_statements=len(waits),
        other_wait_samples=dict(sorted(other_waits.items(), key=lambda kv: -kv[1])),
        slowest=slowest_writes(inside, load.get("activity", [])),
        sample_ms=load["sample_ms"],
        errors=load.get("errors", []),
    )
    return result


def slowest_writes(statements: list, activity: list, share: float = SLOWEST_SHARE) -> dict | None:
    """What the slowest `share` of the writes were seen doing: each sample of
    pg_stat_activity taken while one of them ran on its backend (a wait event, or none:
    on the CPU), counted per event and per write; and their time on the run queue (the
    backend's and the load thread's, when recorded), which no wait event shows."""
    if not statements:
        return None
    count = max(1, math.ceil(len(statements) * share))
    slow = sorted(statements, key=lambda s: -s[2])[:count]
    by_pid: dict[int, list[tuple[float, str]]] = {}
    for t, pid, event in activity:
        by_pid.setdefault(pid, []).append((t, event))
    samples: dict[str, int] = {}
    writes_in: dict[str, int] = {}
    not_sampled = 0
    for s in slow:
        if len(s) < 6:
            not_sampled += 1
            continue
        start, end = s[1], s[1] + s[2] / 1000
        seen = [event for t, event in by_pid.get(s[5], []) if start <= t <= end]
        if not seen:
            not_sampled += 1
        for event in seen:
            samples[event] = samples.get(event, 0) + 1
        for event in set(seen):
            writes_in[event] = writes_in.get(event, 0) + 1
    timed = [s for s in slow if len(s) >= 9]
    return {"count": count, "from_ms": slow[-1][2], "max_ms": slow[0][2],
            "latency_ms_sum": sum(s[2] for s in slow),
            "samples": dict(sorted(samples.items(), key=lambda kv: -kv[1])),
            "writes_seen_in": dict(sorted(writes_in.items(), key=lambda kv: -kv[1])),
            "not_sampled": not_sampled,
            "backend_cpu_ms_sum": sum(s[6] for s in timed) if timed else None,
            "backend_runq_ms_sum": sum(s[7] for s in timed) if timed else None,
            "client_runq_ms_sum": sum(s[8] for s in timed) if timed else None}


def _slowest_line(r: dict) -> str:
    slow = r["load"].get("slowest")
    if not slow:
        return f"| {LABELS[r['method']]} | – | – | – | – |"
    total = sum(slow["samples"].values())
    events = ", ".join(f"{event} {n / total:.0%} ({slow['writes_seen_in'][event]} writes)"
                       for event, n in slow["samples"].items()) or "none sampled"
    if slow["not_sampled"]:
        events += f"; {slow['not_sampled']} not sampled"
    queue = "–"
    if slow.get("backend_runq_ms_sum") is not None:
        queue = (f"{slow['backend_cpu_ms_sum']:,.0f} / {slow['backend_runq_ms_sum']:,.0f} / "
                 f"{slow['client_runq_ms_sum']:,.0f} of {slow['latency_ms_sum']:,.0f}")
    return (f"| {LABELS[r['method']]} | {slow['count']} ({fmt(slow['from_ms'], 1)}–{fmt(slow['max_ms'], 0)}) | "
            f"{events} | {queue} | {r['load']['max_blocked_ms']:,.0f} |")


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _ms_triplet(stats: dict | None) -> str:
    if not stats:
        return "–"
    digits = 1 if stats["max"] is not None and stats["max"] < 10 else 0
    return " / ".join(fmt(stats[k], digits) for k in ("p50", "p99", "max"))


def update_step(a: dict, b: dict) -> str:
    """The single UPDATE's own step between two scaling sizes: what the database does."""
    if not (a.get("update_wall_s") and b.get("update_wall_s")):
        return ""
    return f" (single UPDATE x{b['update_wall_s'] / a['update_wall_s']:.1f})"


def _wall(r: dict) -> str:
    """The wall time; with --repeat, the median run's and the range of all runs."""
    walls = [run["wall_s"] for run in r.get("repeats", [])]
    if len(walls) < 2:
        return f"{r['wall_s']:.2f}"
    return f"{r['wall_s']:.2f} ({min(walls):.2f}–{max(walls):.2f})"


def rows_label(rows: int) -> str:
    if rows >= 1_000_000 and rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}M"
    if rows >= 1000 and rows % 1000 == 0:
        return f"{rows // 1000}k"
    return f"{rows:,}"


def markdown(report: dict) -> str:
    config, machine, dataset = report["config"], report["machine"], report["dataset"]
    per_row = config.get("per_row", False)
    if per_row:
        title = (f"## Per-row backfill benchmark: {config.get('backfill')}, {dataset.get('translations', 0):,} "
                 f"translations ({dataset.get('products', 0):,} products; {dataset['orders']:,} orders for the load)")
        pages = "pages of the hand-written loop too"
    else:
        title = f"## Backfill benchmark: orders_total_cents, {dataset['orders']:,} orders ({dataset['items']:,} items)"
        pages = "pages of the ORM and OFFSET methods too"
    changed = machine.get("engine_files_changed_since_commit") or []
    lines = [
        title,
        "",
        f"{report['date']} · {machine['nproc']} cores ({machine['cpu']}), {machine['ram_gb']} GB RAM, "
        f"`{machine['arch']}`, PostgreSQL {machine['postgresql']}, Python {machine['python']} · "
        f"batch size {config['batch_size']} ({pages}) · concurrent load "
        f"{config['load_rate']:g} writes/s · shared machine: timings are noisy.",
        "",
        f"Commit {machine.get('commit')}"
        + (f" (with uncommitted changes to {', '.join(changed)})" if changed else "")
        + (f" · `{config['command']}`" if config.get("command") else ""),
        "",
        f"| method | wall (s) | rows/s | {'vs hand loop' if per_row else 'vs UPDATE'} | txn p50 / p99 / max (ms) | txns | peak RSS (MB) "
        "| writes p50 / p99 / max (ms) | writes p99 from schedule (ms) | longest blocked (ms) | correct |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in report["methods"]:
        txn = r.get("txn")
        lines.append(
            f"| {LABELS[r['method']]} | {_wall(r)} | {r['rows_per_s']:,.0f} | "
            f"{fmt(ratio(r), 2)}{'x' if ratio(r) is not None else ''} | "
            f"{_ms_triplet(txn)} | {txn['count'] if txn else '–'} | {fmt(r['peak_rss_kb'] / 1024)} | "
            f"{_ms_triplet(r['load'])} | {fmt((r['load'].get('from_schedule') or {}).get('p99'))} | "
            f"{r['load']['max_blocked_ms']:,.0f} | "
            f"{'yes' if r['check']['correct'] else 'NO'} |"
        )
    lines += ["", "1-minute load average of the machine before each method (2 cores shared with other work): "
              + ", ".join(f"{r['method']} {r['loadavg_before'][0]:.1f}" for r in report["methods"]) + "."]
    varied = [f"{r['method']} {r['run']['batch_sizes']['min']}-{r['run']['batch_sizes']['max']}"
              for r in report["methods"] if r.get("run") and r["run"]["batch_sizes"]["min"] is not None
              and (r["run"]["batch_sizes"]["min"], r["run"]["batch_sizes"]["max"]) != (config["batch_size"],) * 2]
    if varied:
        lines += ["", f"Batch sizes the engine chose (adaptive sizing on): {', '.join(varied)}."]
    if report.get("scaling"):
        base = report["scaling"][0]
        lines += ["", "Scaling, ours in-process (same load), with the single UPDATE on the same data when it ran"
                  + (f" (median of {config['repeat']} runs each, range in brackets)" if config.get("repeat", 1) > 1 else "")
                  + ":", "",
                  "| rows | wall (s) | rows/s | time vs first | peak RSS (MB) | single UPDATE (s) | ours vs UPDATE |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for p in report["scaling"]:
            update = p.get("update_wall_s")
            lines.append(f"| {p['rows']:,} | {_wall(p)} | {p['rows_per_s']:,.0f} | "
                         f"x{p['wall_s'] / base['wall_s']:.1f} | {p['peak_rss_kb'] / 1024:.0f} | "
                         f"{fmt(update, 2)} | {fmt(update / p['wall_s'] if update else None, 2)}"
                         f"{'x' if update else ''} |")
    lines += ["", f"The slowest {SLOWEST_SHARE:.0%} of the concurrent writes during each method (by statement "
              "latency): what pg_stat_activity showed their backend doing in the samples taken while they ran "
              "(a wait event, or CPU: active with none), and how much of their time their backend spent on "
              "the CPU and on the run queue, and the load's own thread on the run queue (/proc schedstat; a "
              "write that waited for a core shows there, not in a wait event):", "",
              "| method | slowest writes (n, ms) | seen in (share of samples, writes) "
              "| backend CPU / backend run queue / load thread run queue, of their total (ms) | longest blocked (ms) |",
              "| --- | ---: | --- | ---: | ---: |"]
    lines += [_slowest_line(r) for r in report["methods"]]
    lines += ["", "| target | measured | |", "| --- | --- | --- |"]
    for t in report["targets"]:
        mark = {"met": "met", "missed": "**missed**", "not measured": "not measured"}[t["status"]]
        lines.append(f"| {t['target']} | {t['measured']} | {mark} |")
    lines += [
        "",
        "Wall time is the work only (no interpreter start, no worker start): for Celery, from sending "
        "`start_run` to the run seen completed"
        + (f"; each method ran {config['repeat']} times, in rounds over all methods, and its row is its "
           "median run (the range of all its runs in brackets)" if config.get("repeat", 1) > 1 else "")
        + ". Transactions: ours from `backfill_batches.duration_ms` "
        "(the batch transaction up to, not including, COMMIT); the others timed around each commit. "
        "Peak RSS: VmHWM of the process doing the work (for Celery the largest pool process). Writes: "
        f"single-row status UPDATEs and order+items INSERTs at {config['load_rate']:g}/s from another "
        "process (one connection each, open loop), latency of each statement; from schedule: from the "
        "moment it was due, so the statements queued behind a blocked one count (coordinated omission); "
        f"blocked: longest lock wait seen in pg_stat_activity (sampled every {config['sample_ms']:g} ms).",
    ]
    return "\n".join(lines) + "\n"


def write_json(report: dict, path: Path) -> None:
    path.write_text(json.dumps(report, indent=1, default=str))
