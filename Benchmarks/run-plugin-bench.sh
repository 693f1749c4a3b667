#!/usr/bin/env bash
# Plugin transports against their physical limits, side by side in one run:
#   ephemeral: pollerd's EphemeralPluginPoller vs a bare C loop spawning the same plugin through pipes
#   long-lived: pollerd's LongLivedPlugin vs a bare C pipe client, 1 and 16 requests in flight
# with a C plugin and with the Python SDK example plugin. Prints a table with ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
T=$(mktemp -d)
gcc -O2 -Wall -o "$T/plugin" Benchmarks/plugin-bench/plugin.c
gcc -O2 -Wall -o "$T/baseline" Benchmarks/plugin-bench/baseline.c
swift build -c release --product pollerd-bench >&2
B=.build/release/pollerd-bench
PY=$(python3 -c 'import sys; print(sys.executable)')
PYDIR=$PWD/examples/plugins/counter-py
row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$(python3 -c "print(f'{$2/$3*100:.0f}%')")"; }
val() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["per_sec"])'; }
echo "| transport | pollerd /s | baseline /s | pollerd ÷ baseline |"
echo "|---|---|---|---|"
p=$("$B" plugin --lifecycle ephemeral --command "$T/plugin" --count 3000 --in-flight 1 | val)
b=$("$T/baseline" spawn 3000 "$T/plugin" | val)
row "ephemeral, C plugin, one at a time" "$p" "$b"
p=$("$B" plugin --lifecycle long-lived --command "$T/plugin" --count 100000 --in-flight 1 | val)
b=$("$T/baseline" pipe 100000 1 "$T/plugin" | val)
row "long-lived, C plugin, 1 in flight" "$p" "$b"
p=$("$B" plugin --lifecycle long-lived --command "$T/plugin" --count 200000 --in-flight 16 | val)
b=$("$T/baseline" pipe 200000 16 "$T/plugin" | val)
row "long-lived, C plugin, 16 in flight" "$p" "$b"
export BENCH_KIND=py_counter
p=$("$B" plugin --lifecycle ephemeral --command "$PY" --arg=-I --arg="$PYDIR/counter.py" --dir "$PYDIR" --plugin-id counter_py --kind py_counter --count 100 --in-flight 1 | val)
b=$("$T/baseline" spawn 100 "$PY" -I "$PYDIR/counter.py" 2>/dev/null | val)
row "ephemeral, Python SDK, one at a time" "$p" "$b"
p=$("$B" plugin --lifecycle long-lived --command "$PY" --arg=-I --arg="$PYDIR/counter.py" --dir "$PYDIR" --plugin-id counter_py --kind py_counter --count 20000 --in-flight 1 | val)
b=$("$T/baseline" pipe 20000 1 "$PY" -I "$PYDIR/counter.py" 2>/dev/null | val)
row "long-lived, Python SDK, 1 in flight" "$p" "$b"
p=$("$B" plugin --lifecycle long-lived --command "$PY" --arg=-I --arg="$PYDIR/counter.py" --dir "$PYDIR" --plugin-id counter_py --kind py_counter --count 40000 --in-flight 16 | val)
b=$("$T/baseline" pipe 40000 16 "$PY" -I "$PYDIR/counter.py" 2>/dev/null | val)
row "long-lived, Python SDK, 16 in flight" "$p" "$b"
rm -rf "$T"
