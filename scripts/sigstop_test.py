#!/usr/bin/env python3
"""A stale daemon cannot commit: two real daemons on one state file, one stopped mid-tick.

Daemon A runs a command job alone (each tick reads its counter from the cursor, emits the next
number as an item and as the new cursor, then sleeps a second). A is stopped with SIGSTOP while
a tick is in flight, holding the job's lease. Daemon B starts on the same job file and state
file: it may take the job only once A's lease ran out (its TTL, at least 30 s), and then runs it
from the last committed cursor. A is resumed with SIGCONT: its tick in flight finishes, and its
result must be thrown away (its lease is gone), not committed over B's.

Checked at the end: the number A was computing when it was stopped was computed again by B
(the command ran twice: execution is at least once) but delivered once; the delivered items are
1..N with no gap and no repeat, with `dedup_window: 0`, so nothing but the fencing token could
hide a second commit; the stored cursor is N; A says in its log that it lost the lease, keeps
running, and the job goes on after the resume.

Usage: sigstop_test.py PATH/TO/pollerd
"""
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

BIN = os.path.abspath(sys.argv[1])

# $PPID is the daemon that runs the command (sh is its direct child). `$$` is a literal `$` in a
# job file (`${VAR}` there is the daemon's environment).
SCRIPT = (
    'n=$${POLLERD_CURSOR_TEXT:-0}; m=$((n + 1)); '
    'echo "start $m $PPID" >> runs.log; '
    'echo "{\\"id\\": \\"$m\\", \\"n\\": $m}"; '
    'echo "#pollerd cursor-text $m"; '
    'sleep 1'
)


def job_file(d):
    text = f"""pollers:
  state_db: ./state.db
  default_jitter_ms: 0
  lease_ttl_factor: 1.0
  shutdown_grace_secs: 5
  admin: {{ listen: "off" }}
  delivery: {{ dedup_window: 0 }}
  deliver:
    - file: {{ path: ./items.jsonl }}
  jobs:
    - id: slow
      kind: command
      schedule: {{ every_secs: 1 }}
      timeout_secs: 10
      config: {{ argv: ['/bin/sh', '-c', {json.dumps(SCRIPT)}], cwd: {json.dumps(d)} }}
"""
    path = os.path.join(d, "pollers.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def show(cfg):
    out = subprocess.run([BIN, "jobs", "show", "slow", "--config", cfg, "--json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def runs(d):
    try:
        with open(os.path.join(d, "runs.log")) as f:
            return [(int(n), int(pid)) for _, n, pid in (line.split() for line in f if line.strip())]
    except FileNotFoundError:
        return []


def wait(what, cond, timeout):
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise SystemExit(f"FAIL: timed out waiting for {what}")


def main():
    d = tempfile.mkdtemp(prefix="pollerd-sigstop-")
    cfg = job_file(d)
    logs = {name: open(os.path.join(d, f"{name}.log"), "w") for name in ("a", "b")}
    a = subprocess.Popen([BIN, "run", "--config", cfg, "--log-level", "info"], stdout=logs["a"], stderr=logs["a"], cwd=d)
    b = None
    failures = []
    try:
        # A alone for a few ticks; then stop it right after one of its commands started.
        wait("A's first ticks", lambda: len(runs(d)) >= 3, 30)
        seen = len(runs(d))
        stale, pid = wait("A's next tick", lambda: runs(d)[seen] if len(runs(d)) > seen else None, 10)
        a.send_signal(signal.SIGSTOP)
        stopped_at = time.time()
        assert pid == a.pid, f"the tick in flight is not A's ({pid} != {a.pid})"
        print(f"A (pid {a.pid}) stopped while computing {stale}")

        b = subprocess.Popen([BIN, "run", "--config", cfg, "--log-level", "info"], stdout=logs["b"], stderr=logs["b"], cwd=d)
        # B gets the job once A's lease ran out, computes the stale number again, and goes on.
        wait("B to take the job over", lambda: any(n == stale and p == b.pid for n, p in runs(d)), 90)
        took = time.time() - stopped_at
        print(f"B (pid {b.pid}) took the job over {took:.1f} s after A stopped")
        if took < 25:
            failures.append(f"B ran the job {took:.1f} s after A stopped, before A's lease (at least 30 s) could have run out")
        wait("B's commits", lambda: show(cfg)["ticks_total"] >= stale + 2, 30)

        a.send_signal(signal.SIGCONT)
        # A's tick in flight ends (its timeout passed while it was stopped) and its result is
        # thrown away; the job goes on from B's cursor.
        wait("A to throw its stale result away", lambda: "lease lost" in open(os.path.join(d, "a.log")).read(), 30)
        after = show(cfg)["ticks_total"]
        wait("the job to go on after A's resume", lambda: show(cfg)["ticks_total"] >= after + 2, 30)
        if a.poll() is not None:
            failures.append(f"A exited ({a.returncode}) after it was resumed")
    finally:
        for p in (a, b):
            if p is None:
                continue
            try:
                p.send_signal(signal.SIGCONT)
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=20)
            except Exception:
                p.kill()
        for f in logs.values():
            f.close()

    ran = runs(d)
    stale_runs = [p for n, p in ran if n == stale]
    if sorted(stale_runs) != sorted([a.pid, b.pid]):
        failures.append(f"{stale} was computed by {stale_runs}, expected once by A (stopped) and once by B")
    with open(os.path.join(d, "items.jsonl")) as f:
        items = [json.loads(line) for line in f if line.strip()]
    ns = [int(i["item"]["n"]) for i in items]
    if ns != list(range(1, len(ns) + 1)):
        failures.append(f"delivered items are not 1..N once each: {ns}")
    raw = show(cfg)["cursor"]
    cursor = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    if cursor != str(len(ns)):
        failures.append(f"stored cursor {cursor!r} is not the number of delivered items {len(ns)}")
    with open(os.path.join(d, "a.log")) as f:
        alog = f.read()
    if "lease lost" not in alog:
        failures.append("A's log does not say it lost the lease")
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures) + f"\n(logs in {d})")
        sys.exit(1)
    print(f"PASS: A stopped mid-tick at {stale}; B took over after the lease ran out; A's result was thrown away; "
          f"{len(ns)} items delivered once each, cursor {cursor}; the job went on after the resume")


if __name__ == "__main__":
    main()
