#!/usr/bin/env bash
# Interleaved A/B of the scheduler benchmark: each round runs every binary once on the same
# workload, then APScheduler 3's memory store once, and prints each run's JSON and the median
# ticks/s ratio of each binary to the first.
# Usage: Benchmarks/compare-scheduler-bench.sh ROUNDS JOBS EVERY_SECS SECONDS MAX_CONCURRENT BINARY...
# SCHEDULER_BENCH_ARGS adds arguments to each pollerd run (say, "--tick-history 0").
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=$1; JOBS=$2; EVERY=$3; SECS=$4; CAP=$5; shift 5
PY=$(python3 -c 'import sys; print(sys.executable)')
"$PY" -c 'import apscheduler' 2>/dev/null || "$PY" -m pip install -q 'apscheduler<4' sqlalchemy
OUT=$(mktemp)
for r in $(seq 1 "$ROUNDS"); do
  for b in "$@"; do
    printf '%s\t' "$b" >> "$OUT"
    # shellcheck disable=SC2086
    "$b" scheduler --jobs "$JOBS" --every-secs "$EVERY" --seconds "$SECS" --max-concurrent "$CAP" ${SCHEDULER_BENCH_ARGS:-} --json | tail -1 >> "$OUT"
  done
  printf '%s\t' apscheduler-memory >> "$OUT"
  "$PY" Benchmarks/apscheduler_baseline.py --jobs "$JOBS" --every-secs "$EVERY" --seconds "$SECS" --store memory | tail -1 >> "$OUT"
done
cat "$OUT"
"$PY" - "$OUT" "$@" <<'PYEOF'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, js = line.rstrip("\n").split("\t", 1)
    rows.setdefault(name, []).append(json.loads(js))
base = sys.argv[2]
print("| binary | ticks/s (median, range) | lateness p99 ms (median) | CPU cores | peak RSS MiB | ÷ first |")
print("|---|---|---|---|---|---|")
med = lambda rs, k: statistics.median(r[k] for r in rs)
for name, rs in rows.items():
    t = [r["ticks_per_sec"] for r in rs]
    ratio = med(rs, "ticks_per_sec") / med(rows[base], "ticks_per_sec") if med(rows[base], "ticks_per_sec") else float("nan")
    print(f"| {name} | {statistics.median(t):.0f} ({min(t):.0f}–{max(t):.0f}) | {med(rs, 'lateness_p99_ms'):.0f} | {med(rs, 'cpu_cores'):.2f} | {med(rs, 'peak_rss_mib'):.0f} | {ratio:.2f}× |")
PYEOF
