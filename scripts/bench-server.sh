# Sourced by the benchmark scripts that run one server at a time, from the
# repository's root: builds the release binaries unless NO_BUILD is set, and
# sets $bin and $gen (BIN and GEN override them), $dir (a temporary
# directory, removed on exit, with the server stopped) and $api. `serve
# FILE` starts the server with a config file on the benchmark ports (data
# in a fresh directory under $dir, log in $dir/server.log) and waits until
# it is ready, setting $pid; `stop` stops it; `field JSON NAME` reads a
# number from a load generator result.
[ -n "${NO_BUILD:-}" ] || cargo build --release --bin telemetryflow --example loadgen
bin=${BIN:-target/release/telemetryflow}
gen=${GEN:-target/release/examples/loadgen}
dir=$(mktemp -d)
pid=
trap 'kill $pid 2>/dev/null; rm -rf "$dir"; true' EXIT
api=http://127.0.0.1:34318
serve() { # config file
  $bin serve --config "$1" --data-dir "$dir/data-$RANDOM" --grpc-addr 127.0.0.1:34317 \
    --http-addr 127.0.0.1:34318 >>"$dir/server.log" 2>&1 &
  pid=$!
  until curl -sf "$api/readyz" >/dev/null; do sleep 0.1; done
}
stop() { kill -TERM $pid; wait $pid || true; }
field() { sed -E "s/.*\"$2\":([0-9.]+).*/\1/" <<<"$1"; }
