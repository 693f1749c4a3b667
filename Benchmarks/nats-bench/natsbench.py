"""nats-py's side of the NATS benchmark (Benchmarks/run-nats-bench.sh): request/reply round
trips against the same responder, K in flight.

usage: natsbench.py req URL SUBJECT N IN_FLIGHT
Prints one JSON line: {"client":"nats-py","mode":"req","n":…,"in_flight":…,"secs":…,"rate":…}.
"""
import asyncio
import json
import sys
import time

import nats


async def main():
    _, mode, url, subject, n, inflight = sys.argv
    n, inflight = int(n), int(inflight)
    assert mode == "req"
    nc = await nats.connect(url)
    payload = bytes(128)
    per = n // inflight

    async def worker():
        for _ in range(per):
            await nc.request(subject, payload, timeout=5)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    secs = time.perf_counter() - start
    await nc.close()
    print(json.dumps({"client": "nats-py", "mode": "req", "n": per * inflight, "in_flight": inflight,
                      "secs": round(secs, 3), "rate": round(per * inflight / secs)}))


asyncio.run(main())
