#!/usr/bin/env bash
# Ingest throughput and ack latency with the durable WAL (fsync on) versus the
# same runs with fsync off, on this machine. Release build; server and load
# generator share the machine. Usage: scripts/bench-durability.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
[ -n "${NO_BUILD:-}" ] || cargo build --release --bin telemetryflow --example loadgen
bin=target/release/telemetryflow
gen=target/release/examples/loadgen
run() { # fsync signal protocol extra...
  local fsync=$1 signal=$2 protocol=$3; shift 3
  local dir; dir=$(mktemp -d)
  TELEMETRYFLOW_WAL_FSYNC=$fsync $bin serve --data-dir "$dir" \
    --grpc-addr 127.0.0.1:34317 --http-addr 127.0.0.1:34318 >"$dir/server.log" 2>&1 &
  local pid=$!
  until curl -sf 127.0.0.1:34318/readyz >/dev/null; do sleep 0.1; done
  local ep=http://127.0.0.1:34318
  [ "$protocol" = grpc ] && ep=http://127.0.0.1:34317
  printf 'fsync=%s ' "$fsync"
  $gen --protocol "$protocol" --endpoint $ep --api http://127.0.0.1:34318 \
    --signal "$signal" --duration "$secs" "$@" 2>/dev/null
  local rss; rss=$(ps -o rss= -p $pid)
  echo "  server RSS at end: $((rss / 1024)) MiB; WAL fsyncs: $(curl -s 127.0.0.1:34318/metrics | grep '^telemetryflow_wal_fsync_seconds_count' | cut -d' ' -f2)"
  kill -TERM $pid; wait $pid || true
  rm -rf "$dir"
}
for fsync in true false; do
  run $fsync traces http --concurrency 8
  run $fsync logs http --concurrency 8
  run $fsync metrics http --concurrency 8
  run $fsync traces grpc --concurrency 8
done
