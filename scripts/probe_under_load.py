#!/usr/bin/env python3
"""`/healthz` latency while one client holds 10,000 slow connections to the admin listener (a
measurement, not in the test command).

A daemon runs with no token on a loopback port. One client (source address 127.0.0.2) keeps
opening connections that send half a request head and then trickle a header line every few
seconds, reopening each one the daemon closes, up to 10,000 at once; meanwhile a probe from
127.0.0.1 asks `/healthz` every 100 ms. Prints the probe's latency (median, p99, max) and how many
probes failed, as JSON.

With --probe-listen the daemon also serves the probes on a listener of their own
(`admin.probe_listen`), and the probe asks there while the flood goes to the API's port.

usage: probe_under_load.py PATH/TO/pollerd [SECONDS] [CONNECTIONS] [--probe-listen]
"""
import json, os, resource, selectors, signal, socket, statistics, subprocess, sys, tempfile, threading, time

BIN = os.path.abspath(sys.argv[1])
SEPARATE = "--probe-listen" in sys.argv
ARGS = [a for a in sys.argv[2:] if not a.startswith("--")]
SECONDS = float(ARGS[0]) if ARGS else 30
CONNECTIONS = int(ARGS[1]) if len(ARGS) > 1 else 10_000


def probe(port):
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        ok = data.startswith(b"HTTP/1.1 200")
    except OSError:
        ok = False
    return ok, time.monotonic() - start


def attacker(port, stop, counts):
    """Holds up to CONNECTIONS slow connections from 127.0.0.2, reopening the closed ones."""
    sel = selectors.DefaultSelector()
    socks = set()
    last_trickle = time.monotonic()
    while not stop.is_set():
        while len(socks) < CONNECTIONS and not stop.is_set():
            s = socket.socket()
            s.setblocking(False)
            s.bind(("127.0.0.2", 0))
            try:
                s.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                break
            sel.register(s, selectors.EVENT_WRITE | selectors.EVENT_READ, "new")
            socks.add(s)
            counts["opened"] += 1
            if counts["opened"] % 500 == 0:
                break  # let the events below be served
        for key, mask in sel.select(timeout=0.05):
            s = key.fileobj
            try:
                if key.data == "new" and mask & selectors.EVENT_WRITE:
                    s.send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
                    sel.modify(s, selectors.EVENT_READ, "held")
                elif mask & selectors.EVENT_READ:
                    if not s.recv(4096):
                        raise ConnectionResetError
            except OSError:
                sel.unregister(s)
                socks.discard(s)
                s.close()
                counts["closed_by_daemon"] += 1
        if time.monotonic() - last_trickle > 3:
            last_trickle = time.monotonic()
            for s in list(socks):
                try:
                    s.send(b"X-Slow: 1\r\n")
                except OSError:
                    pass
        counts["held"] = len(socks)
    for s in socks:
        s.close()


def main():
    resource.setrlimit(resource.RLIMIT_NOFILE, (CONNECTIONS + 1024, CONNECTIONS + 1024))
    work = tempfile.mkdtemp(prefix="pollerd-probe-")
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    s = socket.socket(); s.bind(("127.0.0.1", 0)); probe_port = s.getsockname()[1]; s.close()
    extra = f', probe_listen: "127.0.0.1:{probe_port}"' if SEPARATE else ""
    if not SEPARATE:
        probe_port = port
    cfg = os.path.join(work, "pollers.yaml")
    with open(cfg, "w") as f:
        f.write(f"""pollers:
  state_db: {work}/state.db
  admin: {{ listen: "127.0.0.1:{port}"{extra} }}
  jobs:
    - {{ id: hb, kind: noop, schedule: {{ every_secs: 1 }}, deliver: [] }}
""")
    daemon = subprocess.Popen([BIN, "run", "--config", cfg, "--log-level", "error"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if probe(probe_port)[0]:
                break
            time.sleep(0.05)
        stop = threading.Event()
        counts = {"opened": 0, "closed_by_daemon": 0, "held": 0}
        t = threading.Thread(target=attacker, args=(port, stop, counts))
        t.start()
        time.sleep(2)  # let the attacker reach its cap
        latencies, failures = [], 0
        end = time.monotonic() + SECONDS
        while time.monotonic() < end:
            ok, took = probe(probe_port)
            latencies.append(took)
            failures += 0 if ok else 1
            time.sleep(0.1)
        stop.set()
        t.join()
        latencies.sort()
        print(json.dumps({
            "seconds": SECONDS, "attacker_connections_target": CONNECTIONS, "probe_listener": SEPARATE,
            "attacker_opened": counts["opened"], "attacker_closed_by_daemon": counts["closed_by_daemon"],
            "probes": len(latencies), "probe_failures": failures,
            "probe_ms_median": round(statistics.median(latencies) * 1000, 2),
            "probe_ms_p99": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
            "probe_ms_max": round(latencies[-1] * 1000, 2),
        }))
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)


if __name__ == "__main__":
    main()
