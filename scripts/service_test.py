#!/usr/bin/env python3
"""The installed binary as a service runs it: it needs no Swift toolchain (no libswift* in its
dependencies, no run path into a toolchain, and it answers --version with an empty environment),
and under systemd's readiness protocol it says READY=1 once booted, RELOADING=1 then READY=1
around a SIGHUP reload, and STOPPING=1 at SIGTERM, then exits 0. The admin API answers /readyz
with a token from the environment.

usage: service_test.py PATH/TO/installed/pollerd
"""
import json, os, signal, socket, subprocess, sys, tempfile, time, urllib.request

BIN = os.path.abspath(sys.argv[1])


def main():
    deps = subprocess.run(["ldd", BIN], capture_output=True, text=True).stdout
    assert "libswift" not in deps and "libFoundation" not in deps, deps
    dyn = subprocess.run(["readelf", "-d", BIN], capture_output=True, text=True).stdout
    assert "swift" not in "".join(l for l in dyn.splitlines() if "RUNPATH" in l or "RPATH" in l), dyn
    v = subprocess.run(["/usr/bin/env", "-i", BIN, "--version"], capture_output=True, text=True, timeout=30)
    assert v.returncode == 0 and v.stdout.strip().count(".") == 2, (v.returncode, v.stdout, v.stderr)

    work = tempfile.mkdtemp(prefix="pollerd-service-")
    sock_path = os.path.join(work, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(30)
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    cfg = os.path.join(work, "pollers.yaml")
    with open(cfg, "w") as f:
        f.write(f"""pollers:
  state_db: {work}/state.db
  admin: {{ listen: "127.0.0.1:{port}" }}
  jobs:
    - {{ id: hb, kind: noop, schedule: {{ every_secs: 1 }}, config: {{ advance_cursor: true }} }}
""")
    token = "service-test-token-0123456789"
    env = {"PATH": "/usr/bin:/bin", "NOTIFY_SOCKET": sock_path, "POLLERD_READ_TOKEN": token}
    p = subprocess.Popen([BIN, "run", "--config", cfg, "--log-level", "warning"], env=env, stderr=subprocess.PIPE, text=True)

    def expect(*wanted):
        got = []
        for w in wanted:
            msg = sock.recv(4096).decode()
            got.append(msg)
            assert msg.split("\n")[0] == w, f"expected {w}, got {msg!r} (so far {got})"
        return got

    expect("READY=1")
    req = urllib.request.Request(f"http://127.0.0.1:{port}/admin/jobs/hb", headers={"Authorization": f"Bearer {token}"})
    job = json.load(urllib.request.urlopen(req, timeout=10))
    assert job["id"] == "hb", job
    p.send_signal(signal.SIGHUP)
    reload = expect("RELOADING=1", "READY=1")
    assert "MONOTONIC_USEC=" in reload[0], reload
    p.send_signal(signal.SIGTERM)
    expect("STOPPING=1")
    rc = p.wait(timeout=60)
    assert rc == 0, (rc, p.stderr.read())
    print(f"service test OK: no toolchain needed ({os.path.getsize(BIN) // (1 << 20)} MiB), READY/RELOADING/STOPPING sent, admin API answered")


if __name__ == "__main__":
    main()
