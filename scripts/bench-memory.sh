#!/usr/bin/env bash
# Peak RSS (VmHWM) of a release server under memory-hungry requests, with
# the default budgets (buffer.max_buffered_bytes 128 MiB, query memory
# 1 GiB): three concurrent 60 MB OTLP/HTTP requests (one span with a 60 MB
# attribute each), then the amplifying SQL of the hostile suite and the
# 60 MB span rendered as OTLP/JSON. Prints the status of each request and
# VmHWM after each step.
# Usage: scripts/bench-memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${NO_BUILD:-}" ] || cargo build --release --bin telemetryflow
bin=${BIN:-target/release/telemetryflow}
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null; rm -rf "$dir"; true' EXIT
api=http://127.0.0.1:34318
python3 - "$dir" <<'PY'
import struct, sys
def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7f; n >>= 7
        if n: out.append(b | 0x80)
        else: out.append(b); return bytes(out)
def field(num, payload): return varint(num << 3 | 2) + varint(len(payload)) + payload
def fixed64(num, v): return varint(num << 3 | 1) + struct.pack('<Q', v)
t = 1_795_687_200_000_000_000
for i in range(3):
    value = field(1, b'x' * (60 * 1000 * 1000))
    attr = field(1, b'blob') + field(2, value)
    span = (field(1, bytes([i + 1]) * 16) + field(2, bytes([i + 1]) * 8) + field(5, b'big')
            + fixed64(7, t) + fixed64(8, t + 1000) + field(9, attr))
    req = field(1, field(2, field(2, span)))
    open(f"{sys.argv[1]}/req{i}.pb", 'wb').write(req)
PY
$bin serve --data-dir "$dir/data" --grpc-addr 127.0.0.1:34317 --http-addr 127.0.0.1:34318 \
  >"$dir/server.log" 2>&1 &
pid=$!
until curl -sf "$api/readyz" >/dev/null; do sleep 0.1; done
hwm() { echo "$1: VmHWM $(grep VmHWM /proc/$pid/status | awk '{print $2/1024 " MiB"}')"; }
hwm idle
sends=()
for i in 0 1 2; do
  curl -s -o /dev/null -w "request $i: %{http_code}\n" -H 'content-type: application/x-protobuf' \
    --data-binary @"$dir/req$i.pb" $api/v1/traces &
  sends+=($!)
done
wait "${sends[@]}"
hwm "three concurrent 60 MB requests"
sql() {
  curl -s -o /dev/null -w "$1: %{http_code}\n" -H 'content-type: application/json' \
    -d "{\"sql\":\"$1\"}" $api/api/v2/sql
}
sql "SELECT length(repeat('x', 1000000000))"
sql "SELECT length(lpad('x', 1000000000))"
sql "SELECT cardinality(array_repeat(1, 200000000))"
hwm "amplifying SQL"
# The accepted requests' traces (a refused one answers 404).
for id in 01 02 03; do
  for f in otlp json; do
    curl -s -o /dev/null -w "trace $id… as $f: %{http_code} %{size_download} bytes\n" \
      "$api/api/v2/traces/$(printf "$id%.0s" {1..16})?format=$f"
  done
done
hwm "60 MB span rendered"
