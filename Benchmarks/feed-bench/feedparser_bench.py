#!/usr/bin/env python3
"""feedparser's parse rate over files, as the baseline of pollerd's feed parser.
Prints one JSON line per file: {"file","bytes","entries","mb_per_sec"} (best of the rounds).
usage: feedparser_bench.py ROUNDS FILE..."""
import json, os, sys, time
import feedparser

rounds = int(sys.argv[1])
for path in sys.argv[2:]:
    data = open(path, "rb").read()
    best, entries = None, 0
    # Enough repetitions per round for a stable time on the small file.
    reps = max(1, int(2_000_000 / len(data)))
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(reps):
            d = feedparser.parse(data, response_headers={"content-location": "https://blog.example.com/feed"})
        dt = (time.perf_counter() - t0) / reps
        entries = len(d.entries)
        best = dt if best is None else min(best, dt)
    print(json.dumps({"file": os.path.basename(path), "bytes": len(data), "entries": entries,
                      "mb_per_sec": round(len(data) / best / 1e6, 3)}))
