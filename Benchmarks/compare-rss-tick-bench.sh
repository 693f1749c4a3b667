#!/usr/bin/env bash
# The whole rss tick path, pollerd beside a Python asyncio poller, in one run:
#   Benchmarks/compare-rss-tick-bench.sh [JOBS] [EVERY_SECS] [SECONDS] [PATH/TO/pollerd-bench]
# One feed server on loopback (pollerd-bench feed-server: half the answers 304, half a 50-entry
# feed with one new entry a second) serves both. Runs, in turn: pollerd at JOBS, the Python
# poller (aiohttp + feedparser + SQLite) at JOBS, and pollerd at 3 x JOBS to find its own
# ceiling. Both keep the default of 2 requests in flight per host. Prints each run's JSON line,
# then the ratio of sustained rates. Needs `pip install aiohttp feedparser`; build pollerd-bench
# with -c release.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${1:-1000} EVERY=${2:-1} SECS=${3:-20}
BIN=${4:-.build/release/pollerd-bench}
T=$(mktemp -d)
"$BIN" feed-server --port 0 > "$T/server.out" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$T"' EXIT
for _ in $(seq 50); do grep -q listening "$T/server.out" 2>/dev/null && break; sleep 0.1; done
PORT=$(awk '/listening/ {print $2}' "$T/server.out")
BASE="http://127.0.0.1:$PORT"
"$BIN" scheduler --jobs "$JOBS" --every-secs "$EVERY" --seconds "$SECS" --feed-base "$BASE" --json | tee "$T/pollerd.json"
python3 Benchmarks/feed-bench/python_poller.py "$BASE" "$JOBS" "$EVERY" "$SECS" 2 | tee "$T/python.json"
"$BIN" scheduler --jobs $((JOBS * 3)) --every-secs "$EVERY" --seconds "$SECS" --feed-base "$BASE" --json | tee "$T/pollerd-max.json"
python3 - "$T" <<'PY'
import json, sys
d = sys.argv[1]
p, py, mx = (json.load(open(f"{d}/{n}.json")) for n in ("pollerd", "python", "pollerd-max"))
best = max(p["ticks_per_sec"], mx["ticks_per_sec"])
print(f"offered {p['expected_per_sec']:.0f}/s: pollerd {p['ticks_per_sec']}/s p99 {p['lateness_p99_ms']} ms at {p['cpu_cores']} cores; "
      f"python {py['ticks_per_sec']}/s p99 {py['lateness_p99_ms']} ms at {py['cpu_cores']} cores")
print(f"pollerd's ceiling (offered {mx['expected_per_sec']:.0f}/s): {mx['ticks_per_sec']}/s; sustained ratio pollerd/python = {best / py['ticks_per_sec']:.1f}x")
PY
