"""pollerd / nexo poller plugin SDK for Python: one file, standard library only.

Write a tick handler, register it for a kind, call ``run()``. The same script serves both
lifecycles: spawned per tick (``lifecycle = "ephemeral"``: pollerd sets NEXO_POLLER_EPHEMERAL=1,
writes one request line, reads one reply line) or kept alive (``lifecycle = "long_lived"``:
JSON-RPC 2.0 frames, ``initialize``, many ``poll_tick`` requests, ``shutdown``).

    import pollerd_plugin as pp

    plugin = pp.Plugin("nexo-plugin.toml")

    @plugin.poller("py_counter")
    def tick(req: pp.TickRequest) -> pp.TickReply:
        n = int(req.cursor or b"0") + 1
        return pp.TickReply(next_cursor=str(n).encode(), items=[{"id": f"{req.job_id}-{n}", "n": n}])

    if __name__ == "__main__":
        plugin.run()

Raise ``Transient`` (retried with backoff), ``Permanent`` (the job pauses) or ``Config`` (the
job's config is wrong; it pauses). Any other exception counts as transient. The protocol is in
docs/plugin-protocol.md. stdout carries the protocol only: ``print`` goes to stderr.
"""

import base64
import json
import os
import sys
import threading
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

TRANSIENT, PERMANENT, CONFIG = -32001, -32002, -32602
METHOD_NOT_FOUND = -32601


class PluginError(Exception):
    code = TRANSIENT


class Transient(PluginError):
    """Try again later (network down, HTTP 503, rate limited)."""
    code = TRANSIENT


class Permanent(PluginError):
    """Will not succeed until someone acts (credentials revoked, feed gone). The job pauses."""
    code = PERMANENT


class Config(PluginError):
    """The job's config is wrong. The job pauses."""
    code = CONFIG


def encode_cursor(raw: bytes) -> str:
    """URL-safe base64 without padding, the cursor's wire form."""
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(text: Optional[str]) -> Optional[bytes]:
    """The cursor's bytes; padding optional. Raises Config on invalid input."""
    if text is None:
        return None
    t = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(t + "=" * (-len(t) % 4))
    except Exception as e:  # binascii.Error
        raise Config(f"cursor is not URL-safe base64: {e}") from None


@dataclass
class TickRequest:
    kind: str
    job_id: str
    agent_id: str
    cursor: Optional[bytes]
    config: Any
    now: str
    interval_hint_secs: int = 0

    @staticmethod
    def from_params(p: dict) -> "TickRequest":
        if not isinstance(p, dict):
            raise Config("params must be an object")
        try:
            return TickRequest(kind=p["kind"], job_id=p["job_id"], agent_id=p["agent_id"],
                               cursor=decode_cursor(p.get("cursor")), config=p.get("config"),
                               now=p["now"], interval_hint_secs=int(p.get("interval_hint_secs") or 0))
        except KeyError as e:
            raise Config(f"malformed TickRequest: missing {e}") from None

    def cursor_json(self, default=None):
        """The cursor decoded as JSON (a common way to keep state), or ``default``."""
        if not self.cursor:
            return default
        try:
            return json.loads(self.cursor)
        except ValueError:
            return default


@dataclass
class TickReply:
    next_cursor: Optional[bytes] = None
    next_interval_secs: Optional[int] = None
    items: list = field(default_factory=list)
    items_seen: Optional[int] = None
    items_dispatched: int = 0

    @staticmethod
    def cursor_from_json(value) -> bytes:
        return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()

    def to_wire(self) -> dict:
        out: dict = {}
        if self.next_cursor is not None:
            out["next_cursor"] = encode_cursor(self.next_cursor)
        if self.next_interval_secs is not None:
            out["next_interval_secs"] = int(self.next_interval_secs)
        seen = self.items_seen if self.items_seen is not None else len(self.items)
        out["metrics"] = {"items_seen": int(seen), "items_dispatched": int(self.items_dispatched)}
        if self.items:
            out["items"] = self.items
        return out


class Plugin:
    def __init__(self, manifest_path: Optional[str] = None, max_workers: Optional[int] = None):
        here = os.path.dirname(os.path.abspath(sys.argv[0]))
        path = manifest_path if manifest_path is None or os.path.isabs(manifest_path) else os.path.join(here, manifest_path)
        self.manifest: dict = {}
        if path:
            with open(path, "rb") as f:
                self.manifest = tomllib.load(f)
        plugin = self.manifest.get("plugin", {})
        self.id = os.environ.get("NEXO_POLLER_PLUGIN_ID") or os.environ.get("NEXO_PLUGIN_ID") or plugin.get("id", "plugin")
        self.version = plugin.get("version", "0.0.0")
        workers = max_workers or plugin.get("poller", {}).get("max_concurrent_ticks", 1)
        self._handlers: dict = {}
        self._out = sys.stdout
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(1, int(workers)))

    def poller(self, *kinds: str) -> Callable:
        """Decorator: the function handles ticks of these kinds."""
        def register(fn):
            for k in kinds:
                self._handlers[k] = fn
            return fn
        return register

    # -- dispatch --------------------------------------------------------------------------

    def _tick(self, params) -> dict:
        """The reply envelope for one poll_tick: {"result": ...} or {"error": ...}."""
        try:
            req = TickRequest.from_params(params)
            handler = self._handlers.get(req.kind)
            if handler is None:
                raise Config(f"plugin {self.id} has no handler for kind {req.kind!r}")
            reply = handler(req)
            if reply is None:
                reply = TickReply()
            return {"result": reply.to_wire()}
        except PluginError as e:
            return {"error": {"code": e.code, "message": str(e)}}
        except Exception as e:  # anything else is worth a retry
            return {"error": {"code": TRANSIENT, "message": f"{type(e).__name__}: {e}"}}

    def _write(self, obj: dict) -> None:
        line = json.dumps(obj, separators=(",", ":"))
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()

    # -- lifecycles ------------------------------------------------------------------------

    def run(self) -> None:
        """Serve ticks: one (ephemeral) or many (long-lived), as pollerd started us."""
        sys.stdout = sys.stderr  # print() must not corrupt the protocol
        if os.environ.get("NEXO_POLLER_EPHEMERAL") == "1":
            self._serve_one()
        else:
            self._serve_forever()

    def _serve_one(self) -> None:
        line = sys.stdin.readline()
        try:
            msg = json.loads(line)
            params = msg.get("params", msg) if isinstance(msg, dict) else None
        except ValueError as e:
            self._write({"error": {"code": CONFIG, "message": f"malformed request: {e}"}})
            return
        self._write(self._tick(params))

    def _serve_forever(self) -> None:
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if not isinstance(msg, dict):
                continue
            mid, method = msg.get("id"), msg.get("method")
            if method == "initialize":
                self._write({"jsonrpc": "2.0", "id": mid, "result": {
                    "manifest": self.manifest or {"plugin": {"id": self.id, "version": self.version}},
                    "server_version": f"{self.id}-{self.version}"}})
            elif method == "poll_tick":
                def work(m=msg):
                    # The id first: pollerd routes a reply by the id at the start of its line
                    # without parsing the rest.
                    env = {"jsonrpc": "2.0", "id": m.get("id")}
                    env.update(self._tick(m.get("params")))
                    self._write(env)
                self._pool.submit(work)
            elif method == "shutdown":
                self._pool.shutdown(wait=True)
                self._write({"jsonrpc": "2.0", "id": mid, "result": {"ok": True}})
                return
            elif mid is not None:
                self._write({"jsonrpc": "2.0", "id": mid, "error": {"code": METHOD_NOT_FOUND, "message": f"unknown method {method!r}"}})
