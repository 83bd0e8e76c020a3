#!/usr/bin/env bash
# Ingest throughput with the compactor busy vs idle (goal: busy >= 0.9x idle),
# traces over HTTP flat out, release build, alternating runs on one machine.
# Both modes flush every 500 ms (many small files); "busy" runs a compaction
# pass every second that merges them as soon as two of a size tier exist.
# Usage: scripts/bench-compaction.sh [seconds] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
rounds=${2:-2}
[ -n "${NO_BUILD:-}" ] || cargo build --release --bin telemetryflow --example loadgen
common="TELEMETRYFLOW_BUFFER_FLUSH_INTERVAL_MS=500"
for _ in $(seq "$rounds"); do
  for mode in idle busy; do
    if [ "$mode" = idle ]; then
      extra="TELEMETRYFLOW_COMPACTION_ENABLED=false"
    else
      extra="TELEMETRYFLOW_COMPACTION_INTERVAL_SECS=1 TELEMETRYFLOW_COMPACTION_MIN_FILES=2"
    fi
    line=$(NO_BUILD=1 PEAK_ONLY=1 SERVER_ENV="$common $extra" scripts/bench-ingest.sh "$secs" traces/http)
    echo "{\"mode\":\"$mode\",${line#\{}"
  done
done
