#!/usr/bin/env bash
# RSS as the store ages: a release server with the defaults (compaction and
# retention on) except a short flush interval, so that small requests at a
# low rate make many small files; the load generator sends traces at RATE
# spans/s in requests of BATCH for SECONDS. Every 10 s it prints the
# server's RSS, flushes, compactions and files merged so far, and a trace
# lookup's latency (the store must stay fast as it ages).
# Usage: scripts/bench-soak.sh [seconds] [rate] [batch]
#   SERVER_ENV="K=V ..." adds server settings (TELEMETRYFLOW_*).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-240}; rate=${2:-5000}; batch=${3:-64}
# shellcheck source=scripts/bench-server.sh
source scripts/bench-server.sh
lpid=
trap 'kill $pid $lpid 2>/dev/null; rm -rf "$dir"; true' EXIT
# shellcheck disable=SC2086
env TELEMETRYFLOW_BUFFER_FLUSH_INTERVAL_MS=100 ${SERVER_ENV:-} $bin serve --data-dir "$dir/data" \
  --grpc-addr 127.0.0.1:34317 --http-addr 127.0.0.1:34318 >"$dir/server.log" 2>&1 &
pid=$!
until curl -sf "$api/readyz" >/dev/null; do sleep 0.1; done
$gen --protocol http --endpoint $api --api $api --signal traces --rate "$rate" --batch "$batch" \
  --concurrency 2 --duration "$secs" >"$dir/loadgen.json" 2>"$dir/loadgen.err" &
lpid=$!
metric() { awk -v n="$1" '$1 == n {print $2}' <<<"$2"; }
until grep -q 'as tenant' "$dir/loadgen.err"; do sleep 0.1; done
tenant=$(grep -o 'as tenant [^:]*' "$dir/loadgen.err" | head -1 | cut -d' ' -f3)
start=$(date +%s)
while kill -0 $lpid 2>/dev/null; do
  sleep 10
  m=$(curl -sf "$api/metrics" || true)
  rss=$(awk '/VmRSS/ {print int($2/1024)}' /proc/$pid/status)
  t0=$(date +%s.%N)
  curl -sf -H "x-tenant-id: $tenant" "$api/api/v2/traces/00000000000000000000000000000001" >/dev/null || true
  t1=$(date +%s.%N)
  echo "{\"t\":$(($(date +%s) - start)),\"rss_mib\":$rss,\"flushes\":$(metric telemetryflow_flushes_total "$m"),\"compactions\":$(metric telemetryflow_compactions_total "$m"),\"compacted_files\":$(metric telemetryflow_compaction_files_in_total "$m"),\"lookup_ms\":$(awk "BEGIN{printf \"%.1f\", ($t1 - $t0) * 1000}")}"
done
wait $lpid || true
cat "$dir/loadgen.json"
kill -TERM $pid; wait $pid || true
