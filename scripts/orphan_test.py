#!/usr/bin/env python3
"""Children die with a SIGKILLed daemon, against the real binary.

A daemon runs a long-lived plugin that ignores SIGTERM, an ephemeral plugin whose tick hangs and a
`command` job whose process hangs. The daemon is SIGKILLed: the two plugins die with it at once
(their death signal, PR_SET_PDEATHSIG, set by pollerd's spawn stub before they exec). The
command's process (started through swift-subprocess, which cannot set a death signal) lives on in
its cgroup until the next daemon on the host starts: that daemon kills what dead daemons left in
their cgroups and removes the cgroups. Where there are no cgroups, that last step is skipped and
said.

usage: orphan_test.py PATH/TO/pollerd
"""
import json, os, signal, socket, subprocess, sys, tempfile, time, urllib.request

from crashlib import marked_processes, wait_for

BIN = os.path.abspath(sys.argv[1])
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARK = f"600.{os.getpid()}"


def alive(tag=""):
    """Processes (not zombies) whose command line holds the marker (and the source's digit)."""
    return marked_processes(MARK + tag, "orphan_test.py")


def start(cfg, port, log):
    d = subprocess.Popen([BIN, "run", "--config", cfg, "--log-format", "json"], stdout=log, stderr=subprocess.STDOUT)
    wait_for("the daemon", lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).status == 200)
    return d


def main():
    work = tempfile.mkdtemp(prefix="pollerd-orphan-")
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    plugins = os.path.join(work, "plugins")
    stubborn = os.path.join(plugins, "stubborn")
    os.makedirs(stubborn)
    with open(os.path.join(stubborn, "nexo-plugin.toml"), "w") as f:
        f.write('[plugin]\nid = "stubborn"\nversion = "0.1.0"\nname = "stubborn"\ndescription = "ignores SIGTERM"\n'
                f'[plugin.entrypoint]\ncommand = "python3"\nargs = ["-I", "stubborn.py", "{MARK}1"]\n'
                '[plugin.poller]\nkinds = ["stubborn"]\nlifecycle = "long_lived"\ntick_timeout_secs = 30\n')
    with open(os.path.join(stubborn, "stubborn.py"), "w") as f:
        f.write(f"""import signal, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)
sys.path.insert(0, {json.dumps(os.path.join(ROOT, "sdk", "python"))})
import pollerd_plugin as pp
plugin = pp.Plugin("nexo-plugin.toml")

@plugin.poller("stubborn")
def tick(req):
    return pp.TickReply(items=[])

if __name__ == "__main__":
    plugin.run()
""")
    hang = os.path.join(plugins, "hang")
    os.makedirs(hang)
    with open(os.path.join(hang, "nexo-plugin.toml"), "w") as f:
        f.write('[plugin]\nid = "hang"\nversion = "0.1.0"\nname = "hang"\ndescription = "a tick that never ends"\n'
                '[plugin.entrypoint]\ncommand = "./hang.sh"\n'
                '[plugin.poller]\nkinds = ["hang"]\nlifecycle = "ephemeral"\ntick_timeout_secs = 600\n')
    with open(os.path.join(hang, "hang.sh"), "w") as f:
        f.write(f"#!/bin/sh\ntrap '' TERM\nread -r request\nexec sleep {MARK}2\n")
    os.chmod(os.path.join(hang, "hang.sh"), 0o755)
    cfg = os.path.join(work, "pollers.yaml")
    with open(cfg, "w") as f:
        f.write(f"""pollers:
  state_db: {work}/state.db
  plugin_dirs: [plugins]
  admin: {{ listen: "127.0.0.1:{port}" }}
  jobs:
    - {{ id: ll, kind: stubborn, schedule: {{ every_secs: 1 }}, deliver: [] }}
    - {{ id: eph, kind: hang, schedule: {{ every_secs: 1 }}, timeout_secs: 600, deliver: [] }}
    - {{ id: cmd, kind: command, schedule: {{ every_secs: 1 }}, timeout_secs: 600,
         config: {{ argv: ["/bin/sleep", "{MARK}3"] }}, deliver: [] }}
""")
    log = open(os.path.join(work, "daemon.log"), "w")
    first = start(cfg, port, log)
    second = None
    try:
        wait_for("every child running", lambda: all(alive(t) for t in "123"))
        before = {t: alive(t) for t in "123"}
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        took = wait_for("the plugins gone with the daemon", lambda: not alive("1") and not alive("2"), deadline=5)
        command_left = alive("3")
        second = start(cfg, port, log)
        log.flush()
        with open(os.path.join(work, "daemon.log")) as f:
            lines = [json.loads(l) for l in f if l.startswith("{")]
        in_cgroups = [l for l in lines if "cgroups of their own" in l.get("message", "")]
        if in_cgroups:
            wait_for("the command's process killed by the next daemon", lambda: not any(p in alive("3") for p in command_left),
                     deadline=10)
            base = in_cgroups[0]["pollerd.cgroup"]
            dead_owner = f"@{first.pid}."
            left = [n for n in os.listdir(base) if dead_owner in n]
            assert not left, f"the dead daemon's cgroups are still there: {left}"
            swept = [l for l in lines if "daemons that are gone left running" in l.get("message", "")]
            assert swept, "the next daemon did not report what it killed"
            cmd_note = (f"the command's process ({len(command_left)}) killed by the next daemon from the dead "
                        f"daemon's cgroup, which it removed")
        else:
            cmd_note = "no cgroups here: the command's process is left to the sweep of its own daemon (not run)"
            for p in command_left:
                os.kill(p, signal.SIGKILL)
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0
        second = None
        wait_for("every marked process gone", lambda: not alive(), deadline=10)
        print(f"orphan test OK: {len(before['1'])} long-lived and {len(before['2'])} ephemeral plugin processes died "
              f"{took * 1000:.0f} ms after the daemon's SIGKILL; {cmd_note}")
    finally:
        for d in (first, second):
            if d and d.poll() is None:
                d.kill()
        for p in alive():
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass


if __name__ == "__main__":
    main()
