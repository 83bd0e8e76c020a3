#!/usr/bin/env bash
# Tenant isolation under a flood, release build, one run: the server's
# capacity C (OTLP/gRPC traces, load generator flat out), then tenant
# "quiet" alone at C/4, then "quiet" at C/4 again while tenant "flood"
# sends at 3C ignoring refusals, limited to C/4 (C/FLOOD_SHARE) by
# [limits.tenants.flood] ingest_items_per_sec. Prints one JSON line per
# load generator run, then the quiet tenant's p99 under flood / alone.
# Usage: scripts/bench-isolation.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
# shellcheck source=scripts/bench-server.sh
source scripts/bench-server.sh
grpc=http://127.0.0.1:34317

load() { # tenant rate seconds [extra args]
  local t=$1 r=$2 s=$3; shift 3
  $gen --protocol grpc --endpoint $grpc --api $api --tenant "$t" --signal traces \
    --rate "$r" --duration "$s" "$@" 2>>"$dir/loadgen.err"
}

: >"$dir/none.toml"
serve "$dir/none.toml"
cap=$(load capacity 0 "$secs" --concurrency 8)
stop
echo "$cap"
c=$(printf '%.0f' "$(field "$cap" accepted_per_s)")
quiet_rate=$((c / 4)) flood_rate=$((3 * c)) flood_limit=$((c / ${FLOOD_SHARE:-4}))
cat >"$dir/limits.toml" <<TOML
[limits.tenants.flood]
ingest_items_per_sec = $flood_limit
TOML
serve "$dir/limits.toml"
alone=$(load quiet $quiet_rate "$secs" --concurrency 4)
echo "$alone"
load flood $flood_rate $((secs + 4)) --concurrency 16 --flood --no-verify >"$dir/flood.json" &
fpid=$!
sleep 2
# Another tenant name: the load generator verifies its tenant's stored
# rows against what it was acknowledged.
under=$(load quiet2 $quiet_rate "$secs" --concurrency 4)
echo "$under"
wait $fpid
cat "$dir/flood.json"
refusal=$(grep -o 'tenant flood is over its limit[^"]*' "$dir/server.log" | head -1 || true)
curl -s "$api/metrics" | grep -E '^telemetryflow_limit_refusals_total' || true
stop
p_alone=$(field "$alone" p99_ms) p_under=$(field "$under" p99_ms)
echo "{\"capacity_per_s\":$c,\"flood_limit_per_s\":$flood_limit,\"quiet_p99_alone_ms\":$p_alone,\"quiet_p99_under_flood_ms\":$p_under,\"ratio\":$(awk "BEGIN{printf \"%.2f\", $p_under/$p_alone}"),\"quiet_refused\":$(field "$under" refused_items),\"flood_refused_requests\":$(field "$(cat "$dir/flood.json")" refused_requests)}"
