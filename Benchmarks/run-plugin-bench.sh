#!/usr/bin/env bash
# Plugin transports against their physical limits, side by side in one run:
#   ephemeral: pollerd's EphemeralPluginPoller vs a bare C loop spawning the same plugin through pipes
#   long-lived: pollerd's LongLivedPlugin vs a bare C pipe client, 1 and 16 requests in flight
# with a C plugin and with the Python SDK example plugin. Each row is ROUNDS (default 3)
# interleaved pairs; prints medians and the median ratio with its range.
set -euo pipefail
cd "$(dirname "$0")/.."
T=$(mktemp -d)
gcc -O2 -Wall -o "$T/plugin" Benchmarks/plugin-bench/plugin.c
gcc -O2 -Wall -o "$T/baseline" Benchmarks/plugin-bench/baseline.c
swift build -c release --product pollerd-bench >&2
B=.build/release/pollerd-bench
PY=$(python3 -c 'import sys; print(sys.executable)')
PYDIR=$PWD/examples/plugins/counter-py
ROUNDS=${ROUNDS:-3}
val() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["per_sec"])'; }
# measure LABEL POLLERD_CMD BASELINE_CMD: ROUNDS interleaved pairs; prints medians and the
# median of the per-pair ratios (the host's noise moves both sides of a pair together).
measure() {
  local label=$1 pc=$2 bc=$3 ps=() bs=()
  for _ in $(seq "$ROUNDS"); do
    ps+=("$(eval "$pc" | val)"); bs+=("$(eval "$bc" 2>/dev/null | val)")
  done
  python3 - "$label" "${ps[*]}" "${bs[*]}" <<'PY'
import statistics, sys
label, ps, bs = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
ratios = sorted(p / b * 100 for p, b in zip(ps, bs))
print(f"| {label} | {statistics.median(ps):.1f} | {statistics.median(bs):.1f} | {statistics.median(ratios):.0f}% ({ratios[0]:.0f}–{ratios[-1]:.0f}%) |")
PY
}
echo "| transport | pollerd /s (median) | baseline /s (median) | pollerd ÷ baseline, median of $ROUNDS pairs (range) |"
echo "|---|---|---|---|"
measure "ephemeral, C plugin, one at a time" '"$B" plugin --lifecycle ephemeral --command "$T/plugin" --count 3000 --in-flight 1' '"$T/baseline" spawn 3000 "$T/plugin"'
# The runner's shape: each tick a task of its own started on the poller's executor, awaited from the pool.
measure "ephemeral, C plugin, a task per tick (the runner's shape)" '"$B" plugin --lifecycle ephemeral --command "$T/plugin" --count 3000 --in-flight 1 --callers tick-task' '"$T/baseline" spawn 3000 "$T/plugin"'
measure "long-lived, C plugin, 1 in flight" '"$B" plugin --lifecycle long-lived --command "$T/plugin" --count 100000 --in-flight 1' '"$T/baseline" pipe 100000 1 "$T/plugin"'
measure "long-lived, C plugin, 16 in flight" '"$B" plugin --lifecycle long-lived --command "$T/plugin" --count 200000 --in-flight 16' '"$T/baseline" pipe 200000 16 "$T/plugin"'
# The same, with the ticking tasks elsewhere than on the plugin's executor (see --callers).
measure "long-lived, C plugin, 16 in flight, callers on the global pool" '"$B" plugin --lifecycle long-lived --command "$T/plugin" --count 200000 --in-flight 16 --callers pool' '"$T/baseline" pipe 200000 16 "$T/plugin"'
measure "long-lived, C plugin, 16 in flight, a task per tick (the runner's shape)" '"$B" plugin --lifecycle long-lived --command "$T/plugin" --count 200000 --in-flight 16 --callers tick-task' '"$T/baseline" pipe 200000 16 "$T/plugin"'
export BENCH_KIND=py_counter
measure "ephemeral, Python SDK, one at a time" '"$B" plugin --lifecycle ephemeral --command "$PY" --arg=-I --arg="$PYDIR/counter.py" --dir "$PYDIR" --plugin-id counter_py --kind py_counter --count 100 --in-flight 1' '"$T/baseline" spawn 100 "$PY" -I "$PYDIR/counter.py"'
measure "long-lived, Python SDK, 1 in flight" '"$B" plugin --lifecycle long-lived --command "$PY" --arg=-I --arg="$PYDIR/counter.py" --dir "$PYDIR" --plugin-id counter_py --kind py_counter --count 20000 --in-flight 1' '"$T/baseline" pipe 20000 1 "$PY" -I "$PYDIR/counter.py"'
measure "long-lived, Python SDK, 16 in flight" '"$B" plugin --lifecycle long-lived --command "$PY" --arg=-I --arg="$PYDIR/counter.py" --dir "$PYDIR" --plugin-id counter_py --kind py_counter --count 40000 --in-flight 16' '"$T/baseline" pipe 40000 16 "$PY" -I "$PYDIR/counter.py"'
rm -rf "$T"
