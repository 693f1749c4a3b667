#!/usr/bin/env python3
"""The HTTP kinds through the CLI, as a user runs them: `pollerd tick JOB --json` prints the
normalized items and the kind's details, `--dry-run` commits nothing (the same items come
again on the next tick), a real tick commits (the next one finds nothing new), and a job aimed
at loopback without allow_private_networks fails as config (exit 3) without a request reaching
the server.

usage: cli_http_test.py PATH/TO/pollerd
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BIN = os.path.abspath(sys.argv[1])
FEED = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>CLI</title>
<item><title>Second &amp; last</title><link>/posts/2</link><guid>p2</guid><pubDate>Tue, 02 Jun 2026 10:00:00 GMT</pubDate></item>
<item><title>First</title><link>/posts/1</link><guid>p1</guid><pubDate>Mon, 01 Jun 2026 10:00:00 +0200</pubDate></item>
</channel></rss>"""
API = b'{"data":[{"id":7,"name":"seven"},{"name":"no id"}]}'
hits = []


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        hits.append(self.path)
        body, ctype = (FEED, "application/rss+xml") if self.path == "/feed.xml" else (API, "application/json")
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    work = tempfile.mkdtemp(prefix="pollerd-cli-http-")
    path = os.path.join(work, "pollers.yaml")
    with open(path, "w") as f:
        f.write(f"""pollers:
  state_db: {work}/state.db
  deliver: [{{ file: {{ path: {work}/items.jsonl }} }}]
  jobs:
    - id: feed
      kind: rss
      schedule: {{ every_secs: 300 }}
      config: {{ feed_url: "http://127.0.0.1:{port}/feed.xml", allow_private_networks: true, deliver_existing: true }}
    - id: api
      kind: http_json
      schedule: {{ every_secs: 300 }}
      config: {{ url: "http://127.0.0.1:{port}/api", items_path: data, allow_private_networks: true, deliver_existing: true }}
    - id: sneaky
      kind: rss
      schedule: {{ every_secs: 300 }}
      config: {{ feed_url: "http://localhost:{port}/secret" }}
""")

    def tick(job, *flags):
        p = subprocess.run([BIN, "tick", job, "--config", path, "--json", *flags], capture_output=True, text=True, timeout=60)
        return p.returncode, json.loads(p.stdout) if p.stdout.strip() else None, p.stderr

    rc, dry, _ = tick("feed", "--dry-run")
    assert rc == 0 and dry["status"] == "ok" and dry["dry_run"], dry
    items = dry["items"]
    assert [i["id"] for i in items] == ["p1", "p2"], items
    first = items[0]
    assert first["link"] == f"http://127.0.0.1:{port}/posts/1" and first["published"] == "2026-06-01T08:00:00Z", first
    assert items[1]["title"] == "Second & last", items[1]
    assert set(first) == {"id", "title", "link", "published", "updated", "summary", "content", "authors", "categories", "enclosures"}
    assert dry["details"]["format"] == "rss-2.0" and dry["details"]["status"] == 200, dry["details"]

    rc, real, _ = tick("feed")
    assert rc == 0 and [i["id"] for i in real["items"]] == ["p1", "p2"], "the dry run committed something: %r" % real
    rc, again, _ = tick("feed")
    assert rc == 0 and again["items"] == [] and again["details"].get("unchanged_body"), again

    rc, api, _ = tick("api")
    assert rc == 0 and len(api["items"]) == 2 and api["details"]["hashed_ids"] == 1, api

    before = len(hits)
    rc, sneaky, err = tick("sneaky")
    assert rc == 3 and sneaky["status"] == "config" and "loopback" in sneaky["error"], (rc, sneaky, err)
    assert len(hits) == before, "a refused address got a request"
    print(f"cli http test OK: {len(hits)} requests, dry run committed nothing, refused job sent nothing")
    server.shutdown()


if __name__ == "__main__":
    main()
