#!/usr/bin/env python3
"""SIGKILL a busy pollerd daemon at random points, restart it, and check after every restart:
no cursor moves backwards, no job is lost, paused jobs stay paused, and a job's newest kept tick
is the one that committed its cursor (the history row is written with the commit); at the end
every running job made progress (leases of the killed daemon do not block its successor).

usage: crash_restart_test.py PATH/TO/pollerd [KILLS]
"""
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

from crashlib import counter, write_job_file

BIN = os.path.abspath(sys.argv[1])
KILLS = int(sys.argv[2]) if len(sys.argv) > 2 else 10
N_NOOP, N_CMD = 40, 3


def job_file(d):
    lines = ["pollers:", "  state_db: ./state.db", "  default_jitter_ms: 900", "  shutdown_grace_secs: 5", "  jobs:"]
    for i in range(N_NOOP):
        lines += [f"    - {{ id: n{i}, kind: noop, schedule: {{ every_secs: 1 }}, config: {{ advance_cursor: true }} }}"]
    for i in range(N_CMD):
        lines += [f"    - {{ id: c{i}, kind: command, schedule: {{ every_secs: 1 }}, config: {{ argv: ['/bin/echo', '{{\"n\": {i}}}'] }} }}"]
    lines += ["    - { id: boot_paused, kind: noop, paused_on_boot: true, schedule: { every_secs: 1 }, config: { advance_cursor: true } }"]
    lines += ["    - { id: op_paused, kind: noop, schedule: { every_secs: 1 }, config: { advance_cursor: true } }"]
    return write_job_file(d, "\n".join(lines) + "\n")


def state(cfg):
    out = subprocess.run([BIN, "jobs", "list", "--config", cfg, "--json"], capture_output=True, text=True, check=True)
    return {r["id"]: r for r in json.loads(out.stdout)}


def newest_cursor(cfg, job):
    """The cursor the job's newest kept tick committed (None if no kept tick changed it)."""
    out = subprocess.run([BIN, "jobs", "cursor", job, "--history", "--config", cfg, "--json"], capture_output=True, text=True, check=True)
    h = json.loads(out.stdout)
    return h[0]["cursor"] if h else None


def main():
    d = tempfile.mkdtemp(prefix="pollerd-crash-")
    cfg = job_file(d)
    log = open(os.path.join(d, "daemon.log"), "w")
    ids = [f"n{i}" for i in range(N_NOOP)] + [f"c{i}" for i in range(N_CMD)] + ["boot_paused", "op_paused"]
    prev = {}
    violations = []
    rng = random.Random(int(os.environ.get("CRASH_SEED", "7")))

    # First boot, then the operator pauses one job.
    p = subprocess.Popen([BIN, "run", "--config", cfg, "--log-level", "warning"], stdout=log, stderr=log)
    time.sleep(1.5)
    subprocess.run([BIN, "jobs", "pause", "op_paused", "--config", cfg, "--reason", "maintenance"], check=True, capture_output=True)
    p.send_signal(signal.SIGKILL)
    p.wait()
    first = state(cfg)
    kills = 1

    for k in range(KILLS):
        p = subprocess.Popen([BIN, "run", "--config", cfg, "--log-level", "warning"], stdout=log, stderr=log)
        time.sleep(rng.uniform(0.3, 2.5))
        p.send_signal(signal.SIGKILL)
        p.wait()
        kills += 1
        s = state(cfg)
        for j in ids:
            if j not in s or not s[j]["active"]:
                violations.append(f"kill {k}: job {j} lost")
                continue
            c, t = counter(s[j]["cursor"]), s[j]["ticks_total"]
            pc, pt = prev.get(j, (0, 0))
            if c < pc or t < pt:
                violations.append(f"kill {k}: job {j} went backwards: cursor {pc}->{c}, ticks {pt}->{t}")
            prev[j] = (c, t)
        for j in ids[:5]:
            h = counter(newest_cursor(cfg, j))
            if h != counter(s[j]["cursor"]):
                violations.append(f"kill {k}: job {j}'s newest kept tick committed cursor {h}, its state has {counter(s[j]['cursor'])}")
        for j in ("boot_paused", "op_paused"):
            if not s[j]["paused"]:
                violations.append(f"kill {k}: job {j} is no longer paused")

    # A last clean run: every running job must tick, even though the killed daemon left leases.
    before = state(cfg)
    p = subprocess.Popen([BIN, "run", "--config", cfg, "--log-level", "warning"], stdout=log, stderr=log)
    time.sleep(4)
    p.send_signal(signal.SIGTERM)
    rc = p.wait(timeout=30)
    if rc != 0:
        violations.append(f"SIGTERM exit code {rc}, expected 0")
    after = state(cfg)
    running = [j for j in ids if j not in ("boot_paused", "op_paused")]
    stalled = [j for j in running if after[j]["ticks_total"] <= before[j]["ticks_total"]]
    if stalled:
        violations.append(f"jobs that did not tick after the crashes: {stalled}")
    for j in ("boot_paused", "op_paused"):
        if after[j]["ticks_total"] != first[j]["ticks_total"]:
            violations.append(f"paused job {j} ticked while paused")
    total = sum(after[j]["ticks_total"] for j in running)
    noop_ok = all(counter(after[j]["cursor"]) == after[j]["ticks_total"] for j in ids if j.startswith("n"))
    if not noop_ok:
        violations.append("a noop cursor differs from its committed tick count (a tick committed twice or a cursor lost)")

    print(f"crash-restart: {kills} SIGKILLs, {len(ids)} jobs, {total} ticks committed, {len(violations)} violations")
    for v in violations:
        print("  " + v)
    if violations:
        print(f"  daemon log: {log.name}")
        sys.exit(1)


if __name__ == "__main__":
    main()
