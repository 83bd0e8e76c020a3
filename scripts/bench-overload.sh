#!/usr/bin/env bash
# What overload costs, release build, one machine: per protocol (traces),
# (1) flat out with 8 connections: accepted items/s and the server's CPU
# time per accepted request; (2) 3x overload: 24 connections offering 3x
# that rate without pausing on refusals: accepted items/s against (1);
# (3) refusals only: every request over its tenant's limit
# ([limits] ingest_items_per_sec = 1), 24 connections flooding: the
# server's CPU time per refused request against (1)'s per accepted one.
# CPU time is utime + stime of the server process (/proc/PID/stat) over
# the load generator's run. Prints one JSON line per run and a summary.
# Usage: scripts/bench-overload.sh [seconds] [protocol ...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}; shift || true
protocols=("$@")
[ ${#protocols[@]} -gt 0 ] || protocols=(http grpc)
# shellcheck source=scripts/bench-server.sh
source scripts/bench-server.sh
tck=$(getconf CLK_TCK)

cpu() { awk -v t="$tck" '{printf "%.3f", ($14 + $15) / t}' /proc/$pid/stat; }
load() { # protocol rate [extra args]; prints the result with the server's CPU seconds
  local p=$1 r=$2; shift 2
  local ep=$api
  [ "$p" = grpc ] && ep=http://127.0.0.1:34317
  local before; before=$(cpu)
  local out
  out=$($gen --protocol "$p" --endpoint $ep --api $api --signal traces --rate "$r" \
    --duration "$secs" "$@" 2>>"$dir/loadgen.err")
  local after; after=$(cpu)
  echo "${out%\}},\"server_cpu_s\":$(awk "BEGIN{print $after - $before}")}"
}

: >"$dir/none.toml"
printf '[limits]\ningest_items_per_sec = 1\n' >"$dir/refuse.toml"
for p in "${protocols[@]}"; do
  serve "$dir/none.toml"
  peak=$(load "$p" 0 --concurrency 8)
  stop
  echo "$peak"
  c=$(printf '%.0f' "$(field "$peak" accepted_per_s)")
  serve "$dir/none.toml"
  over=$(load "$p" $((3 * c)) --concurrency 24 --flood)
  stop
  echo "$over"
  serve "$dir/refuse.toml"
  refused=$(load "$p" $((3 * c)) --concurrency 24 --flood --no-verify)
  stop
  echo "$refused"
  python3 - "$p" "$peak" "$over" "$refused" <<'PY'
import json, sys
p, peak, over, ref = sys.argv[1], *map(json.loads, sys.argv[2:])
acc_req = peak["requests"]  # accepted requests (refusals are counted apart)
per_acc = peak["server_cpu_s"] / max(acc_req, 1)
per_ref = ref["server_cpu_s"] / max(ref["refused_requests"], 1)
print(json.dumps({
    "protocol": p,
    "peak_per_s": peak["accepted_per_s"],
    "overload_accepted_per_s": over["accepted_per_s"],
    "overload_ratio": round(over["accepted_per_s"] / max(peak["accepted_per_s"], 1), 3),
    "overload_refused_requests_per_s": round(over["refused_requests"] / over["seconds"]),
    "cpu_us_per_accepted_request": round(per_acc * 1e6),
    "refused_requests_per_s": round(ref["refused_requests"] / ref["seconds"]),
    "cpu_us_per_refused_request": round(per_ref * 1e6, 1),
    "refused_cost_share": round(per_ref / per_acc, 4),
}))
PY
done
