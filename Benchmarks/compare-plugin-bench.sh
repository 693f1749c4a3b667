#!/usr/bin/env bash
# A/B of pollerd-bench binaries on the C plugin, interleaved with the bare C client:
#   Benchmarks/compare-plugin-bench.sh ROUNDS IN_FLIGHT COUNT BINARY...
#   LIFECYCLE=ephemeral Benchmarks/compare-plugin-bench.sh ROUNDS 1 COUNT BINARY...
# LIFECYCLE is long-lived (the default: the baseline is the bare pipe client) or ephemeral (the
# baseline is the bare C loop spawning the plugin through pipes, one at a time); CALLERS is passed
# to --callers (default: the poller's own executor).
# Each round runs every binary, then the baseline, in turn; prints per binary the median rate,
# the median CPU per tick (the daemon's own) and the median of its per-round ratios to the
# baseline. Build the binaries first (e.g. `swift build -c release --product pollerd-bench` at
# each commit, copied aside).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 4 ] || { echo "usage: $0 ROUNDS IN_FLIGHT COUNT BINARY..." >&2; exit 64; }
R=$1 K=$2 N=$3
shift 3
LIFECYCLE=${LIFECYCLE:-long-lived}
CALLERS=${CALLERS:-poller}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
gcc -O2 -Wall -o "$T/plugin" Benchmarks/plugin-bench/plugin.c
gcc -O2 -Wall -o "$T/baseline" Benchmarks/plugin-bench/baseline.c
for _ in $(seq "$R"); do
  for b in "$@"; do
    printf '%s ' "$b"
    "$b" plugin --lifecycle "$LIFECYCLE" --command "$T/plugin" --count "$N" --in-flight "$K" --callers "$CALLERS" |
      python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["per_sec"], d["cpu_us_per_tick"])'
  done
  printf 'baseline '
  if [ "$LIFECYCLE" = ephemeral ]; then base=(spawn "$N"); else base=(pipe "$N" "$K"); fi
  "$T/baseline" "${base[@]}" "$T/plugin" | python3 -c 'import json,sys; print(json.load(sys.stdin)["per_sec"], 0)'
done | python3 -c '
import collections, statistics, sys
rate, cpu, ratio, row = collections.defaultdict(list), collections.defaultdict(list), collections.defaultdict(list), []
for line in sys.stdin:
    name, r, c = line.split()
    if name == "baseline":
        for n, v in row: ratio[n].append(v / float(r) * 100)
        rate[name].append(float(r)); row = []
    else:
        rate[name].append(float(r)); cpu[name].append(float(c)); row.append((name, float(r)))
for name, rs in rate.items():
    out = f"{name}: median {statistics.median(rs):.0f}/s"
    if name in cpu:
        out += f", cpu {statistics.median(cpu[name]):.1f} us/tick, ratio {statistics.median(ratio[name]):.0f}% ({min(ratio[name]):.0f}-{max(ratio[name]):.0f}%)"
    print(out)
'
