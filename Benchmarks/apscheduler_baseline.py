#!/usr/bin/env python3
"""APScheduler 3 baseline for `pollerd-bench scheduler`: the same workload (N no-op jobs on an
interval, spread evenly over the period) and the same measurements (runs/s, lateness of runs
whose slot falls in the window, CPU over the window, peak RSS), printed as one JSON line.

Lateness is the EVENT_JOB_EXECUTED listener time minus the run's scheduled time (the no-op has
returned by then), against pollerd's poller-call time minus the due time (lease included).
"""
import argparse
import json
import os
import resource
import shutil
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone

from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler


def noop():
    pass


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--every-secs", type=int, default=10)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--store", choices=["memory", "sqlite"], default="memory")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="aps-bench-")
    jobstores = {}
    if a.store == "sqlite":
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        jobstores["default"] = SQLAlchemyJobStore(url=f"sqlite:///{tmp}/jobs.sqlite")
    sched = BackgroundScheduler(jobstores=jobstores, executors={"default": ThreadPoolExecutor(10)}, timezone=timezone.utc)

    lock = threading.Lock()
    lateness = []
    counts = {"ran": 0, "missed": 0}
    window = {"start": None, "end": None}

    def listener(ev):
        now = datetime.now(timezone.utc)
        t = ev.scheduled_run_time
        if window["start"] is None or not (window["start"] <= t < window["end"]):
            return
        with lock:
            if ev.code == EVENT_JOB_EXECUTED:
                counts["ran"] += 1
                lateness.append((now - t).total_seconds() * 1000)
            else:
                counts["missed"] += 1

    sched.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_MISSED)
    sched.start(paused=True)
    setup0 = time.time()
    base = datetime.now(timezone.utc) + timedelta(seconds=2)
    period = a.every_secs
    for i in range(a.jobs):
        start = base + timedelta(seconds=period * i / a.jobs)
        sched.add_job(noop, "interval", seconds=period, start_date=start, id=f"job-{i}")
    setup_ms = int((time.time() - setup0) * 1000)
    resume_at = datetime.now(timezone.utc)
    window["start"] = resume_at + timedelta(seconds=period + 1)
    window["end"] = window["start"] + timedelta(seconds=a.seconds)
    sched.resume()
    time.sleep(max(0.0, (window["start"] - datetime.now(timezone.utc)).total_seconds()))
    cpu0 = cpu_seconds()
    time.sleep(a.seconds)
    cpu1 = cpu_seconds()
    # Let runs due before the window's end report.
    time.sleep(1.0)
    sched.shutdown(wait=False)
    shutil.rmtree(tmp, ignore_errors=True)

    with lock:
        lat = sorted(lateness)
        ran, missed = counts["ran"], counts["missed"]

    def pct(p):
        return round(lat[min(len(lat) - 1, int(len(lat) * p))], 1) if lat else -1

    print(json.dumps({
        "system": f"apscheduler-{a.store}", "jobs": a.jobs, "every_secs": a.every_secs, "seconds": a.seconds,
        "ticks_per_sec": round(ran / a.seconds, 1), "expected_per_sec": a.jobs / a.every_secs,
        "lateness_p50_ms": pct(0.5), "lateness_p99_ms": pct(0.99), "lateness_max_ms": round(lat[-1], 1) if lat else -1,
        "cpu_seconds": round(cpu1 - cpu0, 2), "cpu_cores": round((cpu1 - cpu0) / a.seconds, 2),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, "missed": missed, "setup_ms": setup_ms,
    }, sort_keys=True))


if __name__ == "__main__":
    main()
