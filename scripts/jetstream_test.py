#!/usr/bin/env python3
"""Exactly once into a JetStream stream, through SIGKILLs of the daemon and of nats-server.

A nats-server with JetStream (-js -sd DIR) on a free loopback port holds a stream ITEMS that
captures items.> with a 10-minute duplicate window. A daemon runs three jobs that produce
numbered items every second into a `nats` sink on items.out. The daemon is killed with SIGKILL
at random points KILLS times and restarted each time; nats-server itself is SIGKILLed and
started again twice while a daemon runs (the client reconnects; the daemon is not restarted).
At the end the jobs are paused, the outbox drains, and the stream must hold each item the
committed cursors say was produced exactly once: no item missing, none twice, none unknown, and
each message's Nats-Msg-Id its envelope's idempotency key.

usage: jetstream_test.py PATH/TO/pollerd [KILLS]
"""
import base64
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from crashlib import counter, pause_and_drain, write_job_file

BIN = os.path.abspath(sys.argv[1])
KILLS = int(sys.argv[2]) if len(sys.argv) > 2 else 12
ITEMS_PER_TICK = 10
JOBS = ["gen0", "gen1", "gen2"]
rng = random.Random(int(os.environ.get("CRASH_SEED", "7")))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nats_server_binary():
    for d in os.environ.get("PATH", "").split(":") + ["/usr/sbin", "/usr/bin"]:
        p = os.path.join(d, "nats-server")
        if os.access(p, os.X_OK):
            return p
    sys.exit("jetstream test: nats-server is not installed (.ci/run installs it)")


class Server:
    """nats-server with JetStream on a fixed port and store, that can be killed and restarted."""

    def __init__(self, d):
        self.port = free_port()
        self.store = os.path.join(d, "js")
        self.log = os.path.join(d, "nats.log")
        self.p = None

    def start(self):
        self.p = subprocess.Popen(
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", self.store,
             "-l", self.log], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        sys.exit("jetstream test: nats-server did not start")

    def kill(self):
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(timeout=30)


class Conn:
    """Just enough of the NATS protocol for JetStream API requests (the test's own client, so
    that it checks pollerd's client rather than trusting it)."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.f = self.s.makefile("rb")
        if not self.f.readline().startswith(b"INFO"):
            raise RuntimeError("no INFO")
        self.s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"protocol":1,"headers":true,'
                       b'"no_responders":true}\r\nSUB _INBOX.jst.* 1\r\n')
        self.n = 0

    def request(self, subject, payload=b""):
        self.n += 1
        inbox = f"_INBOX.jst.{self.n}"
        self.s.sendall(f"PUB {subject} {inbox} {len(payload)}\r\n".encode() + payload + b"\r\n")
        while True:
            line = self.f.readline()
            if not line:
                raise RuntimeError("connection closed")
            if line.startswith(b"PING"):
                self.s.sendall(b"PONG\r\n")
                continue
            if line.startswith(b"-ERR"):
                raise RuntimeError(line.decode().strip())
            parts = line.split()
            if parts[0] not in (b"MSG", b"HMSG"):
                continue
            body = self.f.read(int(parts[-1]) + 2)[:-2]
            headers = b""
            if parts[0] == b"HMSG":
                h = int(parts[-2])
                headers, body = body[:h], body[h:]
            if parts[1].decode() == inbox:
                if headers.startswith(b"NATS/1.0 503"):
                    raise RuntimeError(f"no responders on {subject}")
                return json.loads(body)

    def close(self):
        self.s.close()


def job_file(d, nats_port, admin_port):
    text = f"""pollers:
  state_db: ./state.db
  admin_listen: 127.0.0.1:{admin_port}
  default_jitter_ms: 0
  shutdown_grace_secs: 2
  broker: {{ url: "nats://127.0.0.1:{nats_port}", name: jetstream-test, ack_window: 16 }}
  delivery: {{ retry_base_ms: 50, retry_max_secs: 1, max_attempts: 1000, batch_size: 7 }}
  deliver:
    - nats: {{ subject: items.out }}
  jobs:
"""
    for j in JOBS:
        text += f"""    - {{ id: {j}, kind: noop, schedule: {{ every_secs: 1 }}, config: {{ advance_cursor: true, items: {ITEMS_PER_TICK} }} }}
"""
    return write_job_file(d, text)


def readyz(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def cli(cfg, *args):
    out = subprocess.run([BIN, *args, "--config", cfg, "--json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main():
    d = tempfile.mkdtemp(prefix="pollerd-jetstream-")
    server = Server(d)
    server.start()
    c = Conn(server.port)
    created = c.request("$JS.API.STREAM.CREATE.ITEMS", json.dumps({
        "name": "ITEMS", "subjects": ["items.>"], "storage": "file",
        "duplicate_window": 600 * 1_000_000_000}).encode())
    if "error" in created:
        sys.exit(f"jetstream test: cannot create the stream: {created['error']}")
    c.close()
    admin_port = free_port()
    cfg = job_file(d, server.port, admin_port)
    log = open(os.path.join(d, "daemon.log"), "w")
    start = time.time()
    server_restarts = 0
    for k in range(KILLS):
        p = subprocess.Popen([BIN, "run", "--config", cfg, "--log-level", "error"], stdout=log, stderr=log)
        if k in (KILLS // 3, 2 * KILLS // 3):
            # nats-server killed under load, started again while the daemon keeps running.
            time.sleep(rng.uniform(0.8, 1.5))
            server.kill()
            time.sleep(rng.uniform(0.5, 1.5))
            server.start()
            server_restarts += 1
        time.sleep(rng.uniform(0.3, 2.5))
        p.send_signal(signal.SIGKILL)
        p.wait()
    # The last daemon keeps running through a stop of nats-server: /readyz says the broker is
    # down, the items wait in the outbox, and delivery resumes when the server is back, with
    # no restart of the daemon.
    p = subprocess.Popen([BIN, "run", "--config", cfg, "--log-level", "error"], stdout=log, stderr=log)
    time.sleep(1.5)
    server.kill()
    server_restarts += 1
    time.sleep(2.5)
    ready_down = readyz(admin_port)
    lanes_down = cli(cfg, "outbox", "stats")
    server.start()
    deadline = time.time() + 30
    ready_up = readyz(admin_port)
    while ready_up[0] != 200 and time.time() < deadline:
        time.sleep(0.2)
        ready_up = readyz(admin_port)
    time.sleep(1.0)
    stats = pause_and_drain(BIN, cfg, JOBS)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=30)
    per_job = {j: counter(cli(cfg, "jobs", "show", j)["cursor"]) for j in JOBS}
    ticks = sum(per_job.values())
    expected = {f"{j}-{t}-{i}" for j, n in per_job.items() for t in range(1, n + 1) for i in range(ITEMS_PER_TICK)}

    problems = []
    c = Conn(server.port)
    info = c.request("$JS.API.STREAM.INFO.ITEMS")
    state = info.get("state", {})
    seen = {}
    for seq in range(state.get("first_seq", 1), state.get("last_seq", 0) + 1):
        m = c.request("$JS.API.STREAM.MSG.GET.ITEMS", json.dumps({"seq": seq}).encode())
        if "error" in m:
            problems.append(f"seq {seq}: {m['error']}")
            continue
        msg = m["message"]
        env = json.loads(base64.b64decode(msg["data"]))
        hdrs = base64.b64decode(msg.get("hdrs", "")).decode()
        msg_id = next((l.split(":", 1)[1].strip() for l in hdrs.split("\r\n") if l.startswith("Nats-Msg-Id:")), None)
        item_id = env.get("item", {}).get("id")
        if msg_id != env.get("id"):
            problems.append(f"seq {seq}: Nats-Msg-Id {msg_id!r} is not the envelope's key {env.get('id')!r}")
        if item_id not in expected:
            problems.append(f"seq {seq}: unexpected item {item_id!r}")
        seen[item_id] = seen.get(item_id, 0) + 1
    c.close()
    server.stop()
    twice = [i for i, n in seen.items() if n > 1]
    missing = expected - set(seen)
    if twice:
        problems.append(f"{len(twice)} items stored more than once, e.g. {sorted(twice)[:5]}")
    if missing:
        problems.append(f"{len(missing)} items missing, e.g. {sorted(missing)[:5]}")
    if stats.get("pending") != 0:
        problems.append(f"outbox not drained: {stats.get('pending')} items pending")
    if stats.get("dead_letters") != 0:
        problems.append(f"{stats.get('dead_letters')} dead letters")
    errors = [l.get("last_error") or "" for l in lanes_down.get("lanes", [])]
    print(f"while nats-server was down: /readyz {ready_down[0]} {ready_down[1][:160]}; lanes: {sorted(set(errors))[:2]}")
    if ready_down[0] != 503 or "broker_unavailable" not in ready_down[1]:
        problems.append(f"/readyz with nats-server down: {ready_down}")
    if ready_up[0] != 200:
        problems.append(f"/readyz after nats-server came back: {ready_up}")
    if not any("broker" in e for e in errors):
        problems.append(f"the outbox's lanes did not name the broker while it was down: {errors}")
    if ticks < KILLS // 2:
        problems.append(f"only {ticks} ticks committed over {KILLS} restarts")
    print(f"jetstream test: {KILLS} daemon SIGKILLs and {server_restarts} nats-server SIGKILLs in "
          f"{time.time() - start:.0f}s; {ticks} ticks committed, {len(expected)} items produced, "
          f"{state.get('messages')} messages in the stream")
    if problems:
        print("FAILED:")
        for pr in problems[:20]:
            print("  " + pr)
        print(f"(state kept in {d})")
        sys.exit(1)
    shutil.rmtree(d, ignore_errors=True)
    print("ok: every produced item is in the stream exactly once")


if __name__ == "__main__":
    main()
