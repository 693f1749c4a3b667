#!/usr/bin/env bash
# The outbox, side by side with its baselines in one run:
#   drain: items/s from the outbox to a file sink (pollerd's Deliverer, SQLite store, FileSink,
#          fsync per batch) vs a bare C loop appending the same lines with one fsync per batch
#          of the same size -- the physical limit of a durable JSON-lines sink;
#   tick cost: µs per tick (lease + noop tick + commit) with 100 items queued for a file sink,
#          vs the same tick with no items. Runs alternate, three rounds each.
# usage: Benchmarks/run-outbox-bench.sh [JOBS] [TICKS_PER_JOB]
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${1:-16}
TICKS=${2:-25}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
gcc -O2 -Wall -o "$T/baseline" Benchmarks/outbox-bench/baseline.c
swift build -c release --product pollerd-bench >&2
B=.build/release/pollerd-bench
get() { python3 -c "import json,sys; print(json.loads(sys.stdin.read())['$1'])"; }
echo "| measurement | pollerd | baseline | pollerd ÷ baseline |"
echo "|---|---|---|---|"
for round in 1 2 3; do
  out=$("$B" outbox drain --jobs "$JOBS" --ticks "$TICKS" --items 100 --batch-size 256 --dir "$T")
  p=$(echo "$out" | get per_sec); n=$(echo "$out" | get items); line=$(echo "$out" | get sample_line)
  b=$("$T/baseline" "$n" 256 "$T/base.jsonl" "$line" | get per_sec)
  printf '| drain to file sink, %s items, batch 256 (round %s) | %.0f items/s | %.0f lines/s | %s |\n' "$n" "$round" "$p" "$b" "$(python3 -c "print(f'{$p/$b*100:.1f}%')")"
done
for round in 1 2 3; do
  z=$("$B" outbox tick-cost --items 0 --ticks 400 --dir "$T" | get us_per_tick)
  h=$("$B" outbox tick-cost --items 100 --ticks 400 --dir "$T" | get us_per_tick)
  printf '| tick with 100 items vs 0 items (round %s) | %s µs | %s µs | %s |\n' "$round" "$h" "$z" "$(python3 -c "print(f'{$h/$z:.2f}×')")"
done
