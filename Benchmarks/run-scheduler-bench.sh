#!/usr/bin/env bash
# Runs pollerd's scheduler benchmark and the APScheduler 3 baseline side by side, in one run,
# and prints a table with ratios. Usage: Benchmarks/run-scheduler-bench.sh [SECONDS] [EVERY_SECS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_MEASURED=${1:-30}
EVERY=${2:-10}
PY=$(python3 -c 'import sys; print(sys.executable)')
"$PY" -c 'import apscheduler, sqlalchemy' 2>/dev/null || "$PY" -m pip install -q 'apscheduler<4' sqlalchemy
swift build -c release --product pollerd-bench >&2
BENCH=.build/release/pollerd-bench
OUT=$(mktemp)
echo "machine: $(nproc) cores, $(uname -r); $("$PY" -c 'import apscheduler; print("APScheduler", apscheduler.__version__)')" >&2
for n in 1000 10000 100000; do
  echo "== $n jobs every ${EVERY}s ==" >&2
  "$BENCH" scheduler --jobs "$n" --every-secs "$EVERY" --seconds "$SECONDS_MEASURED" --json | tee -a "$OUT" >&2
  if [ "$n" -ge 100000 ]; then
    # At 100k jobs each tick holds a slot for two group-commit round trips: raise the cap.
    "$BENCH" scheduler --jobs "$n" --every-secs "$EVERY" --seconds "$SECONDS_MEASURED" --max-concurrent 1024 --json | tee -a "$OUT" >&2
  fi
  "$PY" Benchmarks/apscheduler_baseline.py --jobs "$n" --every-secs "$EVERY" --seconds "$SECONDS_MEASURED" --store memory | tee -a "$OUT" >&2
  if [ "$n" -le 10000 ]; then
    # Adding 100k jobs to the SQLAlchemy store alone takes ~90 s here (one INSERT+commit each).
    "$PY" Benchmarks/apscheduler_baseline.py --jobs "$n" --every-secs "$EVERY" --seconds "$SECONDS_MEASURED" --store sqlite | tee -a "$OUT" >&2
  fi
done
"$PY" - "$OUT" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print("| jobs | system | runs/s (target) | lateness p50 / p99 / max ms | CPU cores | peak RSS MiB | missed/skipped | pollerd ÷ this |")
print("|---|---|---|---|---|---|---|---|")
by = {}
for r in rows:
    by.setdefault(r["jobs"], {})[r["system"]] = r
for n in sorted(by):
    p = max((r for k, r in by[n].items() if k.startswith("pollerd")), key=lambda r: r["ticks_per_sec"])
    for name, r in sorted(by[n].items(), key=lambda kv: (not kv[0].startswith("pollerd"), kv[0])):
        ratio = "—" if name.startswith("pollerd") else (f"{p['ticks_per_sec'] / r['ticks_per_sec']:.1f}×" if p and r["ticks_per_sec"] > 0 else "∞ (baseline ran 0)")
        miss = r.get("missed", r.get("skipped", 0))
        print(f"| {n} | {name} | {r['ticks_per_sec']} ({r['expected_per_sec']:g}) | {r['lateness_p50_ms']} / {r['lateness_p99_ms']} / {r['lateness_max_ms']} | {r['cpu_cores']} | {r['peak_rss_mib']} | {miss} | {ratio} |")
PYEOF
rm -f "$OUT"
