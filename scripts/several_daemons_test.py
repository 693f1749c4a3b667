#!/usr/bin/env python3
"""Three daemons share the work on one PostgreSQL: every slot runs once, and failures pass on.

Three real daemons run the same job file on one PostgreSQL database: JOBS jobs every second,
each tick emitting one item keyed by its slot (`noop` with `key_by_slot`), delivered to one file
sink that all three write, with `dedup_window: 0` so that nothing but the fencing token could hide
a slot run twice. After KILL_AT seconds one daemon is SIGKILLed; after STOP_AT another is
SIGSTOPped for longer than the lease TTL (30 s) and then resumed. The run lasts RUN seconds; then
the daemons stop and a last one (`enabled: false`) delivers what is left of the outbox.

Checked at the end, per job:
- no slot was processed twice: two copies of one slot's item must be the same envelope (a
  redelivery of an item the killed daemon wrote but had not yet acknowledged), never two ticks;
- no slot is missing between the job's first and last slot, except within one lease TTL after the
  kill or the stop (the slots of the leases the stopped daemon held wait for their TTL);
- the three daemons each ran slots (the work is shared), and the stopped one committed nothing
  while it was stopped and nothing stale after it resumed.
Prints the failover time after the kill (until every job ticked again), the share of each daemon,
and the claims wasted per slot.

usage: several_daemons_test.py PATH/TO/pollerd [JOBS] [RUN_SECS]
Needs POLLERD_TEST_POSTGRES (scripts/test starts a cluster); without it, says so and exits 0
unless CI=true.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

BIN = os.path.abspath(sys.argv[1])
JOBS = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
RUN = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
KILL_AT = RUN * 0.25
STOP_AT = RUN * 0.35
STOP_FOR = 37.0  # past the 30 s lease TTL (lease_ttl_factor 1.0)
TTL = 30.0

BASE = os.environ.get("POLLERD_TEST_POSTGRES", "")
if not BASE:
    print("several_daemons_test: POLLERD_TEST_POSTGRES is not set: skipped")
    sys.exit(1 if os.environ.get("CI") == "true" else 0)


def with_db(url, name):
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, "/" + name, p.query, p.fragment))


def psql(url, sql):
    out = subprocess.run(["psql", url, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def job_file(d, enabled=True):
    lines = [
        "pollers:",
        f"  enabled: {'true' if enabled else 'false'}",
        "  state_db: ./unused.db",  # POLLERD_STATE_DB overrides it
        "  default_jitter_ms: 0",
        "  lease_ttl_factor: 1.0",  # leases of 30 s: the stop (37 s) outlasts them
        "  shutdown_grace_secs: 5",
        "  tick_history: 100",
        "  max_concurrent_ticks: 256",
        "  admin_listen: off",
        "  delivery: { dedup_window: 0 }",
        "  deliver:",
        f"    - file: {{ path: {json.dumps(os.path.join(d, 'items.jsonl'))} }}",
        "  jobs:",
    ]
    for i in range(JOBS):
        lines.append(f"    - {{ id: j{i:04d}, kind: noop, schedule: {{ every_secs: 1 }}, "
                     "config: { items: 1, key_by_slot: true } }")
    path = os.path.join(d, "pollers.yaml" if enabled else "drain.yaml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def start(cfg, d, name, env):
    log = open(os.path.join(d, f"{name}.log"), "w")
    level = os.environ.get("SEVERAL_LOG_LEVEL", "warning")
    return subprocess.Popen([BIN, "run", "--config", cfg, "--log-level", level], cwd=d, stdout=log,
                            stderr=subprocess.STDOUT, env=env)


def main():
    db = "pollerd_several_" + uuid.uuid4().hex[:12]
    psql(BASE, f"CREATE DATABASE {db}")
    url = with_db(BASE, db)
    d = tempfile.mkdtemp(prefix="pollerd-several-")
    env = dict(os.environ, POLLERD_STATE_DB=url)
    cfg = job_file(d)
    procs = {}
    try:
        t0 = time.time()
        for name in ("A", "B", "C"):
            procs[name] = start(cfg, d, name, env)
        pids = {name: p.pid for name, p in procs.items()}
        time.sleep(KILL_AT)
        kill_at = time.time()
        procs["C"].send_signal(signal.SIGKILL)
        procs["C"].wait()
        time.sleep(max(0, t0 + STOP_AT - time.time()))
        stop_at = time.time()
        procs["B"].send_signal(signal.SIGSTOP)
        time.sleep(STOP_FOR)
        resume_at = time.time()
        procs["B"].send_signal(signal.SIGCONT)
        time.sleep(max(3.0, t0 + RUN - time.time()))
        end_at = time.time()
        for name in ("A", "B"):
            procs[name].send_signal(signal.SIGTERM)
        for name in ("A", "B"):
            try:
                rc = procs[name].wait(timeout=60)
            except subprocess.TimeoutExpired:
                raise SystemExit(f"daemon {name} did not stop within 60 s of SIGTERM; see {d}/{name}.log")
            if rc != 0:
                raise SystemExit(f"daemon {name} exited {rc}; see {d}/{name}.log")
        # What is left in the outbox, delivered by a daemon that runs no job.
        drain = start(job_file(d, enabled=False), d, "drain", env)
        deadline = time.time() + 120
        while time.time() < deadline:
            if psql(url, "SELECT count(*) FROM outbox_pending") == "0":
                break
            time.sleep(0.5)
        else:
            raise SystemExit("the outbox did not drain within 120 s")
        drain.send_signal(signal.SIGTERM)
        drain.wait(timeout=60)

        # Which daemon committed what: the history's holder ids (host:pid:nonce).
        holders = psql(url, "SELECT holder, count(*) FROM tick_log GROUP BY holder")
        by_pid = {}
        for line in holders.splitlines():
            holder, n = line.split("|")
            pid = int(holder.split(":")[1])
            by_pid[pid] = by_pid.get(pid, 0) + int(n)
        # Fencing: a job's commits are in the order of their lease tokens. A commit made with a
        # lease that had passed to another daemon (the stopped one's, after it resumed) would land
        # after a commit with a later token.
        stale = psql(url, """SELECT count(*) FROM tick_log a JOIN tick_log b
                             ON a.job_id = b.job_id AND a.pos < b.pos AND a.seq > b.seq AND b.seq > 0""")
        late = psql(url, f"""SELECT count(*) FROM tick_log WHERE split_part(holder, ':', 2)::int = {pids['B']}
                            AND started_at < {int(stop_at * 1000)} AND duration_ms > {int(STOP_FOR * 500)}""")

        copies = {}
        with open(os.path.join(d, "items.jsonl")) as f:
            for line in f:
                env_ = json.loads(line)
                copies.setdefault(env_["id"], []).append(line)
        twice = {k: v for k, v in copies.items() if len(set(v)) > 1}
        redelivered = sum(len(v) - 1 for v in copies.values() if len(set(v)) == 1 and len(v) > 1)
        slots = {}
        for key in copies:
            job, rest = key.split(":", 1)[1].split("@")
            slots.setdefault(job, []).append(int(rest.split("-")[0]))

        kill_ms, stop_ms, resume_ms = int(kill_at * 1000), int(stop_at * 1000), int(resume_at * 1000)
        excused = [(kill_ms, kill_ms + int(TTL * 1000) + 2000), (stop_ms, resume_ms + int(TTL * 1000) + 2000)]
        missing = []
        failover = 0
        for job, ss in slots.items():
            ss.sort()
            for a, b in zip(ss, ss[1:]):
                # A job's slots follow the grid of the daemon that planned them, so a job that
                # passes between daemons moves by up to a second; a slot is missing only where two
                # runs are two intervals apart.
                if a < kill_ms <= b:
                    # The job's pause across the kill, past its one-second interval.
                    failover = max(failover, b - a - 1000)
                if b - a >= 1900:
                    gap = (a + 1000, b - 1000)
                    if not any(lo - 2000 <= gap[0] and gap[1] <= hi for lo, hi in excused):
                        missing.append((job, gap))
        lost_jobs = [f"j{i:04d}" for i in range(JOBS) if f"j{i:04d}" not in slots]

        total = sum(len(v) for v in slots.values())
        print(f"several daemons: {JOBS} jobs every 1 s for {end_at - t0:.0f} s on PostgreSQL, 3 daemons")
        print(f"  slots delivered: {total} ({total / (end_at - t0):.0f}/s), redelivered copies after the kill: {redelivered}")
        print("  slots committed per daemon: " + ", ".join(
            f"{name}={by_pid.get(pid, 0)}" for name, pid in pids.items()) + " (history rows)")
        print(f"  failover after SIGKILL: the longest pause of a job across the kill was {failover / 1000:.1f} s "
              "past its interval")
        print(f"  SIGSTOP for {STOP_FOR:.0f} s, past the lease TTL: {stale} commits out of lease-token order; "
              f"{late} ticks of the stopped daemon asked for before the stop and committed after it (no other "
              "daemon had taken them)")
        problems = []
        if twice:
            k = next(iter(twice))
            problems.append(f"{len(twice)} slots processed twice, e.g. {k}: {twice[k]}")
        if missing:
            problems.append(f"{len(missing)} gaps outside the kill's and the stop's TTL, e.g. {missing[:3]}")
        if lost_jobs:
            problems.append(f"jobs that never delivered: {lost_jobs[:5]}")
        if int(stale) != 0:
            problems.append(f"{stale} commits landed after a commit with a later lease token (fencing broken)")
        for name in ("A", "B", "C"):
            if by_pid.get(pids[name], 0) == 0:
                problems.append(f"daemon {name} ran no slot: the work was not shared")
        if problems:
            for p in problems:
                print("  FAIL: " + p)
            print(f"  logs in {d}")
            sys.exit(1)
        print("  OK: every slot ran once; the killed and the stopped daemons' jobs passed to the others")
    finally:
        for p in procs.values():
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGCONT)
                    p.kill()
                except ProcessLookupError:
                    pass
        try:
            psql(BASE, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        except subprocess.CalledProcessError:
            pass


if __name__ == "__main__":
    main()
