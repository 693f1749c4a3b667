#!/usr/bin/env python3
"""Two daemons with different job files on one state file deliver each other's nothing and
their own everything, against the real binary.

Daemon A runs job `a` into file sink A and job `hooked` into a webhook that answers 503 to its
first requests; daemon B runs job `b` into file sink B; both on one SQLite state file, each with its
own admin port. Each job emits one new item per 1 s tick. Before issue 29 each deliverer claimed
every due lane and parked the other's for 30 s ("sink not configured"): a lane whose retry fell due
went to either daemon, and over 24 s one daemon's lanes delivered 0 of 24 items. Now each delivers
its own: after 12 s of ticking, every item each job queued reaches its sink within a few seconds,
and no item reaches the other daemon's sink.

usage: two_files_test.py PATH/TO/pollerd
"""
import http.server, json, os, signal, socket, subprocess, sys, tempfile, threading, time, urllib.request

BIN = os.path.abspath(sys.argv[1])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def lines(path):
    try:
        with open(path) as f:
            return [json.loads(l) for l in f if l.strip()]
    except FileNotFoundError:
        return []


class Flaky(http.server.BaseHTTPRequestHandler):
    """A receiver that answers 503 to its first four requests, then 200; records what it took."""
    calls = 0
    taken = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Flaky.calls += 1
        ok = Flaky.calls > 4
        if ok:
            Flaky.taken.append(json.loads(body))
        self.send_response(200 if ok else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    work = tempfile.mkdtemp(prefix="pollerd-two-files-")
    daemons = []
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{receiver.server_address[1]}/in"
    try:
        for name in ("a", "b"):
            port = free_port()
            d = os.path.join(work, name)
            os.makedirs(d)
            with open(os.path.join(d, "pollers.yaml"), "w") as f:
                f.write(f"""pollers:
  state_db: {work}/state.db
  admin: {{ listen: "127.0.0.1:{port}" }}
  jobs:
    - {{ id: {name}, kind: noop, schedule: {{ every_secs: 1 }}, dedup_window: 0,
         config: {{ advance_cursor: true, items: 1 }},
         deliver: [{{ file: {{ path: {work}/{name}.jsonl }} }}] }}
    - {{ id: shared, kind: noop, schedule: {{ every_secs: {60 if name == "a" else 61} }} }}
""" + (f"""    - {{ id: hooked, kind: noop, schedule: {{ every_secs: 1 }}, dedup_window: 0,
         config: {{ advance_cursor: true, items: 1 }},
         deliver: [{{ webhook: {{ url: "{hook}" }} }}] }}
""" if name == "a" else ""))
            log = open(os.path.join(work, f"{name}.log"), "w")
            p = subprocess.Popen([BIN, "run", "--config", os.path.join(d, "pollers.yaml"), "--log-format", "json"],
                                 stdout=log, stderr=subprocess.STDOUT)
            daemons.append((name, port, p))
        # Both started together on a state file that does not exist yet: each must start (the
        # store is made once; the second waits for the first).
        for name, port, p in daemons:
            end = time.monotonic() + 30
            while time.monotonic() < end:
                try:
                    if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).status == 200:
                        break
                except OSError:
                    time.sleep(0.05)
            else:
                raise SystemExit(f"daemon {name} did not become ready (exit {p.poll()})")
        time.sleep(12)
        # Everything queued by then is delivered within a few seconds (not parked for 30 s).
        end = time.monotonic() + 6
        while time.monotonic() < end:
            if all(len(lines(f"{work}/{n}.jsonl")) >= 10 for n in ("a", "b")):
                break
            time.sleep(0.1)
        got = {n: lines(f"{work}/{n}.jsonl") for n in ("a", "b")}
        for n in ("a", "b"):
            assert len(got[n]) >= 10, f"job {n}'s sink got {len(got[n])} items in 12 s of 1 s ticks: {got}"
            assert all(e["job_id"] == n for e in got[n]), f"job {n}'s sink got another job's items: {got[n]}"
            keys = [e["id"] for e in got[n]]
            assert len(keys) == len(set(keys)), f"job {n}'s sink got an item twice"
        # The webhook's lane, retried after its 503s, went to daemon a alone: it is not parked.
        end = time.monotonic() + 6
        while time.monotonic() < end and len(Flaky.taken) < 8:
            time.sleep(0.1)
        assert len(Flaky.taken) >= 8, f"the retried webhook lane took {len(Flaky.taken)} items (parked by daemon b?)"
        # The job both files define differently is flagged: explain, validate and the log.
        port_a = daemons[0][1]
        explain = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port_a}/admin/jobs/shared/explain",
                                                    timeout=5).read())
        assert len(explain.get("divergent_definitions", {})) == 2, explain
        assert "define it differently" in explain["text"], explain
        v = subprocess.run([BIN, "validate", "--config", os.path.join(work, "a", "pollers.yaml")], capture_output=True,
                           text=True, timeout=60)
        assert v.returncode == 0 and "define it differently" in v.stderr and "'shared'" in v.stderr, (v.returncode,
                                                                                                      v.stderr)
        end = time.monotonic() + 20  # the health check runs every 15 s
        while time.monotonic() < end:
            logged = [json.loads(l) for n in ("a", "b") for l in open(os.path.join(work, f"{n}.log")) if l.startswith("{")]
            if any("define this job differently" in l.get("message", "") for l in logged):
                break
            time.sleep(0.2)
        else:
            raise AssertionError("no daemon logged the job defined differently")
        print(f"two files test OK: daemon a delivered {len(got['a'])} items of its own, daemon b {len(got['b'])}, "
              f"none to the other's sink, {len(Flaky.taken)} through a retried webhook; the job both define differently is flagged by explain, validate and the log")
    finally:
        for _, _, p in daemons:
            p.send_signal(signal.SIGTERM)
        for _, _, p in daemons:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
