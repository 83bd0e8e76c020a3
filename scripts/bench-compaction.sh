#!/usr/bin/env bash
# Ingest throughput with the compactor busy vs idle (goal: busy >= 0.9x idle),
# traces over HTTP flat out, release build, alternating runs on one machine.
# Every run starts on a copy of the same backlog: a day of a quiet deployment
# (one small traces file every 10 s, 8,640 files in 24 closed hours, made once
# by `querybench soak`). "idle" has the compactor off; "busy" runs a pass
# every second with the default settings (max_cpu_share 0.25), so it merges
# the backlog for the whole run while the load generator writes another tenant.
# Usage: scripts/bench-compaction.sh [seconds] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
rounds=${2:-3}
[ -n "${NO_BUILD:-}" ] || cargo build --release --bin telemetryflow --example loadgen --example querybench
backlog=${BACKLOG:-./bench-backlog}
if [ ! -f "$backlog/node_id" ] && [ ! -d "$backlog/parquet" ]; then
  target/release/examples/querybench soak --data-dir "$backlog" --hours 24 --checkpoints 24 --iterations 1 >&2
fi
for _ in $(seq "$rounds"); do
  for mode in idle busy; do
    if [ "$mode" = idle ]; then
      extra="TELEMETRYFLOW_COMPACTION_ENABLED=false"
    else
      extra="TELEMETRYFLOW_COMPACTION_INTERVAL_SECS=1"
    fi
    line=$(NO_BUILD=1 PEAK_ONLY=1 SEED_DIR="$backlog" SERVER_ENV="$extra" scripts/bench-ingest.sh "$secs" traces/http)
    echo "{\"mode\":\"$mode\",${line#\{}"
  done
done
