#!/usr/bin/env bash
# Ingest throughput and ack latency with API keys + TLS on both listeners
# versus off (auth.mode = "none", plain TCP), release build, in one run:
# for each signal/protocol the two setups alternate ROUNDS times (default 2)
# on fresh data directories, the load generator flat out. A test CA and a
# server certificate for 127.0.0.1 are made with openssl.
# Usage: scripts/bench-auth.sh [seconds] [signal/protocol ...]
#   e.g. scripts/bench-auth.sh 15 traces/grpc traces/http
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}; shift || true
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(traces/grpc traces/http logs/http)
rounds=${ROUNDS:-2}
[ -n "${NO_BUILD:-}" ] || cargo build --release --bin telemetryflow --example loadgen
bin=${BIN:-target/release/telemetryflow}
gen=${GEN:-target/release/examples/loadgen}
pki=$(mktemp -d)
trap 'rm -rf "$pki"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=bench CA" -keyout "$pki/ca.key" -out "$pki/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$pki/server.key" -out "$pki/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$pki/san.ext"
openssl x509 -req -in "$pki/server.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
  -days 2 -extfile "$pki/san.ext" -out "$pki/server.pem" 2>/dev/null

run() { # signal protocol secure(0|1)
  local signal=$1 protocol=$2 secure=$3
  local dir; dir=$(mktemp -d)
  local scheme=http env=() tls=()
  if [ "$secure" = 1 ]; then
    scheme=https
    env=(TELEMETRYFLOW_AUTH_MODE=api_key TELEMETRYFLOW_SERVER_TLS_CERT="$pki/server.pem"
      TELEMETRYFLOW_SERVER_TLS_KEY="$pki/server.key")
    tls=(--ca "$pki/ca.pem")
    export TELEMETRYFLOW_API_KEY
    TELEMETRYFLOW_API_KEY=$($bin keys create --data-dir "$dir" --tenant bench --scopes ingest,query)
  else
    unset TELEMETRYFLOW_API_KEY
  fi
  env "${env[@]}" $bin serve --data-dir "$dir" --grpc-addr 127.0.0.1:34317 --http-addr 127.0.0.1:34318 \
    >"$dir/server.log" 2>&1 &
  local pid=$!
  until curl -skf "$scheme://127.0.0.1:34318/readyz" >/dev/null; do sleep 0.1; done
  local ep=$scheme://127.0.0.1:34318
  [ "$protocol" = grpc ] && ep=$scheme://127.0.0.1:34317
  local out
  out=$($gen --protocol "$protocol" --endpoint "$ep" --api "$scheme://127.0.0.1:34318" "${tls[@]}" \
    --tenant bench --signal "$signal" --duration "$secs" --concurrency 8 2>"$dir/loadgen.err") \
    || { cat "$dir/loadgen.err" >&2; }
  kill -TERM $pid; wait $pid || true
  echo "${out%\}},\"auth_tls\":$([ "$secure" = 1 ] && echo true || echo false),\"verified\":$(grep -q '^verified' "$dir/loadgen.err" && echo true || echo false)}"
  rm -rf "$dir"
}
for c in "${cases[@]}"; do
  signal=${c%/*} protocol=${c#*/}
  for _ in $(seq "$rounds"); do
    run "$signal" "$protocol" 0
    run "$signal" "$protocol" 1
  done
done
