"""Helpers shared by the SIGKILL tests (scripts/*_test.py)."""
import base64
import os


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
