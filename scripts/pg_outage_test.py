#!/usr/bin/env python3
"""A daemon on PostgreSQL while its database goes away and comes back.

One daemon runs JOBS jobs every second on PostgreSQL (one item per slot, keyed by the slot, to
a file sink, `dedup_window: 0`). After a while the cluster is stopped (`pg_ctl stop -m fast`:
every connection is cut) for OUTAGE seconds, then started again with the same options.

Checked:
- during the outage `/readyz` answers 503 and says the store is failing; after it, 200 again;
- the daemon says so in its log once per outage (one "failing", one "answers again"), not once
  per tick;
- it keeps running, reconnects by itself, and loses nothing: every slot before and after the
  outage is delivered, none twice; the slots missed are those due while the database was down
  (and a few seconds around it).

usage: pg_outage_test.py PATH/TO/pollerd [JOBS] [OUTAGE_SECS]
Needs POLLERD_TEST_POSTGRES and POLLERD_TEST_PGDATA (the cluster's data directory; scripts/test
sets both); without them it says so and exits 0, unless CI=true.
"""
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from urllib.parse import urlsplit, urlunsplit

BIN = os.path.abspath(sys.argv[1])
JOBS = int(sys.argv[2]) if len(sys.argv) > 2 else 100
OUTAGE = float(sys.argv[3]) if len(sys.argv) > 3 else 6.0
BASE = os.environ.get("POLLERD_TEST_POSTGRES", "")
PGDATA = os.environ.get("POLLERD_TEST_PGDATA", "")
if not BASE or not PGDATA:
    print("pg_outage_test: POLLERD_TEST_POSTGRES or POLLERD_TEST_PGDATA is not set: skipped")
    sys.exit(1 if os.environ.get("CI") == "true" else 0)


def psql(url, sql):
    return subprocess.run(["psql", url, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql],
                          capture_output=True, text=True, check=True).stdout.strip()


def pg_ctl(*args):
    bindir = os.path.dirname(os.path.realpath(subprocess.run(
        ["sh", "-c", "command -v pg_ctl || ls /usr/lib/postgresql/*/bin/pg_ctl | tail -1"],
        capture_output=True, text=True).stdout.strip()))
    cmd = [os.path.join(bindir, "pg_ctl"), "-D", PGDATA, *args]
    if os.getuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def readyz(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def main():
    db = "pollerd_outage_" + uuid.uuid4().hex[:12]
    psql(BASE, f"CREATE DATABASE {db}")
    p = urlsplit(BASE)
    url = urlunsplit((p.scheme, p.netloc, "/" + db, p.query, p.fragment))
    # The options the cluster was started with, to start it again the same way.
    with open(os.path.join(PGDATA, "postmaster.opts")) as f:
        argv = shlex.split(f.read())
    opts = " ".join(shlex.quote(a) for a in argv[3:])  # after: postgres -D DIR
    d = tempfile.mkdtemp(prefix="pollerd-outage-")
    port = free_port()
    lines = ["pollers:", f"  state_db: {json.dumps(url)}", "  default_jitter_ms: 0", "  shutdown_grace_secs: 5",
             f"  admin_listen: 127.0.0.1:{port}", "  delivery: { dedup_window: 0 }", "  deliver:",
             f"    - file: {{ path: {json.dumps(os.path.join(d, 'items.jsonl'))} }}", "  jobs:"]
    for i in range(JOBS):
        lines.append(f"    - {{ id: j{i:03d}, kind: noop, schedule: {{ every_secs: 1 }}, "
                     "config: { items: 1, key_by_slot: true } }")
    cfg = os.path.join(d, "pollers.yaml")
    with open(cfg, "w") as f:
        f.write("\n".join(lines) + "\n")
    log = open(os.path.join(d, "daemon.log"), "w")
    daemon = subprocess.Popen([BIN, "run", "--config", cfg, "--log-level", "notice"], stdout=log,
                              stderr=subprocess.STDOUT)
    problems = []
    try:
        deadline = time.time() + 30
        while readyz(port)[0] != 200:
            if time.time() > deadline:
                raise SystemExit("the daemon did not become ready")
            time.sleep(0.2)
        time.sleep(8)
        down_at = time.time()
        pg_ctl("stop", "-m", "fast", "-w")
        seen_503 = None
        while time.time() < down_at + OUTAGE:
            code, body = readyz(port)
            if code == 503 and seen_503 is None:
                seen_503 = body
            time.sleep(0.3)
        pg_ctl("start", "-w", "-t", "60", "-l", os.path.join(PGDATA, "server.log"), "-o", opts)
        up_at = time.time()
        back = None
        while time.time() < up_at + 30:
            if readyz(port)[0] == 200:
                back = time.time() - up_at
                break
            time.sleep(0.2)
        time.sleep(8)
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
        # Whatever is left in the outbox is delivered by a daemon that runs no job.
        with open(cfg) as f:
            text = f.read().replace("pollers:\n", "pollers:\n  enabled: false\n", 1)
        drain_cfg = os.path.join(d, "drain.yaml")
        with open(drain_cfg, "w") as f:
            f.write(text.replace(f"admin_listen: 127.0.0.1:{port}", "admin_listen: off"))
        drain = subprocess.Popen([BIN, "run", "--config", drain_cfg], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        end = time.time() + 60
        while time.time() < end and psql(url, "SELECT count(*) FROM outbox_pending") != "0":
            time.sleep(0.5)
        drain.send_signal(signal.SIGTERM)
        drain.wait(timeout=60)

        copies = {}
        with open(os.path.join(d, "items.jsonl")) as f:
            for line in f:
                copies.setdefault(json.loads(line)["id"], []).append(line)
        twice = [k for k, v in copies.items() if len(set(v)) > 1]
        slots = {}
        for key in copies:
            job, rest = key.split(":", 1)[1].split("@")
            slots.setdefault(job, []).append(int(rest.split("-")[0]))
        down_ms, up_ms = int(down_at * 1000), int(up_at * 1000)
        gaps = []
        for job, ss in slots.items():
            ss.sort()
            for a, b in zip(ss, ss[1:]):
                if b - a >= 1900 and not (a >= down_ms - 3000 and b <= up_ms + 10000):
                    gaps.append((job, a, b))
        with open(os.path.join(d, "daemon.log")) as f:
            text = f.read()
        failing = text.count("the state store is failing")
        recovered = text.count("the state store answers again")
        print(f"PostgreSQL outage: {JOBS} jobs every 1 s, the cluster stopped for {OUTAGE:.0f} s")
        print(f"  /readyz during the outage: {seen_503!r}")
        print(f"  ready again {back:.1f} s after the cluster was back" if back is not None else "  never ready again")
        print(f"  log: {failing} 'failing', {recovered} 'answers again'; {len(copies)} slots delivered")
        if seen_503 is None or "store" not in seen_503:
            problems.append("/readyz did not answer 503 naming the store during the outage")
        if back is None:
            problems.append("the daemon was not ready again within 30 s of the cluster's return")
        if failing < 1 or failing > 2 or recovered < 1:
            problems.append(f"the log said 'failing' {failing} times and 'answers again' {recovered} times")
        if twice:
            problems.append(f"{len(twice)} slots processed twice, e.g. {twice[:2]}")
        if gaps:
            problems.append(f"{len(gaps)} slots missing outside the outage, e.g. {gaps[:3]}")
        if len(slots) != JOBS:
            problems.append(f"only {len(slots)} of {JOBS} jobs delivered")
    finally:
        if daemon.poll() is None:
            daemon.kill()
        try:
            psql(BASE, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        except subprocess.CalledProcessError:
            pass
    if problems:
        for p_ in problems:
            print("  FAIL: " + p_)
        print(f"  logs in {d}")
        sys.exit(1)
    print("  OK: the daemon said so once, waited, reconnected and lost nothing outside the outage")


if __name__ == "__main__":
    main()
