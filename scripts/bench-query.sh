#!/usr/bin/env bash
# Query latency (issue 4): time-series aggregation and trace lookup, ours
# (handlers and plain SQL on our engine) against DuckDB on the same Parquet
# files, side by side. Generates the store (10M spans + 10M metric points by
# default) on first use and reuses it afterwards.
#
# Usage: scripts/bench-query.sh [iterations]
#   NO_BUILD=1       use the existing target/$PROFILE/examples/querybench
#   PROFILE=release  or debug (cargo build without --release)
#   DATA_DIR=./bench-data   SPANS=10000000   POINTS=10000000   SEED=42
#   REGENERATE=1     replace an existing store
#   OUT_DIR=target/querybench   ours.json, duckdb.json, side-by-side.md
set -euo pipefail
cd "$(dirname "$0")/.."
iterations=${1:-10}
profile=${PROFILE:-release}
data_dir=${DATA_DIR:-./bench-data}
out_dir=${OUT_DIR:-target/querybench}
bin=target/$profile/examples/querybench

if [ -z "${NO_BUILD:-}" ]; then
  if [ "$profile" = release ]; then
    cargo build --release --example querybench
  else
    cargo build --example querybench
  fi
fi
[ -x "$bin" ] || { echo "$bin not found: build it (cargo build --release --example querybench) or unset NO_BUILD" >&2; exit 1; }

if ! python3 -c 'import duckdb' 2>/dev/null; then
  echo "installing duckdb (pip) …" >&2
  python3 -m pip install --quiet duckdb
fi

if [ -n "${REGENERATE:-}" ] || [ ! -f "$data_dir/querybench.json" ]; then
  force=()
  [ -n "${REGENERATE:-}" ] && force=(--force)
  "$bin" generate --data-dir "$data_dir" --spans "${SPANS:-10000000}" \
    --points "${POINTS:-10000000}" --seed "${SEED:-42}" "${force[@]}"
else
  echo "reusing the store in $data_dir (REGENERATE=1 to rebuild it)" >&2
fi

mkdir -p "$out_dir"
"$bin" run --data-dir "$data_dir" --iterations "$iterations" --json "$out_dir/ours.json"
python3 scripts/bench_query_duckdb.py --data-dir "$data_dir" --iterations "$iterations" \
  --json "$out_dir/duckdb.json" --ours "$out_dir/ours.json" --markdown "$out_dir/side-by-side.md"
