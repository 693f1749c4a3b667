#!/usr/bin/env python3
"""The CLI against a running daemon and against a stopped one: with the daemon up, `jobs pause`
and `jobs cursor --set` go through its admin API (the audit log names the API), the reads (`jobs
list/show/explain/cursor/audit`, `outbox stats`, `dlq list`, `plugins list`) come from it, and
`reload --dry-run` prints the plan; with it stopped, the same reads and `jobs resume` fall back to
the state database and `reload` says no daemon answered (exit 1).

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
    # Reads come from the daemon, and say so on stderr (not in --json output).
    r = cli("jobs", "list")
    assert r.returncode == 0 and "from the daemon at" in r.stderr and "hb" in r.stdout and "paused" in r.stdout, (r.stdout, r.stderr)
    listing = json.loads(cli("jobs", "list", "--json").stdout)
    assert listing[0]["id"] == "hb" and listing[0]["paused"] is True and listing[0]["paused_reason"] == "maintenance window", listing
    show = json.loads(cli("jobs", "show", "hb", "--json").stdout)
    assert show["paused"] is True and show["explain"]["next"]["code"] == "paused", show
    r = cli("jobs", "explain", "hb")
    assert r.returncode == 0 and "maintenance window" in r.stdout and "from the daemon" in r.stderr, (r.stdout, r.stderr)
    r = cli("jobs", "cursor", "hb", "--set", "AQID")
    assert r.returncode == 0 and "through the daemon" in r.stdout, (r.stdout, r.stderr)
    assert json.loads(cli("jobs", "cursor", "hb", "--json").stdout)["cursor"] == "AQID"
    audit = json.loads(cli("jobs", "audit", "hb", "--json").stdout)
    assert audit[0]["action"] == "cursor.set" and audit[0]["actor"].startswith("admin-api"), audit
    assert isinstance(json.loads(cli("jobs", "cursor", "hb", "--history", "--json").stdout), list)
    assert "lanes" in json.loads(cli("outbox", "stats", "--json").stdout)
    assert json.loads(cli("dlq", "list", "--json").stdout) == []
    r = cli("dlq", "show", "12345")
    assert r.returncode == 1 and "404" in r.stderr, (r.returncode, r.stderr)
    r = cli("jobs", "show", "nosuch")
    assert r.returncode == 1 and "no job 'nosuch'" in r.stderr, (r.returncode, r.stderr)
    r = cli("jobs", "show", "../x")
    assert r.returncode == 3 and "a job id is" in r.stderr, (r.returncode, r.stderr)
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
    r = cli("jobs", "list")
    assert r.returncode == 0 and "from the state database" in r.stderr and "hb" in r.stdout, (r.stdout, r.stderr)
    show = json.loads(cli("jobs", "show", "hb", "--json").stdout)
    assert show["paused"] is False and show["cursor"] == "AQID", show
    assert "lanes" in json.loads(cli("outbox", "stats", "--json").stdout)
    r = cli("reload")
    assert r.returncode == 1 and "no daemon answered" in r.stderr, (r.returncode, r.stderr)
    print("cli daemon test OK: reads and actions through the running daemon, then through the store once it stopped")


if __name__ == "__main__":
    main()
