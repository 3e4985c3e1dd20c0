"""The benchmark's chart: rows/s per method beside the concurrent writes' p99, with
the targets drawn as lines."""
from __future__ import annotations

from pathlib import Path

from bench.report import LABELS, OURS, reference_method
from bench.targets import TARGET_INPROCESS_VS_UPDATE, TARGET_ROW_VS_LOOP, TARGET_WRITE_P99_MS


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
