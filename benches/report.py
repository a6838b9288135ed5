#!/usr/bin/env python3
"""Prints the medians of the last `cargo bench --bench hot_path` run, and the ratios
the count-core issue sets targets for, as a Markdown table.

    cargo bench -p count-benches --bench hot_path && python3 benches/report.py
"""
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"
NAMES = ["count_queue_record", "arrayqueue_push", "metrics_counter", "prometheus_counter_vec"]


def median_ns(group: str, name: str) -> float:
    estimates = ROOT / group / name / "new" / "estimates.json"
    return json.loads(estimates.read_text())["median"]["point_estimate"]


print("| threads | " + " | ".join(NAMES) + " | record ÷ push | metrics ÷ record | prometheus ÷ record |")
print("|---|" + "---|" * (len(NAMES) + 3))
for threads in (1, 2):
    group = f"record_{threads}-thread"
    m = {name: median_ns(group, name) for name in NAMES}
    record = m["count_queue_record"]
    cells = " | ".join(f"{m[name]:.2f} ns" for name in NAMES)
    print(
        f"| {threads} | {cells} | {record / m['arrayqueue_push']:.2f}× "
        f"| {m['metrics_counter'] / record:.1f}× | {m['prometheus_counter_vec'] / record:.1f}× |"
    )
