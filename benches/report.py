#!/usr/bin/env python3
"""Prints the medians of the last runs of the benches, and the ratios they are held to, as Markdown tables (a bench not run yet is skipped).

    cargo bench -p count-benches --bench hot_path && python3 benches/report.py
    cargo bench -p count-benches --bench layer && python3 benches/report.py
    cargo bench -p count-benches --bench pg && python3 benches/report.py
    cargo bench -p count-benches --bench cockroach && python3 benches/report.py
    cargo bench -p count-benches --bench sqlite && python3 benches/report.py
    cargo bench -p count-benches --bench grpc && python3 benches/report.py
    cargo bench -p count-benches --bench http && python3 benches/report.py
    cargo bench -p count-benches --bench limits && python3 benches/report.py
"""
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"
NAMES = [
    "count_queue_record", "count_queue_record_key", "arrayqueue_push",
    "metrics_counter", "metrics_counter_4_labels",
    "prometheus_counter_vec", "prometheus_counter_vec_4_labels",
]


def median_ns(group: str, name: str) -> float:
    estimates = ROOT / group / name / "new" / "estimates.json"
    return json.loads(estimates.read_text())["median"]["point_estimate"]


def hot_path():
    print("| threads | " + " | ".join(NAMES) + " | record ÷ push | record_key ÷ record "
          "| metrics ÷ record | prometheus ÷ record | metrics (4) ÷ record_key | prometheus (4) ÷ record_key |")
    print("|---|" + "---|" * (len(NAMES) + 6))
    for threads in (1, 2):
        group = f"record_{threads}-thread"
        m = {name: median_ns(group, name) for name in NAMES}
        record, key = m["count_queue_record"], m["count_queue_record_key"]
        cells = " | ".join(f"{m[name]:.2f} ns" for name in NAMES)
        print(
            f"| {threads} | {cells} | {record / m['arrayqueue_push']:.2f}× | {key / record:.2f}× "
            f"| {m['metrics_counter'] / record:.1f}× | {m['prometheus_counter_vec'] / record:.1f}× "
            f"| {m['metrics_counter_4_labels'] / key:.1f}× | {m['prometheus_counter_vec_4_labels'] / key:.1f}× |"
        )


def layer():
    names = ("no_layer", "identity_layer", "count_layer", "axum_prometheus")
    bare, identity, count, prom = (median_ns("layer", n) for n in names)
    print("| no layer | identity layer | CountLayer | axum-prometheus | CountLayer adds | axum-prometheus adds | ratio of what they add | CountLayer over identity |")
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {bare:.0f} ns | {identity:.0f} ns | {count:.0f} ns | {prom:.0f} ns | {count - bare:.0f} ns "
        f"| {prom - bare:.0f} ns | {(count - bare) / (prom - bare):.3f} | {count - identity:.0f} ns |"
    )
    print()
    layered = ("identity_layer", "count_layer", "count_layer_subject", "axum_prometheus")
    paired = {n: median_ns("layer_adds", n) for n in layered}
    print("| paired: identity layer adds | CountLayer adds | CountLayer with subject adds | axum-prometheus adds "
          "| ratio | CountLayer over identity | with subject over identity |")
    print("|---|---|---|---|---|---|---|")
    identity = paired["identity_layer"]
    print(
        f"| {identity:.0f} ns | {paired['count_layer']:.0f} ns | {paired['count_layer_subject']:.0f} ns "
        f"| {paired['axum_prometheus']:.0f} ns | {paired['count_layer'] / paired['axum_prometheus']:.3f} "
        f"| {paired['count_layer'] - identity:.0f} ns | {paired['count_layer_subject'] - identity:.0f} ns |"
    )
    alone = median_ns("layer_alone", "service_fn")
    counted = median_ns("layer_alone", "count_layer_over_service_fn")
    print()
    print("| bare tower service | with CountLayer | CountLayer's own work |")
    print("|---|---|---|")
    print(f"| {alone:.1f} ns | {counted:.1f} ns | {counted - alone:.1f} ns |")


def elements(group: str, name: str) -> int:
    bench = ROOT / group / name / "new" / "benchmark.json"
    return json.loads(bench.read_text())["throughput"]["Elements"]


def per_second(group: str, name: str) -> float:
    return elements(group, name) / (median_ns(group, name) / 1e9)


def pg():
    ours = per_second("ingest", "count_queue_pg_dimensions")
    go = per_second("ingest", "go_per_request")
    print("| ingest | requests counted per second |")
    print("|---|---|")
    print(f"| CountQueue → PgCounter, 2 recording threads, subjects and statuses | {ours:,.0f} |")
    print(f"| the Go server's path: one statement per request, 8 connections | {go:,.0f} |")
    print(f"| ratio | {ours / go:,.0f}× |")
    print()
    count = median_ns("rollup", "count_pg_1m_raw_counts_dimensions") / 1e9
    go_rollup = median_ns("rollup", "go_1m_requests") / 1e9
    print("| rollup of one day | seconds |")
    print("|---|---|")
    print(f"| PgCounter::rollup, 1,000,000 raw counts with subjects and statuses | {count:.3f} |")
    print(f"| the Go server's: delete … returning, group by, insert; 1,000,000 request rows | {go_rollup:.3f} |")
    print(f"| ratio (Go ÷ ours) | {go_rollup / count:.2f}× |")


def sqlite():
    rate = per_second("ingest", "count_queue_sqlite_dimensions")
    print("| ingest | requests counted per second |")
    print("|---|---|")
    print(f"| CountQueue → SqliteCounter, 2 recording threads, subjects and statuses | {rate:,.0f} |")
    print()
    ours = median_ns("rollup", "count_sqlite_1m_raw_counts_dimensions") / 1e9
    pg = median_ns("rollup", "count_pg_1m_raw_counts_dimensions") / 1e9
    print("| rollup of one day, 1,000,000 raw counts with subjects and statuses | seconds |")
    print("|---|---|")
    print(f"| SqliteCounter::rollup | {ours:.3f} |")
    print(f"| PgCounter::rollup (same run) | {pg:.3f} |")


def cockroach():
    names = ("pg", "cockroach_emulated", "cockroach_emulated_30pct_restarts")
    rates = {n: per_second("ingest", n) for n in names}
    print("| ingest (40 batches × 1,000 rows, 4 tasks) | rows per second | vs PgCounter |")
    print("|---|---|---|")
    for name in names:
        print(f"| {name} | {rates[name]:,.0f} | {rates[name] / rates['pg']:.2f}× |")
    calm, faulty = rates["cockroach_emulated"], rates["cockroach_emulated_30pct_restarts"]
    print(f"| slowdown from 30% restarts | | {calm / faulty:.2f}× |")


def grpc():
    print("| path | backend | events or counted requests per second |")
    print("|---|---|---|")
    for group, what in (("add_feed", "Add stream without a deadline (a feed), one request per message"),
                        ("add_unit", "Add stream with a deadline (one unit), one request per message"),
                        ("grpc_counter", "CountQueue → GrpcCounter (AddCounts)")):
        for backend in ("memory", "postgres"):
            print(f"| {what} | {backend} | {per_second(group, backend):,.0f} |")


def http():
    print("| request (a year of 1,000 endpoints) | memory | SQLite |")
    print("|---|---|---|")
    for request in ("group=day", "group=endpoint", "group=day&endpoint", "group=subject", "group=status"):
        cells = " | ".join(f"{median_ns('totals', f'{request}_{b}') / 1e6:.1f} ms" for b in ("memory", "sqlite"))
        print(f"| `/api/v1/totals?{request}` | {cells} |")
    cells = " | ".join(f"{median_ns('page', f'load_{b}') / 1e6:.0f} ms" for b in ("memory", "sqlite"))
    print(f"| dashboard page load in headless Chromium | {cells} |")


def limits():
    m = {name: median_ns("limits_layer_adds", name) for name in (
        "identity_layer", "count_layer_subject", "count_layer_subject_limits_no_plan",
        "count_layer_subject_limited")}
    identity = m["identity_layer"]
    unlimited = m["count_layer_subject"] - identity
    limited = m["count_layer_subject_limited"] - identity
    print("| identity adds | CountLayer + subject adds | + limits, subject without a plan | + a limit on the subject | limited ÷ unlimited, over identity (target ≤ 1.5×) |")
    print("|---|---|---|---|---|")
    print(f"| {identity:.0f} ns | {m['count_layer_subject']:.0f} ns | {m['count_layer_subject_limits_no_plan']:.0f} ns "
          f"| {m['count_layer_subject_limited']:.0f} ns | {limited / unlimited:.2f}× |")
    print()
    print("| threads | Limiter::admit_now + settle | governor check_key | count ÷ governor (target ≤ 1 on one thread, < 1 on two) |")
    print("|---|---|---|---|")
    for threads in (1, 2):
        group = f"admission_{threads}-thread"
        ours, theirs = median_ns(group, "count_limiter"), median_ns(group, "governor_keyed")
        print(f"| {threads} | {ours:.1f} ns | {theirs:.1f} ns | {ours / theirs:.2f}× |")
    leases = json.loads((ROOT / "limits_leases.json").read_text())
    print()
    print(f"Lease round trips: {leases['leases']} for {leases['admitted']:,} admitted at "
          f"{leases['rate']:,}/s over {leases['seconds']} s: {leases['per_million']:.0f} per 1,000,000.")


for table in (hot_path, layer, pg, sqlite, cockroach, grpc, http, limits):
    try:
        table()
        print()
    except FileNotFoundError:
        pass
