#!/usr/bin/env bash
# pollerd's feed parser beside feedparser (Python), on the same real-shaped feeds, in one run:
#   Benchmarks/compare-feed-bench.sh ROUNDS [PATH/TO/pollerd-bench]
# Rounds alternate the two parsers; prints per feed the median MB/s of each and the median of
# the per-round ratios. Needs `pip install feedparser`; build pollerd-bench with -c release.
set -euo pipefail
cd "$(dirname "$0")/.."
R=${1:-5}
BIN=${2:-.build/release/pollerd-bench}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
python3 Benchmarks/feed-bench/make_feeds.py "$T" >/dev/null
FILES=("$T/small.xml" "$T/medium.xml" "$T/large.xml")
for _ in $(seq "$R"); do
  "$BIN" feed-parse --rounds 1 "${FILES[@]}" | sed 's/^/pollerd /'
  python3 Benchmarks/feed-bench/feedparser_bench.py 1 "${FILES[@]}" | sed 's/^/feedparser /'
done | python3 -c '
import collections, json, statistics, sys
rates = collections.defaultdict(lambda: collections.defaultdict(list))
meta = {}
for line in sys.stdin:
    who, js = line.split(" ", 1)
    d = json.loads(js)
    rates[d["file"]][who].append(d["mb_per_sec"])
    meta[d["file"]] = (d["bytes"], d["entries"])
for f, by in rates.items():
    p, b = by["pollerd"], by["feedparser"]
    ratios = [x / y for x, y in zip(p, b)]
    n, e = meta[f]
    print(f"{f} ({n} bytes, {e} entries): pollerd {statistics.median(p):.1f} MB/s, feedparser {statistics.median(b):.2f} MB/s, "
          f"ratio {statistics.median(ratios):.1f}x ({min(ratios):.1f}-{max(ratios):.1f}x over {len(ratios)} rounds)")
'
