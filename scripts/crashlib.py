"""Helpers shared by the SIGKILL tests (scripts/*_test.py)."""
import base64
import json
import os
import subprocess
import time


def write_job_file(d, text):
    """Writes pollers.yaml into d; returns its path."""
    path = os.path.join(d, "pollers.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def counter(cursor):
    """The tick counter a noop job with advance_cursor keeps in its cursor (base64url, 8 bytes)."""
    if cursor is None:
        return 0
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    return int.from_bytes(raw, "big")


def marked_processes(marker, script):
    """Pids of the live processes (not zombies) whose command line holds `marker`, the calling
    `script` itself left out."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmd and script not in cmd and state != "Z":
            out.append(int(pid))
    return out


def wait_for(what, check, deadline=30.0):
    """Polls `check` until it is true (an OSError counts as not yet); returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        try:
            if check():
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def pause_and_drain(binary, cfg, jobs, timeout=300):
    """Pauses the jobs through the CLI (a running daemon picks that up within a second), then
    waits for the outbox to drain; returns the last `outbox stats`."""
    for j in jobs:
        subprocess.run([binary, "jobs", "pause", j, "--config", cfg], capture_output=True, check=True)
    deadline = time.time() + timeout
    stats = {}
    while time.time() < deadline:
        time.sleep(1.0)
        out = subprocess.run([binary, "outbox", "stats", "--config", cfg, "--json"], capture_output=True, text=True,
                             check=True)
        stats = json.loads(out.stdout)
        if stats["pending"] == 0:
            break
    return stats
