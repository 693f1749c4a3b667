#!/usr/bin/env bash
# pollerd's scheduler on PostgreSQL beside its bare libpq baseline, in one run, on one cluster.
#   Benchmarks/run-pg-bench.sh URL [JOBS] [EVERY_SECS]
# URL: a database URL on the cluster whose server may create databases (scripts/postgres.sh
# start DIR prints one). The baseline (Benchmarks/pg-bench/baseline.c) runs pollerd's own claim
# and commit statements (written by `pollerd-bench pg-setup`) in batches of 64 from 4 and 8
# connections; pollerd runs JOBS noop jobs every EVERY_SECS with max_concurrent_ticks 1024.
set -euo pipefail
cd "$(dirname "$0")/.."
url=${1:?usage: run-pg-bench.sh URL [JOBS] [EVERY_SECS]}
jobs=${2:-30000}
every=${3:-2}
base=${url%/*}
swift build -c release --product pollerd-bench >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -o "$work/baseline" Benchmarks/pg-bench/baseline.c -I/usr/include/postgresql -lpq -lpthread
fresh() { psql "$url" -qAtX -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null; echo "$base/$1"; }
c=$(fresh pollerd_bench_c)
.build/release/pollerd-bench pg-setup --state-db "$c" --jobs "$jobs" --out "$work" >/dev/null
for threads in 4 8; do "$work/baseline" "$c" "$work" "$jobs" 64 "$threads" 15; done
s=$(fresh pollerd_bench_s)
.build/release/pollerd-bench scheduler --jobs "$jobs" --every-secs "$every" --seconds 20 --max-concurrent 1024 \
  --state-db "$s" --json
psql "$url" -qAtX -c "DROP DATABASE pollerd_bench_c" -c "DROP DATABASE pollerd_bench_s" >/dev/null
