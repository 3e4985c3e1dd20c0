"""Numbers to report: percentiles, the targets (met / missed), the Markdown table,
the JSON and the chart."""
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
    "rowcelery1": "3. ours, Celery 1 worker",
    "rowidslugs1": "4. ours, in-process, 1 lane, id-suffixed slugs (no collision search)",
    "rowidslugs2": "5. ours, in-process, 2 lanes, id-suffixed slugs (no collision search)",
}
OURS = ("inprocess", "celery1", "celery2", "rowinprocess", "rowcelery1", "rowidslugs1", "rowidslugs2")
SLOWEST_SHARE = 0.01  # the slowest 1% of the writes get their wait events reported

# The targets; reported, never asserted by a timed test.
TARGET_INPROCESS_VS_UPDATE = 0.8
TARGET_BATCH_P99_MS = 200.0
TARGET_WRITE_P99_MS = 50.0
TARGET_CELERY1_VS_INPROCESS = 0.9
TARGET_TIME_PER_10X_ROWS = 11.0
TARGET_MEMORY_GROWTH = 1.10  # peak at the largest size <= 110% of the peak at the smallest
TARGET_ROW_VS_LOOP = 0.8  # --per-row: ours in-process, one lane, vs the hand-written loop
TARGET_ROW_RATE = 20_000  # --per-row: rows/s of ours on the slug backfill


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
    return (f"| {LABELS[r['method']]} | {slow['count']} ({_fmt(slow['from_ms'], 1)}–{_fmt(slow['max_ms'], 0)}) | "
            f"{events} | {queue} | {r['load']['max_blocked_ms']:,.0f} |")


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _ms_triplet(stats: dict | None) -> str:
    if not stats:
        return "–"
    digits = 1 if stats["max"] is not None and stats["max"] < 10 else 0
    return " / ".join(_fmt(stats[k], digits) for k in ("p50", "p99", "max"))


def _by_name(results: list[dict]) -> dict[str, dict]:
    return {r["method"]: r for r in results}


def evaluate_targets(results: list[dict], scaling: list[dict] | None) -> list[dict]:
    """Each target with the measured value and met / missed / not measured."""
    by = _by_name(results)
    targets: list[dict] = []

    def add(name: str, measured: str, ok: bool | None) -> None:
        targets.append({"target": name, "measured": measured,
                        "status": "not measured" if ok is None else ("met" if ok else "missed")})

    update, inproc, celery1 = by.get("update"), by.get("inprocess"), by.get("celery1")
    if update and inproc:
        ratio = inproc["rows_per_s"] / update["rows_per_s"]
        add(f"ours in-process >= {TARGET_INPROCESS_VS_UPDATE}x the single UPDATE's rows/s", f"{ratio:.2f}x",
            ratio >= TARGET_INPROCESS_VS_UPDATE)
    else:
        add(f"ours in-process >= {TARGET_INPROCESS_VS_UPDATE}x the single UPDATE's rows/s", "needs update and inprocess", None)

    ours = [by[name] for name in OURS if name in by]
    batch_p99 = [(r["method"], r["txn"]["p99"]) for r in ours if r.get("txn")]
    add(f"batch transactions p99 <= {TARGET_BATCH_P99_MS:g} ms",
        ", ".join(f"{name} {value:.0f} ms" for name, value in batch_p99) or "no batch of ours ran",
        all(v <= TARGET_BATCH_P99_MS for _, v in batch_p99) if batch_p99 else None)

    write_p99 = [(r["method"], r["load"]["p99"]) for r in ours if r["load"]["p99"] is not None]
    add(f"concurrent writes p99 < {TARGET_WRITE_P99_MS:g} ms during ours",
        ", ".join(f"{name} {value:.1f} ms" for name, value in write_p99) or "no write measured",
        all(v < TARGET_WRITE_P99_MS for _, v in write_p99) if write_p99 else None)

    blocked = [(r["method"], r["load"]["max_blocked_ms"], r["txn"]["max"] if r.get("txn") else 0.0) for r in ours]
    measured = ", ".join(f"{name} {b:.0f} ms blocked (longest batch {m:.0f} ms)" for name, b, m in blocked)
    if update:
        measured += (f"; single UPDATE: {update['load']['max_blocked_ms'] / 1000:.1f} s blocked "
                     f"of its {update['wall_s']:.1f} s")
    add("no write blocked longer than one batch (the single UPDATE blocks them for its duration)",
        measured or "not run", all(b <= m for _, b, m in blocked) if blocked else None)

    if celery1 and inproc:
        ratio = celery1["rows_per_s"] / inproc["rows_per_s"]
        add(f"Celery 1 worker >= {TARGET_CELERY1_VS_INPROCESS}x in-process", f"{ratio:.2f}x",
            ratio >= TARGET_CELERY1_VS_INPROCESS)
    else:
        add(f"Celery 1 worker >= {TARGET_CELERY1_VS_INPROCESS}x in-process", "needs celery1 and inprocess", None)

    points = sorted(scaling or [], key=lambda p: p["rows"])
    if len(points) >= 2:
        steps = [(b["wall_s"] / a["wall_s"]) / (b["rows"] / a["rows"]) * 10 for a, b in zip(points, points[1:])]
        text = ", ".join(f"{_rows_label(a['rows'])}->{_rows_label(b['rows'])}: x{b['wall_s'] / a['wall_s']:.1f} time "
                         f"for x{b['rows'] / a['rows']:.0f} rows{_update_step(a, b)}" for a, b in zip(points, points[1:]))
        add(f"10x the rows takes <= {TARGET_TIME_PER_10X_ROWS:g}x the time (in-process)", text,
            all(s <= TARGET_TIME_PER_10X_ROWS for s in steps))
        first, last = points[0], points[-1]
        growth = last["peak_rss_kb"] / first["peak_rss_kb"]
        add("worker memory flat with table size (in-process peak, largest vs smallest)",
            f"{first['peak_rss_kb'] / 1024:.0f} MB at {_rows_label(first['rows'])}, "
            f"{last['peak_rss_kb'] / 1024:.0f} MB at {_rows_label(last['rows'])} (x{growth:.2f})",
            growth <= TARGET_MEMORY_GROWTH)
    else:
        add(f"10x the rows takes <= {TARGET_TIME_PER_10X_ROWS:g}x the time (in-process)", "run with --scaling", None)
        add("worker memory flat with table size (in-process peak, largest vs smallest)", "run with --scaling", None)
    return targets


def evaluate_per_row_targets(results: list[dict]) -> list[dict]:
    """--per-row: ours against the hand-written loop, its rate, its batches, the writes."""
    by = _by_name(results)
    targets: list[dict] = []

    def add(name: str, measured: str, ok: bool | None) -> None:
        targets.append({"target": name, "measured": measured,
                        "status": "not measured" if ok is None else ("met" if ok else "missed")})

    loop, ours = by.get("rowloop"), by.get("rowinprocess")
    name = f"ours in-process, one lane >= {TARGET_ROW_VS_LOOP}x the hand-written loop's rows/s"
    if loop and ours:
        value = ours["rows_per_s"] / loop["rows_per_s"]
        add(name, f"{value:.2f}x", value >= TARGET_ROW_VS_LOOP)
    else:
        add(name, "needs rowloop and rowinprocess", None)
    add(f"ours in-process >= {TARGET_ROW_RATE:,} rows/s",
        f"{ours['rows_per_s']:,.0f} rows/s" if ours else "needs rowinprocess",
        ours["rows_per_s"] >= TARGET_ROW_RATE if ours else None)
    mine = [by[m] for m in OURS if m in by]
    batch_p99 = [(r["method"], r["txn"]["p99"]) for r in mine if r.get("txn")]
    add(f"batch transactions p99 <= {TARGET_BATCH_P99_MS:g} ms",
        ", ".join(f"{n} {v:.0f} ms" for n, v in batch_p99) or "no batch of ours ran",
        all(v <= TARGET_BATCH_P99_MS for _, v in batch_p99) if batch_p99 else None)
    write_p99 = [(r["method"], r["load"]["p99"]) for r in mine if r["load"]["p99"] is not None]
    add(f"concurrent writes p99 < {TARGET_WRITE_P99_MS:g} ms during ours",
        ", ".join(f"{n} {v:.1f} ms" for n, v in write_p99) or "no write measured",
        all(v < TARGET_WRITE_P99_MS for _, v in write_p99) if write_p99 else None)
    return targets


def _update_step(a: dict, b: dict) -> str:
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


def _rows_label(rows: int) -> str:
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
            f"{_fmt(ratio(r), 2)}{'x' if ratio(r) is not None else ''} | "
            f"{_ms_triplet(txn)} | {txn['count'] if txn else '–'} | {_fmt(r['peak_rss_kb'] / 1024)} | "
            f"{_ms_triplet(r['load'])} | {_fmt((r['load'].get('from_schedule') or {}).get('p99'))} | "
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
                         f"{_fmt(update, 2)} | {_fmt(update / p['wall_s'] if update else None, 2)}"
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


def chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = report["methods"]
    labels = [LABELS[r["method"]] for r in methods]
    colors = ["#4c72b0" if r["method"] in OURS else "#8c8c8c" for r in methods]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 0.6 * len(methods) + 2.2), sharey=True)
    y = range(len(methods))
    left.barh(y, [r["rows_per_s"] for r in methods], color=colors)
    left.set_yticks(list(y), labels)
    left.invert_yaxis()
    left.set_xlabel("rows/s (higher is better)")
    per_row = report["config"].get("per_row", False)
    update = next((r for r in methods if r["method"] == reference_method(per_row)), None)
    if update:
        share = TARGET_ROW_VS_LOOP if per_row else TARGET_INPROCESS_VS_UPDATE
        left.axvline(update["rows_per_s"] * share, color="#c44e52", linestyle="--",
                     label=f"{share}x {'hand-written loop' if per_row else 'single UPDATE'}")
        left.legend(loc="lower right", fontsize=8)
    p99 = [max(r["load"]["p99"] or 0.0, 0.1) for r in methods]
    queued = [max((r["load"].get("from_schedule") or {}).get("p99") or 0.0, 0.1) for r in methods]
    height = 0.4
    right.barh([i - height / 2 for i in y], p99, height=height, color=colors, label="statement")
    right.barh([i + height / 2 for i in y], queued, height=height, color=colors, alpha=0.45, hatch="//",
               label="from schedule (queueing included)")
    right.set_xscale("log")
    right.axvline(TARGET_WRITE_P99_MS, color="#c44e52", linestyle="--", label=f"target {TARGET_WRITE_P99_MS:g} ms")
    right.set_xlabel("concurrent write latency p99, ms (log; lower is better)")
    right.legend(loc="lower right", fontsize=8)
    for axis in (left, right):
        axis.grid(axis="x", alpha=0.3)
    dataset = report["dataset"]
    what = (f"{report['config'].get('backfill')} backfill, {dataset.get('translations', 0):,} translations" if per_row
            else f"orders_total_cents backfill, {dataset['orders']:,} orders")
    fig.suptitle(f"{what}, batch {report['config']['batch_size']}, "
                 f"{report['config']['load_rate']:g} writes/s alongside ({report['date']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
