#!/usr/bin/env python3
"""A `noop` canary's missed slots beside plugins that saturate the CPU (a measurement, not in the
test command).

A daemon runs JOBS ephemeral plugin jobs, every 1 s, whose plugin burns the CPU for a second on
every tick, and one `noop` canary every 1 s. After a warm-up, over SECONDS the canary's slots are
read from its tick history: a slot missed is one with no tick, a skipped one, or one that started
more than 1 s late. The same run is made with `plugin_nice: 0` (plugins at the daemon's priority,
as before issue 29) and with the default `plugin_nice: 10`, in turn. Prints one JSON line per run.

usage: canary_under_load.py PATH/TO/pollerd [JOBS] [SECONDS]
"""
import datetime, json, os, signal, socket, subprocess, sys, tempfile, time, urllib.request

BIN = os.path.abspath(sys.argv[1])
JOBS = int(sys.argv[2]) if len(sys.argv) > 2 else 300
SECONDS = int(sys.argv[3]) if len(sys.argv) > 3 else 30
WARMUP = 10


def ms(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


def run(nice):
    work = tempfile.mkdtemp(prefix="pollerd-canary-")
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    burn = os.path.join(work, "plugins", "burn")
    os.makedirs(burn)
    with open(os.path.join(burn, "nexo-plugin.toml"), "w") as f:
        f.write('[plugin]\nid = "burn"\nversion = "0.1.0"\nname = "burn"\ndescription = "burns a second of CPU"\n'
                '[plugin.entrypoint]\ncommand = "./burn.sh"\n'
                '[plugin.poller]\nkinds = ["burn"]\nlifecycle = "ephemeral"\ntick_timeout_secs = 30\nmax_concurrent_ticks = 64\n')
    with open(os.path.join(burn, "burn.sh"), "w") as f:
        # A second of pure CPU in the shell, then an empty reply.
        f.write("#!/bin/sh\nread -r request\nend=$(( $(date +%s) + 1 ))\n"
                "while [ $(date +%s) -lt $end ]; do i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; done\n"
                "printf '{\"result\":{\"items\":[]}}\\n'\n")
    os.chmod(os.path.join(burn, "burn.sh"), 0o755)
    jobs = "".join(f"    - {{ id: burn{i}, kind: burn, schedule: {{ every_secs: 1 }}, deliver: [] }}\n" for i in range(JOBS))
    cfg = os.path.join(work, "pollers.yaml")
    with open(cfg, "w") as f:
        f.write(f"""pollers:
  state_db: {work}/state.db
  plugin_dirs: [plugins]
  plugin_nice: {nice}
  admin: {{ listen: "127.0.0.1:{port}" }}
  jobs:
    - {{ id: canary, kind: noop, schedule: {{ every_secs: 1, stagger_jitter_ms: 0 }}, deliver: [] }}
{jobs}""")
    daemon = subprocess.Popen([BIN, "run", "--config", cfg, "--log-level", "error"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        time.sleep(WARMUP)
        start = time.time() * 1000
        load0 = os.getloadavg()[0]
        time.sleep(SECONDS)
        end = time.time() * 1000
        load = os.getloadavg()[0]
        show = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/jobs/canary?ticks=500", timeout=30).read())
        ticks = [t for t in show["ticks"] if start <= ms(t["slot"]) < end]
        on_time = [t for t in ticks if t["status"] == "ok" and ms(t["started_at"]) - ms(t["slot"]) <= 1000]
        expected = int((end - start) / 1000)
        late = sorted(ms(t["started_at"]) - ms(t["slot"]) for t in ticks if t["status"] == "ok")
        return {
            "plugin_nice": nice, "burning_jobs": JOBS, "seconds": SECONDS, "load_avg_1m": round(max(load0, load), 1),
            "canary_slots": expected, "on_time": len(on_time),
            "missed_pct": round(100 * (1 - min(len(on_time), expected) / expected), 1),
            "lateness_ms_median": round(late[len(late) // 2]) if late else None,
            "lateness_ms_max": round(late[-1]) if late else None,
        }
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()


def main():
    for nice in (0, 10):
        print(json.dumps(run(nice)), flush=True)


if __name__ == "__main__":
    main()
