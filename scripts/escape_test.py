#!/usr/bin/env python3
"""Plugins and commands whose processes try to outlive them, against the real daemon:

  - a `command` job whose every tick double-forks a `setsid` sleeper (it leaves the command's
    process group and session, and its parent exits at once);
  - an ephemeral plugin that does the same on every tick;
  - a long-lived plugin (Python SDK) that forks without bound on its first tick.

The daemon is a child subreaper, so the escapees are handed to it, and it kills them within
about a second; the fork bomb is killed whole once it has more than `max_plugin_processes`
processes, and reported. At shutdown nothing the jobs started is left.

usage: escape_test.py PATH/TO/pollerd
"""
import json, os, signal, socket, subprocess, sys, tempfile, time, urllib.request

from crashlib import marked_processes, wait_for

BIN = os.path.abspath(sys.argv[1])
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# sleep's argument carries the marker (a number no other process has), one digit per source.
MARK = f"300.{os.getpid()}"
CAP = 20


def alive(tag=""):
    """Processes (not zombies) whose command line holds the marker (and the source's digit)."""
    return marked_processes(MARK + tag, "escape_test.py")


def main():
    work = tempfile.mkdtemp(prefix="pollerd-escape-")
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    plugins = os.path.join(work, "plugins")
    # An ephemeral plugin that leaves a setsid sleeper behind on every tick.
    eph = os.path.join(plugins, "escaper")
    os.makedirs(eph)
    with open(os.path.join(eph, "nexo-plugin.toml"), "w") as f:
        f.write('[plugin]\nid = "escaper"\nversion = "0.1.0"\nname = "escaper"\ndescription = "leaves a sleeper behind"\n[plugin.entrypoint]\ncommand = "./escaper.sh"\n'
                '[plugin.poller]\nkinds = ["escaper"]\nlifecycle = "ephemeral"\ntick_timeout_secs = 10\n')
    with open(os.path.join(eph, "escaper.sh"), "w") as f:
        f.write(f"#!/bin/sh\nread -r request\n(setsid sleep {MARK}2 &)\n"
                'printf \'{"result":{"items":[]}}\\n\'\n')
    os.chmod(os.path.join(eph, "escaper.sh"), 0o755)
    # A long-lived plugin that forks without bound on its first tick.
    bomb = os.path.join(plugins, "bomb")
    os.makedirs(bomb)
    with open(os.path.join(bomb, "nexo-plugin.toml"), "w") as f:
        f.write('[plugin]\nid = "bomb"\nversion = "0.1.0"\nname = "bomb"\ndescription = "forks without bound"\n[plugin.entrypoint]\ncommand = "python3"\nargs = ["-I", "bomb.py"]\n'
                '[plugin.poller]\nkinds = ["bomb"]\nlifecycle = "long_lived"\ntick_timeout_secs = 30\n'
                '[plugin.supervisor]\nrespawn = true\nmax_attempts = 2\nbackoff_ms = 60000\n')
    with open(os.path.join(bomb, "bomb.py"), "w") as f:
        f.write(f"""import os, subprocess, sys, time
sys.path.insert(0, {json.dumps(os.path.join(ROOT, "sdk", "python"))})
import pollerd_plugin as pp
plugin = pp.Plugin("nexo-plugin.toml")

@plugin.poller("bomb")
def tick(req):
    for _ in range(3000):
        subprocess.Popen(["sleep", "{MARK}3"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.005)
    return pp.TickReply(items=[])

if __name__ == "__main__":
    plugin.run()
""")
    cfg = os.path.join(work, "pollers.yaml")
    with open(cfg, "w") as f:
        f.write(f"""pollers:
  state_db: {work}/state.db
  plugin_dirs: [plugins]
  max_plugin_processes: {CAP}
  admin: {{ listen: "127.0.0.1:{port}" }}
  jobs:
    - {{ id: cmd, kind: command, schedule: {{ every_secs: 1, stagger_jitter_ms: 0 }},
         config: {{ argv: ["/bin/sh", "-c", "(setsid sleep {MARK}1 &) ; echo '{{}}' >/dev/null"] }} }}
    - {{ id: plug, kind: escaper, schedule: {{ every_secs: 1, stagger_jitter_ms: 0 }} }}
    - {{ id: bomb, kind: bomb, schedule: {{ every_secs: 2, stagger_jitter_ms: 0 }} }}
""")
    log = open(os.path.join(work, "daemon.log"), "w")
    daemon = subprocess.Popen([BIN, "run", "--config", cfg, "--log-format", "json"], stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        wait_for("the daemon", lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).status == 200)
        # Escapees appear with every tick and are swept within about a second: over 8 s of ticks
        # (8 of each), at no time are more than a few of them alive.
        most = {"1": 0, "2": 0, "3": 0}
        seen_cmd = seen_plugin = False
        end = time.monotonic() + 8
        while time.monotonic() < end:
            for tag in most:
                n = len(alive(tag))
                most[tag] = max(most[tag], n)
            seen_cmd = seen_cmd or most["1"] > 0
            seen_plugin = seen_plugin or most["2"] > 0
            time.sleep(0.05)
        assert seen_cmd and seen_plugin, f"the escapees never ran: {most}"
        assert most["1"] <= 4 and most["2"] <= 4, f"escapees piled up (swept about every second): {most}"
        # The fork bomb was cut off near the cap (the sweep runs every second; it forks 200/s).
        assert most["3"] <= CAP + 250, f"the fork bomb grew to {most['3']}"
        with open(os.path.join(work, "daemon.log")) as f:
            lines = [json.loads(l) for l in f if l.startswith("{")]
        over = [l for l in lines if "max_plugin_processes" in l.get("message", "")]
        escaped = [l for l in lines if "left its plugin" in l.get("message", "")]
        assert over, "the fork bomb was not reported"
        assert escaped, "the escapees were not reported"
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'pollerd_processes_killed_total{reason="escaped"}' in metrics, "no escapee counter"
        assert 'pollerd_processes_killed_total{reason="over_cap"}' in metrics, "no over-cap counter"
        # Shutdown: nothing the jobs started is left.
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
        wait_for("every marked process gone", lambda: not alive(), deadline=10)
        cg = [l for l in lines if "cgroups of their own" in l.get("message", "")]
        mode = f"plugins in cgroups ({cg[0].get('pollerd.cgroup.controllers')})" if cg else "no cgroups here (sweep only)"
        print(f"escape test OK ({mode}): most alive at once: {most}; {len(escaped)} escapee reports, {len(over)} over-cap reports; none left at exit")
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGKILL)
        for pid in alive():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


if __name__ == "__main__":
    main()
