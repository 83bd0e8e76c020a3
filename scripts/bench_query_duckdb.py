#!/usr/bin/env python3
"""DuckDB side of the query-latency benchmark (issue 4).

Runs the queries of `examples/querybench.rs run` with DuckDB over the same
Parquet files (those the table manifests list, read the way the server reads
them: newest checkpoint plus the versions after it), with the same windows,
trace ids, iterations and statistics (min, median, nearest-rank p90), and
prints a Markdown table. With --ours, also prints ours and DuckDB side by side.

    python3 -m pip install duckdb
    python3 scripts/bench_query_duckdb.py --data-dir ./bench-data --json duckdb.json \
        --ours ours.json --markdown side-by-side.md

DuckDB runs with threads = 2 and memory_limit = 1GiB (as our engine: 2 target
partitions, 1 GiB per query), hive partitioning off (the files' columns only),
default caches (its external file cache keeps read Parquet data in memory).
"""

import argparse
import json
import math
import os
import sys
import time
from datetime import datetime, timezone


def load_manifest_files(table_dir):
    """Paths (relative to the table dir's parent's parent) committed in the
    table's manifest: newest checkpoint + contiguous versions after it."""
    mdir = os.path.join(table_dir, "_manifest")
    if not os.path.isdir(mdir):
        return []
    versions, checkpoint = set(), 0
    for name in os.listdir(mdir):
        if name.endswith(".checkpoint.json"):
            try:
                checkpoint = max(checkpoint, int(name[: -len(".checkpoint.json")]))
            except ValueError:
                pass
        elif name.endswith(".json"):
            try:
                versions.add(int(name[: -len(".json")]))
            except ValueError:
                pass
    files, version = {}, 0
    if checkpoint:
        with open(os.path.join(mdir, f"{checkpoint:020}.checkpoint.json")) as f:
            c = json.load(f)
        version = c["version"]
        files = {m["path"]: m for m in c["files"]}
    while version + 1 in versions:
        version += 1
        with open(os.path.join(mdir, f"{version:020}.json")) as f:
            v = json.load(f)
        for p in v.get("remove", []):
            files.pop(p, None)
        for m in v.get("add", []):
            files[m["path"]] = m
    return sorted(files)


def summarize(ms):
    ms = sorted(ms)
    n = len(ms)
    median = ms[n // 2] if n % 2 else (ms[n // 2 - 1] + ms[n // 2]) / 2
    p90 = ms[min(max(math.ceil(0.9 * n), 1), n) - 1]
    return ms[0], median, p90


def ts_literal(ns):
    dt = datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc)
    frac = ns % 1_000_000_000
    return f"TIMESTAMPTZ '{dt.strftime('%Y-%m-%d %H:%M:%S')}.{frac:09d}+00'"


def sql_string(s):
    return "'" + s.replace("'", "''") + "'"


def bucket(secs):
    # date_bin / our buckets: multiples of the interval since the Unix epoch, in ns.
    step = secs * 1_000_000_000
    return f"(epoch_ns(timestamp) // {step}) * {step}"


def queries(meta, hour, whole):
    gauge, counter = sql_string(meta["gauge_metric"]), sql_string(meta["counter_metric"])
    key = sql_string(meta["group_by"])
    hs, he = ts_literal(hour[0]), ts_literal(hour[1])
    ws, we = ts_literal(whole[0]), ts_literal(whole[1])
    avg_1h = (
        f"SELECT {bucket(60)} AS bucket, avg(value) AS value FROM otel_metrics_gauge "
        f"WHERE metric_name = {gauge} AND timestamp >= {hs} AND timestamp < {he} "
        "GROUP BY bucket ORDER BY bucket"
    )
    avg_by_route = (
        f"SELECT {bucket(300)} AS bucket, "
        f"COALESCE(attributes[{key}], resource_attributes[{key}]) AS g0, avg(value) AS value "
        f"FROM otel_metrics_gauge WHERE metric_name = {gauge} AND timestamp >= {ws} AND timestamp < {we} "
        "GROUP BY bucket, g0 ORDER BY bucket"
    )
    w = "PARTITION BY service_name, resource_attributes, scope_name, attributes ORDER BY timestamp"
    rate = (
        f"SELECT {bucket(60)} AS bucket, sum(inc) / 60.0 AS value FROM ("
        " SELECT timestamp, CASE"
        "  WHEN aggregation_temporality = 1 THEN value"
        f"  WHEN prev_value IS NULL THEN CASE WHEN start_timestamp >= {hs} THEN value END"
        "  WHEN start_timestamp = prev_start AND value >= prev_value THEN value - prev_value"
        "  ELSE value END AS inc FROM ("
        "  SELECT timestamp, start_timestamp, value, aggregation_temporality,"
        f"   lag(value) OVER ({w}) AS prev_value, lag(start_timestamp) OVER ({w}) AS prev_start"
        f"  FROM otel_metrics_sum WHERE metric_name = {counter} AND timestamp >= {hs} AND timestamp < {he}))"
        " WHERE inc IS NOT NULL GROUP BY bucket ORDER BY bucket"
    )
    return [
        ("avg_1h_duckdb", "avg_1h", avg_1h, "avg of the gauge, 1 h, 1m buckets"),
        (
            "avg_24h_by_route_duckdb",
            "avg_24h_by_route",
            avg_by_route,
            "avg of the gauge by http.route, whole range, 5m buckets",
        ),
        (
            "rate_1h_duckdb",
            "rate_1h",
            rate,
            "rate in SQL: lag() per series (service, resource, scope, attributes); a new start "
            "time or a drop is a reset; a series' first point in the window counts only if it "
            "started inside it — the rules our handler applies in Rust to the raw points",
        ),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="./bench-data")
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-limit", default="1GiB")
    ap.add_argument("--json", default="querybench-duckdb.json")
    ap.add_argument("--ours", help="results JSON of `querybench run`, for the side-by-side table")
    ap.add_argument("--markdown", help="also write the side-by-side table here")
    args = ap.parse_args()
    if args.iterations < 1:
        sys.exit("--iterations must be at least 1")
    try:
        import duckdb
    except ImportError:
        sys.exit("duckdb is not installed: python3 -m pip install duckdb")

    meta_path = os.path.join(args.data_dir, "querybench.json")
    try:
        with open(meta_path) as f:
            meta = json.load(f)
    except OSError as e:
        sys.exit(f"reading {meta_path}: {e} (generate the store first: querybench generate)")
    root = os.path.join(args.data_dir, "parquet")
    tenant_dir = os.path.join(root, meta["tenant"])

    con = duckdb.connect()
    con.execute(f"SET threads = {int(args.threads)}")
    con.execute(f"SET memory_limit = {sql_string(args.memory_limit)}")
    con.execute("SET TimeZone = 'UTC'")
    files_total, bytes_total = 0, 0
    for table in ("otel_traces", "otel_metrics_gauge", "otel_metrics_sum"):
        paths = [os.path.join(root, p) for p in load_manifest_files(os.path.join(tenant_dir, table))]
        if not paths:
            sys.exit(f"no committed files for {table} under {tenant_dir}")
        files_total += len(paths)
        bytes_total += sum(os.path.getsize(p) for p in paths)
        listing = ", ".join(sql_string(p) for p in paths)
        con.execute(
            f"CREATE VIEW {table} AS SELECT * FROM read_parquet([{listing}], hive_partitioning = false)"
        )

    mid = meta["start_ns"] + (meta["hours"] // 2) * 3600 * 1_000_000_000
    hour = (mid, mid + 3600 * 1_000_000_000)
    whole = (meta["start_ns"], meta["end_ns"])
    ids = meta["trace_ids"]

    def id_at(i, warm):
        return ids[len(ids) - 1 - i % len(ids)] if warm else ids[i % len(ids)]

    results = []

    def run(qid, group, description, sql_for):
        print(f"running {qid} …", file=sys.stderr)
        m = dict(
            id=qid, group=group, engine="DuckDB " + duckdb.__version__, description=description,
            iterations=0, min_ms=None, median_ms=None, p90_ms=None, rows=None, checksum=None, error=None,
        )
        times = []
        plan = [(True, w) for w in range(args.warmup)] + [(False, i) for i in range(args.iterations)]
        for warm, i in plan:
            sql = sql_for(i, warm)
            try:
                t = time.perf_counter()
                cur = con.execute(sql)
                rows = cur.fetchall()
                elapsed = (time.perf_counter() - t) * 1e3
            except Exception as e:  # report, don't crash: the other queries still run
                m["error"] = str(e).splitlines()[0]
                break
            if not warm:
                times.append(elapsed)
            cols = [d[0] for d in cur.description]
            m["rows"] = len(rows)
            if "value" in cols:
                k = cols.index("value")
                m["checksum"] = sum(r[k] for r in rows if r[k] is not None)
            if group == "trace_lookup" and not rows:
                m["error"] = f"trace {id_at(i, warm)} not found"
                break
        if times and m["error"] is None:
            m["iterations"] = len(times)
            m["min_ms"], m["median_ms"], m["p90_ms"] = summarize(times)
        m["sql"] = sql_for(0, False)
        results.append(m)

    for qid, group, sql, desc in queries(meta, hour, whole):
        run(qid, group, desc, lambda i, warm, sql=sql: sql)
    run(
        "trace_lookup_duckdb",
        "trace_lookup",
        "SELECT * FROM otel_traces WHERE trace_id = '<id>'",
        lambda i, warm: f"SELECT * FROM otel_traces WHERE trace_id = {sql_string(id_at(i, warm))}",
    )

    print(
        f"\n## DuckDB {duckdb.__version__} query latency ({meta['spans']:,} spans, "
        f"{meta['gauge_points'] + meta['counter_points'] + meta['histogram_points']:,} metric points; "
        f"{files_total} files, {bytes_total / 2**20:.1f} MiB read by these views)\n"
    )
    print(
        f"threads = {args.threads}, memory_limit = {args.memory_limit}; "
        f"{args.iterations} iterations after {args.warmup} warm-up\n"
    )
    print("| query | engine | min ms | median ms | p90 ms | rows | checksum |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for m in results:
        if m["error"]:
            print(f"| {m['id']} | {m['engine']} | error: {m['error']} | | | | |")
        else:
            cs = "—" if m["checksum"] is None else f"{m['checksum']:.3f}"
            print(
                f"| {m['id']} | {m['engine']} | {m['min_ms']:.1f} | {m['median_ms']:.1f} | "
                f"{m['p90_ms']:.1f} | {m['rows']} | {cs} |"
            )

    out = dict(
        engine="duckdb", version=duckdb.__version__, data_dir=args.data_dir, threads=args.threads,
        memory_limit=args.memory_limit, iterations=args.iterations, warmup=args.warmup,
        windows=dict(hour=list(hour), all=list(whole)), files=files_total, results=results,
    )
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(out, f, indent=2)
    print(f"\nresults: {args.json}")

    if args.ours:
        with open(args.ours) as f:
            ours = json.load(f)
        table = side_by_side(ours, out, meta)
        print("\n" + table)
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(table)
            print(f"side by side: {args.markdown}")


def side_by_side(ours, duck, meta):
    def cell(m):
        if m is None:
            return "—"
        if m.get("error"):
            return "error: " + m["error"].replace("|", "\\|")[:120]
        return f"{m['median_ms']:.1f} ({m['p90_ms']:.1f})"

    def ratio(a, b):
        if not a or not b or a.get("error") or b.get("error") or not b["median_ms"]:
            return "—"
        return f"{a['median_ms'] / b['median_ms']:.2f}x"

    def agree(a, b):
        if not a or not b or a.get("error") or b.get("error"):
            return "—"
        same_rows = a["rows"] == b["rows"]
        ca, cb = a.get("checksum"), b.get("checksum")
        same_sum = ca is None or cb is None or math.isclose(ca, cb, rel_tol=1e-9, abs_tol=1e-6)
        return "yes" if same_rows and same_sum else f"NO ({a['rows']} vs {b['rows']} rows)"

    by = {}
    for m in ours["results"]:
        kind = "handler" if "handler" in m["id"] else "sql"
        by.setdefault(m["group"], {})[kind] = m
    for m in duck["results"]:
        by.setdefault(m["group"], {})["duckdb"] = m
    labels = {
        "avg_1h": "avg(gauge), 1 h, 1m buckets",
        "avg_24h_by_route": f"avg(gauge) by {meta['group_by']}, {meta['hours']} h, 5m buckets",
        "rate_1h": "rate(counter), 1 h, 1m buckets",
        "rate_1h_raw_fetch": "rate: the handler's raw-point fetch alone",
        "trace_lookup": "trace by id (8 spans), no time window",
    }
    points = meta["gauge_points"] + meta["counter_points"] + meta["histogram_points"]
    lines = [
        f"## Query latency side by side: {meta['spans']:,} spans, {points:,} metric points, "
        f"{meta['parquet_bytes'] / 2**20:.0f} MiB Parquet ({ours.get('files', '?')} files)",
        "",
        f"Median (p90) ms over {ours['iterations']} iterations after {ours['warmup']} warm-up; "
        f"ours: DataFusion, {ours['target_partitions']} target partitions, "
        f"{ours['memory_limit_mb']} MiB per query, time-series cache off; "
        f"DuckDB {duck['version']}: threads = {duck['threads']}, memory_limit = {duck['memory_limit']}. "
        "Ratio > 1 means we are slower.",
        "",
        "| query | ours: handler | ours: SQL | DuckDB: SQL | handler / DuckDB | SQL / DuckDB | same answer |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for group in ["avg_1h", "avg_24h_by_route", "rate_1h", "rate_1h_raw_fetch", "trace_lookup"]:
        g = by.get(group, {})
        h, s, d = g.get("handler"), g.get("sql"), g.get("duckdb")
        lines.append(
            f"| {labels[group]} | {cell(h)} | {cell(s)} | {cell(d)} | {ratio(h, d)} | {ratio(s, d)} | "
            f"{agree(h or s, d)} |"
        )
    lines += [
        "",
        "- *ours: handler* is the API's use case (`MetricQueries::time_series`: a metric-type lookup "
        "query, then the aggregation; `TraceQueries::trace`: `ORDER BY timestamp, span_id`); "
        "*ours: SQL* is one statement through `ReadModel::query` (session, planning, scan).",
        "- rate: our handler fetches the raw points and applies the domain's reset rules in Rust; "
        "*ours: SQL* and DuckDB compute the same rules in SQL with `lag()` per series "
        "(see the JSON for the statements); *same answer* compares bucket count and the sum of values.",
        "- trace lookup: a different stored trace id per iteration (from the store description), "
        "no time window, so every file's statistics and trace-id bloom filter are consulted.",
        "",
    ]
    explain = ours.get("trace_lookup_explain") or []
    if explain:
        lines.append("Our trace lookup's scan (EXPLAIN ANALYZE): `" + explain[0][:600] + "`")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
