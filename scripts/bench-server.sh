# Sourced by the benchmark scripts that restart one server with a config
# file: `serve FILE` starts it on the benchmark ports (data in a fresh
# directory under $dir, log in $dir/server.log) and waits until ready,
# setting $pid; `stop` stops it; `field JSON NAME` reads a number from a
# load generator result. Needs $bin, $dir and $api.
serve() { # config file
  $bin serve --config "$1" --data-dir "$dir/data-$RANDOM" --grpc-addr 127.0.0.1:34317 \
    --http-addr 127.0.0.1:34318 >>"$dir/server.log" 2>&1 &
  pid=$!
  until curl -sf "$api/readyz" >/dev/null; do sleep 0.1; done
}
stop() { kill -TERM $pid; wait $pid || true; }
field() { sed -E "s/.*\"$2\":([0-9.]+).*/\1/" <<<"$1"; }
