#!/usr/bin/env python3
"""The CLI against a running daemon and against a stopped one: with the daemon up, `jobs pause`
goes through its admin API (the audit log names the API) and `reload --dry-run` prints the plan;
with it stopped, `jobs resume` falls back to the state database and `reload` says no daemon
answered (exit 1).

usage: cli_daemon_test.py PATH/TO/pollerd
"""
import json, os, signal, socket, subprocess, sys, tempfile, time, urllib.request

BIN = os.path.abspath(sys.argv[1])


def main():
    work = tempfile.mkdtemp(prefix="pollerd-cli-daemon-")
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    cfg = os.path.join(work, "pollers.yaml")
    token = "cli-daemon-test-token-0123456789"
    with open(cfg, "w") as f:
        f.write(f"""pollers:
  state_db: {work}/state.db
  admin: {{ listen: "127.0.0.1:{port}", tokens: [{{ token: "{token}", role: admin }}] }}
  jobs:
    - {{ id: hb, kind: noop, schedule: {{ every_secs: 1 }} }}
""")
    env = dict(os.environ)
    env.pop("POLLERD_ADMIN_TOKEN", None)

    def cli(*args):
        return subprocess.run([BIN, *args, "--config", cfg], capture_output=True, text=True, env=env, timeout=60)

    daemon = subprocess.Popen([BIN, "run", "--config", cfg, "--log-level", "warning"], env=env, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).status == 200:
                break
        except Exception:
            time.sleep(0.05)
    else:
        raise SystemExit("the daemon did not become ready")

    r = cli("jobs", "pause", "hb", "--reason", "maintenance window")
    assert r.returncode == 0 and "through the daemon" in r.stdout, (r.returncode, r.stdout, r.stderr)
    r = cli("jobs", "audit", "hb", "--json")
    audit = json.loads(r.stdout)
    assert audit[0]["action"] == "pause" and audit[0]["actor"].startswith("admin-api"), audit
    r = cli("reload", "--dry-run")
    assert r.returncode == 0 and "plan (not applied)" in r.stdout and "keep: hb" in r.stdout, (r.stdout, r.stderr)
    r = cli("jobs", "pause", "nosuch")
    assert r.returncode == 1 and "404" in r.stderr, (r.returncode, r.stderr)

    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=60) == 0

    r = cli("jobs", "resume", "hb")
    assert r.returncode == 0 and "in the state database" in r.stdout, (r.returncode, r.stdout, r.stderr)
    r = cli("jobs", "audit", "hb", "--json")
    assert json.loads(r.stdout)[0]["actor"] == "cli", r.stdout
    r = cli("reload")
    assert r.returncode == 1 and "no daemon answered" in r.stderr, (r.returncode, r.stderr)
    print("cli daemon test OK: actions through the running daemon, then through the store once it stopped")


if __name__ == "__main__":
    main()
