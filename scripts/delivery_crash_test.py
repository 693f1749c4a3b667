#!/usr/bin/env python3
"""Durable delivery under SIGKILL: a daemon runs a job that produces numbered items, delivered
to a file sink and to a flaky webhook (HTTP 503/429/500, slow answers, dropped connections).
Three jobs; the daemon is killed with SIGKILL at random points KILLS times and restarted each time. At the
end, with the outbox drained, every item the committed cursor says was produced must be in
each sink at least once, nothing unknown may appear, and every copy of an item must carry the
same idempotency key. Every webhook request's HMAC signature is checked. Prints the counts.

usage: delivery_crash_test.py PATH/TO/pollerd [KILLS]
"""
import hashlib
import hmac
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from crashlib import counter, pause_and_drain, write_job_file
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BIN = os.path.abspath(sys.argv[1])
KILLS = int(sys.argv[2]) if len(sys.argv) > 2 else 20
ITEMS_PER_TICK = 10
JOBS = ["gen0", "gen1", "gen2"]
SECRET = "crash-test-secret"
rng = random.Random(int(os.environ.get("CRASH_SEED", "11")))


class Hook:
    """What the flaky webhook accepted, and what it saw wrong."""
    lock = threading.Lock()
    accepted = []       # envelopes answered with 2xx
    refused = 0
    bad_signatures = 0
    requests = 0


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        with Hook.lock:
            Hook.requests += 1
            if self.headers.get("X-Pollerd-Signature") != sig:
                Hook.bad_signatures += 1
        roll = rng.random()
        if roll < 0.15:
            self.answer(503, {"Retry-After": "0"})
        elif roll < 0.22:
            self.answer(429, {"Retry-After": "1"})
        elif roll < 0.27:
            self.answer(500, {})
        elif roll < 0.30:
            self.close_connection = True          # drop the connection without answering
            return
        else:
            if roll > 0.97:
                time.sleep(0.3)
            env = json.loads(body)
            with Hook.lock:
                Hook.accepted.append(env)
            self.answer(200, {})
            return
        with Hook.lock:
            Hook.refused += 1

    def answer(self, status, headers):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()


def job_file(d, port, admin_port):
    text = f"""pollers:
  state_db: ./state.db
  admin_listen: 127.0.0.1:{admin_port}
  default_jitter_ms: 0
  shutdown_grace_secs: 2
  delivery: {{ retry_base_ms: 50, retry_max_secs: 1, max_attempts: 1000, batch_size: 7 }}
  deliver:
    - file: {{ path: ./out/items.jsonl }}
    - webhook: {{ url: "http://127.0.0.1:{port}/hook", secret: "{SECRET}", timeout_secs: 2 }}
  jobs:
"""
    for j in JOBS:
        text += f"""    - {{ id: {j}, kind: noop, schedule: {{ every_secs: 1 }}, config: {{ advance_cursor: true, items: {ITEMS_PER_TICK} }} }}
"""
    return write_job_file(d, text)


def cli(cfg, *args):
    out = subprocess.run([BIN, *args, "--config", cfg, "--json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def check_copies(name, envelopes, expected, problems):
    """Every expected item at least once; nothing else; one key per item."""
    keys = {}
    for env in envelopes:
        item_id = env.get("item", {}).get("id")
        if item_id not in expected:
            problems.append(f"{name}: unexpected item {item_id!r}")
            continue
        if env.get("id") != f"{env.get('job_id')}:{item_id}" or not item_id.startswith(env.get("job_id") + "-"):
            problems.append(f"{name}: item {item_id} has key {env.get('id')!r}")
        keys.setdefault(item_id, set()).add(env.get("id"))
    missing = expected - set(keys)
    if missing:
        problems.append(f"{name}: {len(missing)} items missing, e.g. {sorted(missing)[:5]}")
    for item_id, ks in keys.items():
        if len(ks) != 1:
            problems.append(f"{name}: item {item_id} arrived under keys {sorted(ks)}")
    return len(envelopes) - len(keys)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    d = tempfile.mkdtemp(prefix="pollerd-delivery-crash-")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        admin_port = probe.getsockname()[1]
    cfg = job_file(d, server.server_address[1], admin_port)
    log = open(os.path.join(d, "daemon.log"), "w")
    start = time.time()
    for k in range(KILLS):
        p = subprocess.Popen([BIN, "run", "--config", cfg, "--log-level", "error"], stdout=log, stderr=log)
        time.sleep(rng.uniform(0.3, 2.5))
        p.send_signal(signal.SIGKILL)
        p.wait()
    # A last run: the job is paused (a running daemon picks that up within a second) so that
    # the outbox can drain through the flaky webhook; then the daemon stops cleanly.
    p = subprocess.Popen([BIN, "run", "--config", cfg, "--log-level", "error"], stdout=log, stderr=log)
    time.sleep(1.0)
    stats = pause_and_drain(BIN, cfg, JOBS)
    # The daemon's own account, as Prometheus would scrape it.
    metrics = {}
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("pollerd_"):
                    name, value = line.rsplit(" ", 1)
                    metrics[name] = float(value)
    except OSError as e:
        metrics = {"error": str(e)}
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=30)
    stats = cli(cfg, "outbox", "stats")
    per_job = {j: counter(cli(cfg, "jobs", "show", j)["cursor"]) for j in JOBS}
    ticks = sum(per_job.values())
    expected = {f"{j}-{t}-{i}" for j, n in per_job.items() for t in range(1, n + 1) for i in range(ITEMS_PER_TICK)}

    problems = []
    file_envs = []
    with open(os.path.join(d, "out", "items.jsonl")) as f:
        for n, line in enumerate(f, 1):
            try:
                file_envs.append(json.loads(line))
            except json.JSONDecodeError:
                problems.append(f"file: line {n} is not JSON: {line[:80]!r}")
    file_dups = check_copies("file", file_envs, expected, problems)
    hook_dups = check_copies("webhook", Hook.accepted, expected, problems)
    if Hook.bad_signatures:
        problems.append(f"webhook: {Hook.bad_signatures} requests with a bad signature")
    if stats["pending"] != 0:
        problems.append(f"outbox not drained: {stats['pending']} items pending")
    if stats["dead_letters"] != 0:
        problems.append(f"{stats['dead_letters']} dead letters")
    for name in ['pollerd_delivery_items_total{sink_type="file",outcome="delivered"}',
                 'pollerd_delivery_items_total{sink_type="webhook",outcome="delivered"}',
                 'pollerd_delivery_items_total{sink_type="webhook",outcome="retried"}',
                 'pollerd_ticks_total{kind="noop",status="ok"}']:
        if metrics.get(name, 0) <= 0:
            problems.append(f"/metrics: {name} missing or zero ({metrics.get('error', 'no such series')})")
    if 'pollerd_outbox_depth{sink_type="webhook"}' not in metrics:
        problems.append("/metrics: no outbox depth gauge")
    if ticks < KILLS // 2:
        problems.append(f"only {ticks} ticks committed over {KILLS} restarts")

    print(f"delivery crash test: {KILLS} SIGKILLs in {time.time() - start:.0f}s; {ticks} ticks committed, {len(expected)} items produced")
    print(f"  file sink: {len(file_envs)} lines, {len(file_envs) - file_dups} distinct items, {file_dups} duplicates (same key)")
    print(f"  webhook:   {Hook.requests} requests, {Hook.refused} refused or failed, {len(Hook.accepted)} accepted, "
          f"{len(Hook.accepted) - hook_dups} distinct items, {hook_dups} duplicates (same key), {Hook.bad_signatures} bad signatures")
    server.shutdown()
    if problems:
        for pr in problems[:20]:
            print("FAIL:", pr)
        print(f"daemon log: {log.name}")
        sys.exit(1)
    hook_ok = int(metrics.get('pollerd_delivery_items_total{sink_type="webhook",outcome="delivered"}', 0))
    hook_retried = int(metrics.get('pollerd_delivery_items_total{sink_type="webhook",outcome="retried"}', 0))
    print(f"  /metrics of the last run: {hook_ok} webhook deliveries, {hook_retried} retries")
    print("  OK: every produced item is in each sink; duplicates carry one key")


if __name__ == "__main__":
    main()
