#!/usr/bin/env bash
# Forward-only sidecar vs ingest-and-store on the same payloads, release
# build, one machine. For each signal: (1) a server storing to Parquet
# (defaults); (2) a sidecar with storage.persist = false forwarding over
# OTLP/HTTP (no compression) to the load generator's sink (acknowledges
# without decoding). The load generator runs flat out over HTTP/protobuf.
# Reported per run: acked items/s and ack latency (load generator), peak RSS
# (VmHWM); for the sidecar also the items delivered upstream and the rate
# from the first request until the queue drained.
# Usage: scripts/bench-sidecar.sh [seconds] [signal ...]
#   FORWARD_EXTRA=", batch_bytes = 16777216" adds settings to the forwarder.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}; shift || true
signals=("$@")
[ ${#signals[@]} -gt 0 ] || signals=(traces logs metrics)
[ -n "${NO_BUILD:-}" ] || cargo build --release --bin telemetryflow --example loadgen
# PROFILE=debug NO_BUILD=1 runs the debug binaries (a smoke test of this script).
profile=${PROFILE:-release}
bin=${BIN:-target/$profile/telemetryflow}
gen=${GEN:-target/$profile/examples/loadgen}
metric() { # name
  curl -sf 127.0.0.1:34318/metrics | awk -v n="$1" '$1 == n {print $2}'
}
run() { # signal mode
  local signal=$1 mode=$2
  local dir; dir=$(mktemp -d)
  local env=()
  if [ "$mode" = sidecar ]; then
    env=(TELEMETRYFLOW_STORAGE_PERSIST=false
      "TELEMETRYFLOW_FORWARD=[{name=\"sink\", endpoint=\"http://127.0.0.1:34400\", protocol=\"http/protobuf\", compression=\"none\"${FORWARD_EXTRA:-}}]")
  fi
  env "${env[@]}" $bin serve --data-dir "$dir" --grpc-addr 127.0.0.1:34317 --http-addr 127.0.0.1:34318 \
    >"$dir/server.log" 2>&1 &
  local pid=$!
  until curl -sf 127.0.0.1:34318/readyz >/dev/null; do sleep 0.1; done
  local verify=()
  [ "$mode" = sidecar ] && verify=(--no-verify)
  local started; started=$(date +%s.%N)
  local out
  out=$($gen --protocol http --endpoint http://127.0.0.1:34318 --api http://127.0.0.1:34318 \
    --signal "$signal" --duration "$secs" --concurrency 8 "${verify[@]}" 2>"$dir/loadgen.err") \
    || { cat "$dir/loadgen.err" >&2; }
  local extra=""
  if [ "$mode" = sidecar ]; then
    local n=0
    until [ "$(metric 'telemetryflow_forward_queue_records{forwarder="sink"}')" = 0 ] || [ $n -ge 600 ]; do
      sleep 0.1; n=$((n + 1))
    done
    local drained; drained=$(date +%s.%N)
    local item; case $signal in traces) item=spans;; logs) item=log_records;; metrics) item=metric_points;; esac
    local sent; sent=$(metric "telemetryflow_forward_sent_items_total{forwarder=\"sink\",signal=\"$item\"}")
    extra=$(python3 -c 'import sys; s,a,b=float(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]); print(f",\"delivered\":{int(s)},\"delivered_per_s\":{s/(b-a):.0f}")' "$sent" "$started" "$drained")
  fi
  local hwm; hwm=$(awk '/VmHWM/ {print int($2/1024)}' /proc/$pid/status)
  kill -TERM $pid; wait $pid || true
  echo "{\"mode\":\"$mode\",${out#\{}" | sed "s/}\$/${extra},\"peak_rss_mib\":$hwm}/"
  rm -rf "$dir"
}
# SINK_DECODE=1: the sink decodes every request (as a real upstream must).
$gen --sink 127.0.0.1:34400 ${SINK_DECODE:+--sink-decode} 2>/dev/null &
sink=$!
trap 'kill $sink 2>/dev/null || true' EXIT
for s in "${signals[@]}"; do
  run "$s" store
  run "$s" sidecar
done
