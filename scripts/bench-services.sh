#!/usr/bin/env bash
# The service list (GET /api/v2/services) over windows of a store made by
# `querybench soak` (simulated time from 2026-11-02T00:00Z): the whole range
# on hour boundaries and with both edges mid-hour, the last 24 h starting
# mid-hour, one hour in the middle starting mid-hour. A fresh server
# (compaction off) per call; each window asked 6 times: the first answer and
# the median of the other five, in ms.
# Usage: scripts/bench-services.sh DATA_DIR HOURS [BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1
hours=$2
bin=${3:-target/release/telemetryflow}
TELEMETRYFLOW_COMPACTION_ENABLED=false TELEMETRYFLOW_QUERY_TIMEOUT_SECS=600 \
  "$bin" serve --data-dir "$dir" --grpc-addr 127.0.0.1:44317 --http-addr 127.0.0.1:44318 \
  > "$dir/bench-services-server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
until curl -sf 127.0.0.1:44318/readyz > /dev/null; do sleep 0.1; done
echo "| window | first ms | median ms | services |"
echo "|---|---:|---:|---:|"
python3 - "$hours" <<'PY'
import datetime as dt, json, statistics, sys, time, urllib.request

hours = int(sys.argv[1])
t0 = dt.datetime(2026, 11, 2, tzinfo=dt.timezone.utc)
h = dt.timedelta(hours=1)
end = t0 + hours * h
mid = t0 + (hours // 2) * h + h / 2
windows = [
    ("whole range, on hour boundaries", t0, end),
    ("whole range, edges mid-hour", t0 + h / 2, end - h / 2),
    ("last 24 h, start mid-hour", end - 24 * h + h / 2, end),
    ("one hour, mid-hour", mid, mid + h),
]
for name, start, stop in windows:
    fmt = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")
    url = f"http://127.0.0.1:44318/api/v2/services?start={fmt(start)}&end={fmt(stop)}"
    times = []
    for _ in range(6):
        t = time.perf_counter()
        body = urllib.request.urlopen(url).read()
        times.append((time.perf_counter() - t) * 1000)
    n = len(json.loads(body)["services"])
    print(f"| {name} | {times[0]:.1f} | {statistics.median(times[1:]):.1f} | {n} |", flush=True)
PY
