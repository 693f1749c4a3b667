#!/usr/bin/env python3
"""How long the real daemon takes to commit again after its state database's disk had no space
(a measurement, not a test; needs root to mount a small tmpfs).

    python3 Benchmarks/disk-full-recovery.py .build/release/pollerd [ROUNDS]

Each round: 50 noop jobs every second on a state database in a 4 MiB tmpfs; the disk is filled
to the last byte, the daemon fails its commits for 5 s, then the filler is deleted and the time
until the first tick commits again is read from the daemon's JSON tick log lines. Prints each
round and the median.
"""
import json, os, statistics, subprocess, sys, tempfile, time

BIN = os.path.abspath(sys.argv[1])
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 5


def main():
    if os.geteuid() != 0:
        raise SystemExit("needs root (mounts a tmpfs)")
    results = []
    for r in range(ROUNDS):
        root = tempfile.mkdtemp(prefix="pollerd-full-")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", root], check=True)
        try:
            cfg = os.path.join(root, "pollers.yaml")
            with open(cfg, "w") as f:
                f.write("pollers:\n  state_db: ./state.db\n  admin_listen: off\n  jobs:\n")
                for i in range(50):
                    f.write(f"    - {{ id: j{i}, kind: noop, schedule: {{ every_secs: 1, stagger_jitter_ms: 0 }}, config: {{ advance_cursor: true }} }}\n")
            log = open(os.path.join(tempfile.gettempdir(), f"pollerd-full-{r}.log"), "w+")
            d = subprocess.Popen([BIN, "run", "--config", cfg, "--log-format", "json"], stdout=log, stderr=subprocess.STDOUT)
            time.sleep(3)
            filler = os.path.join(root, "filler")
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                while os.write(fd, b"\0" * 4096) > 0:
                    pass
            except OSError:
                pass  # full to the last block
            os.close(fd)
            time.sleep(5)
            freed = time.time()
            os.remove(filler)
            time.sleep(4)
            d.terminate()
            d.wait(timeout=30)
            log.seek(0)
            first = None
            for line in log:
                if not line.startswith("{"):
                    continue
                e = json.loads(line)
                if e.get("message") == "tick" and e.get("pollerd.status") == "ok":
                    ts = e["ts"]
                    t = time.mktime(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone + float("0" + ts[19:-1])
                    if t >= freed:
                        first = t
                        break
            if first is None:
                print(f"round {r + 1}: no ok tick after the space returned")
                continue
            results.append(first - freed)
            print(f"round {r + 1}: first commit {1000 * (first - freed):.0f} ms after the space returned")
        finally:
            subprocess.run(["umount", "-l", root])
    if results:
        print(f"median: {1000 * statistics.median(results):.0f} ms over {len(results)} rounds (goal: within 1 s)")


if __name__ == "__main__":
    main()
