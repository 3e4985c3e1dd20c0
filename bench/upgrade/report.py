"""The numbers of one upgrade as plain data (for the .json) and as Markdown: one
section per shop size, and a table across sizes when there are several (does the
stall grow with the table?)."""
from __future__ import annotations

from typing import Any, Sequence

from bench.report import rows_label
from bench.upgrade.attribution import OPERATIONS, TABLES, SegmentStats, overall, segment_of

SHORT = {"orders": "orders", "users": "users", "product_translations": "translations"}


def _stream(table: str, operation: str) -> str:
    return f"{table} {operation}"


def segment_data(stats: SegmentStats) -> dict[str, Any]:
    segment = stats.segment
    wait = stats.lock_wait
    return {
        "kind": segment.kind, "name": segment.name, "start": segment.start, "end": segment.end,
        "seconds": segment.seconds,
        "worst": {_stream(t, o): {"count": w.count, "max_ms": w.max_ms} for (t, o), w in stats.worst.items()},
        "lock_wait": None if wait is None else {"waited_ms": wait.waited_ms, "waiter": wait.waiter,
                                                "blocker": wait.blocker},
    }


def summarize(stats: Sequence[SegmentStats]) -> dict[str, Any]:
    """Every segment, and the whole upgrade with where its worst moments fell."""
    total = overall(stats)
    key, longest = total.longest()
    data = segment_data(total)
    data["longest"] = None if key is None else {
        "stream": _stream(*key), "max_ms": longest, "during": segment_of(stats, total.worst[key].slot)}
    data["lock_wait_during"] = None if total.lock_wait is None else segment_of(stats, total.lock_wait.at)
    return {"segments": [segment_data(s) for s in stats], "overall": data}


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.1f}" if value < 10 else f"{value:,.0f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _row(name: str, segment: dict, bold: bool = False) -> str:
    pairs = [" / ".join(fmt_ms(segment["worst"][_stream(t, o)]["max_ms"]) for o in OPERATIONS) for t in TABLES]
    wait = segment["lock_wait"]
    who = _cell(f"{wait['waiter']} ← {wait['blocker']}") if wait else ""
    label = f"**{name}**" if bold else name
    return (f"| {label} | {segment['seconds']:,.2f} | {' | '.join(pairs)} | "
            f"{fmt_ms(wait['waited_ms']) if wait else '–'} | {who} |")


def section(result: dict) -> str:
    shop, migration, load = result["shop"], result["migration"], result["load"]
    lines = [
        f"## {shop['orders']:,} orders",
        "",
        f"{shop['users']:,} users, {shop['products']:,} products ({shop['translations']:,} translations), "
        f"{shop['items']:,} order items; generated in {shop['generate_s']:.1f} s.",
        "",
        f"`run_migrations.py --batched` in-process: {migration['seconds']:,.1f} s, exit status "
        f"{migration['returncode']}. Backfills: "
        + (", ".join(f"{b['name']} {b['rows_done']:,} rows ({b['status']})" for b in result["backfills"]) or "none")
        + ".",
        "",
        "| step | duration (s) | "
        + " | ".join(f"{SHORT[t]} read / write (ms)" for t in TABLES)
        + " | longest lock wait (ms) | waiting ← blocked by |",
        "| --- | ---: | " + " | ".join("---:" for _ in TABLES) + " | ---: | --- |",
    ]
    for segment in result["segments"]:
        name = segment["name"] + (" (backfill)" if segment["kind"] == "backfill" else "")
        lines.append(_row(name, segment))
    lines.append(_row("whole upgrade", result["overall"], bold=True))
    total = result["overall"]
    longest, wait = total["longest"], total["lock_wait"]
    lines += ["", "**Overall:** longest stalled shop statement "
              + (f"{fmt_ms(longest['max_ms'])} ms ({longest['stream']}, due during {longest['during']})"
                 if longest else "– (no statement measured)")
              + "; longest lock wait seen "
              + (f"{fmt_ms(wait['waited_ms'])} ms (during {total['lock_wait_during']}: {_cell(wait['waiter'])} "
                 f"← {_cell(wait['blocker'])})" if wait else "none")
              + ".",
              "",
              f"Shop traffic: {load['statements']:,} statements "
              f"({', '.join(f'{stream} {count:,}' for stream, count in load['by_stream'].items())}), "
              f"{load['errors']} errors" + (f" (first: {_cell(load['first_error'])})" if load["first_error"] else "")
              + f"; {result['sampler']['samples']:,} samples of pg_stat_activity / pg_locks."]
    return "\n".join(lines) + "\n"


def across_sizes(results: Sequence[dict]) -> str:
    lines = ["| orders | upgrade (s) | longest stalled statement (ms) | stream, due during | "
             "longest lock wait (ms) | during |",
             "| ---: | ---: | ---: | --- | ---: | --- |"]
    for result in results:
        total = result["overall"]
        longest, wait = total["longest"], total["lock_wait"]
        lines.append(
            f"| {result['shop']['orders']:,} | {result['migration']['seconds']:,.1f} | "
            f"{fmt_ms(longest['max_ms']) if longest else '–'} | "
            f"{(longest['stream'] + ', ' + str(longest['during'])) if longest else ''} | "
            f"{fmt_ms(wait['waited_ms']) if wait else '–'} | {total['lock_wait_during'] or ''} |")
    return "\n".join(lines) + "\n"


def document(header: dict, results: Sequence[dict]) -> str:
    machine = header["machine"]
    lines = [
        f"# Upgrade stalls: {header['from']} → head under shop traffic",
        "",
        f"{header['date']} · commit `{machine.get('commit')}`"
        + (f" plus uncommitted changes to {', '.join(f'`{p}`' for p in header['uncommitted'])}"
           if header["uncommitted"] else "")
        + f" · {machine.get('nproc')} cores ({machine.get('cpu')}), {machine.get('ram_gb')} GB RAM, "
        f"PostgreSQL {machine.get('postgresql')}, Python {machine.get('python')} · shared machine: timings are noisy.",
        "",
        f"Command: `{header['command']}`",
        "",
        f"Each size: a scratch database at {header['from']}, a generated shop (users = orders / 3, products = "
        f"orders / 10, {header['locales']} translations each), VACUUM ANALYZE; then "
        f"`{header['migration_command']}` while six streams (read and write of orders, users, product_translations, "
        f"one connection each) send a single-row statement every {header['interval_ms']:g} ms each, open loop. "
        "A statement counts for the step in which it was due; its latency is from that moment (queueing behind a "
        "blocked statement included). Lock waits: every backend of the database with wait_event_type = 'Lock', "
        f"sampled every {header['sample_ms']:g} ms, for the step during which they were seen. Steps: revisions end when "
        "alembic_version shows them (sampled), backfills are their runs' started_at / finished_at; "
        "parenthesised steps are what lies between (start-up, gate checks, scheduling).",
        "",
    ]
    if len(results) > 1:
        lines += [across_sizes(results)]
    lines += [section(result) for result in results]
    return "\n".join(lines)


def size_label(sizes: Sequence[int]) -> str:
    return "-".join(rows_label(size).lower() for size in sizes)
