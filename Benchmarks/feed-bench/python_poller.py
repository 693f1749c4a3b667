#!/usr/bin/env python3
"""The tick-path benchmark's baseline: an asyncio RSS poller as people write one (aiohttp +
feedparser), keeping the same state as pollerd in SQLite (per job: ETag, Last-Modified, the
seen-id ring), one commit per tick. N jobs, each every EVERY seconds, spread evenly over the
period; a job whose slot passed while it was busy runs at once (catch-up, as pollerd does).
Prints one JSON line: the sustained rate (ticks that finished inside the measured window, per
second), the lateness (start minus due) of the ticks that started in it, CPU and peak RSS.

usage: python_poller.py BASE JOBS EVERY_SECS SECONDS [PER_HOST]
Needs: pip install aiohttp feedparser"""
import asyncio, json, os, resource, sqlite3, sys, tempfile, time
import aiohttp, feedparser

BASE, JOBS, EVERY, SECONDS = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
PER_HOST = int(sys.argv[5]) if len(sys.argv) > 5 else 2
RING = 1000


async def main():
    d = tempfile.mkdtemp(prefix="pybench-")
    db = sqlite3.connect(os.path.join(d, "state.db"))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE state (job TEXT PRIMARY KEY, etag TEXT, last_modified TEXT, seen TEXT)")
    db.executemany("INSERT INTO state VALUES (?, NULL, NULL, '[]')", [(f"job-{i}",) for i in range(JOBS)])
    db.commit()
    lateness, errors, done = [], [0], [0]
    start = time.time() + 1.0
    window_start = start + EVERY + 1.0          # one warm-up period
    window_end = window_start + SECONDS
    conn = aiohttp.TCPConnector(limit=0, limit_per_host=PER_HOST)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=30)) as session:
        async def job(i):
            jid = f"job-{i}"
            due = start + EVERY * i / JOBS
            url = f"{BASE}/feed/{i}"
            while due < window_end and time.time() < window_end:
                now = time.time()
                if due > now:
                    await asyncio.sleep(due - now)
                began = time.time()
                etag, lm, seen = db.execute("SELECT etag, last_modified, seen FROM state WHERE job = ?", (jid,)).fetchone()
                headers = {}
                if etag: headers["If-None-Match"] = etag
                if lm: headers["If-Modified-Since"] = lm
                try:
                    async with session.get(url, headers=headers) as r:
                        body = await r.read()
                        if r.status == 200:
                            feed = feedparser.parse(body)
                            ring = json.loads(seen)
                            known = set(ring)
                            new = [e.get("id") or e.get("link") for e in feed.entries if (e.get("id") or e.get("link")) not in known]
                            ring = (ring + new)[-RING:]
                            db.execute("UPDATE state SET etag = ?, last_modified = ?, seen = ? WHERE job = ?",
                                       (r.headers.get("ETag"), r.headers.get("Last-Modified"), json.dumps(ring), jid))
                        elif r.status != 304:
                            errors[0] += 1
                        db.commit()
                except Exception:
                    errors[0] += 1
                if window_start <= began < window_end:
                    lateness.append((began - due) * 1000)
                if window_start <= time.time() < window_end:
                    done[0] += 1
                due += EVERY
        async def meter():
            await asyncio.sleep(max(0, window_start - time.time()))
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            await asyncio.sleep(max(0, window_end - time.time()))
            return r0, resource.getrusage(resource.RUSAGE_SELF)
        (r0, r1), *_ = await asyncio.gather(meter(), *(job(i) for i in range(JOBS)))
    lateness.sort()
    pct = lambda p: round(lateness[min(len(lateness) - 1, int(len(lateness) * p))]) if lateness else -1
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    elapsed = SECONDS
    print(json.dumps({"system": "python asyncio+aiohttp+feedparser", "jobs": JOBS, "every_secs": EVERY, "seconds": SECONDS,
                      "expected_per_sec": JOBS / EVERY, "ticks_per_sec": round(done[0] / SECONDS, 1),
                      "lateness_p50_ms": pct(0.5), "lateness_p99_ms": pct(0.99), "lateness_max_ms": round(lateness[-1]) if lateness else -1,
                      "cpu_cores": round(cpu / elapsed, 2), "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                      "failed": errors[0]}))

asyncio.run(main())
