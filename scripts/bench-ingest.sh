#!/usr/bin/env bash
# Ingest throughput, ack latency and peak server RSS, durable ack on (default
# settings), release build; server and load generator share the machine.
# For each signal/protocol: a fresh data directory and server, the load
# generator flat out, then again at half of the rate it reached (the issue's
# "p99 at half of peak"). Peak RSS is the kernel's high-water mark (VmHWM).
# Usage: scripts/bench-ingest.sh [seconds] [signal/protocol ...]
#   protocol: grpc, http (protobuf) or http-json
#   e.g. scripts/bench-ingest.sh 15 traces/http logs/http-json
# SERVER_ENV="K=V ..." sets server settings (TELEMETRYFLOW_*); PEAK_ONLY=1
# skips the half-rate run; SEED_DIR=DIR starts each server on a copy of DIR
# (e.g. a backlog for the compactor). The compactor's counters are reported too.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}; shift || true
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(traces/http traces/grpc logs/http metrics/http)
[ -n "${NO_BUILD:-}" ] || cargo build --release --bin telemetryflow --example loadgen
bin=${BIN:-target/release/telemetryflow}
gen=${GEN:-target/release/examples/loadgen}
run() { # signal protocol rate
  local signal=$1 protocol=$2 rate=$3
  local dir; dir=$(mktemp -d)
  [ -z "${SEED_DIR:-}" ] || cp -a "$SEED_DIR/." "$dir/"
  # shellcheck disable=SC2086
  env ${SERVER_ENV:-} $bin serve --data-dir "$dir" --grpc-addr 127.0.0.1:34317 --http-addr 127.0.0.1:34318 \
    >"$dir/server.log" 2>&1 &
  local pid=$!
  until curl -sf 127.0.0.1:34318/readyz >/dev/null; do sleep 0.1; done
  local ep=http://127.0.0.1:34318 extra=()
  [ "$protocol" = grpc ] && ep=http://127.0.0.1:34317
  [ "$protocol" = http-json ] && { protocol=http; extra=(--json); }
  local out
  out=$($gen --protocol "$protocol" --endpoint $ep --api http://127.0.0.1:34318 \
    --signal "$signal" --duration "$secs" --concurrency 8 --rate "$rate" "${extra[@]}" 2>"$dir/loadgen.err") \
    || { cat "$dir/loadgen.err" >&2; }
  local hwm; hwm=$(awk '/VmHWM/ {print int($2/1024)}' /proc/$pid/status)
  local metrics; metrics=$(curl -sf 127.0.0.1:34318/metrics || true)
  local compactions files_in
  compactions=$(awk '/^telemetryflow_compactions_total / {print $2}' <<<"$metrics")
  files_in=$(awk '/^telemetryflow_compaction_files_in_total / {print $2}' <<<"$metrics")
  kill -TERM $pid; wait $pid || true
  echo "${out%\}},\"target_rate\":$rate,\"peak_rss_mib\":$hwm,\"compactions\":${compactions:-0},\"compacted_files\":${files_in:-0},\"verified\":$(grep -q '^verified' "$dir/loadgen.err" && echo true || echo false)}"
  rm -rf "$dir"
}
for c in "${cases[@]}"; do
  signal=${c%/*} protocol=${c#*/}
  line=$(run "$signal" "$protocol" 0)
  echo "$line"
  peak=$(python3 -c 'import json,sys; print(int(json.loads(sys.argv[1])["accepted_per_s"]))' "$line")
  [ -n "${PEAK_ONLY:-}" ] || run "$signal" "$protocol" $((peak / 2))
done
