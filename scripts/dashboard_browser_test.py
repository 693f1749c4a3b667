#!/usr/bin/env python3
"""The dashboard in a real headless Chromium, driven over WebDriver (chromedriver, spoken to with
urllib: no Python package needed).

    python3 scripts/dashboard_browser_test.py .build/debug/pollerd [--screenshot docs/dashboard.png]

It starts the daemon on a job file of its own with an admin and a read token, then:
  1. opens the dashboard and is sent to the login page; a wrong token is refused;
  2. logs in with the admin token, pauses a job from the job table with a note, and sees the
     job's status and the note change in the table, on the job's page and in the admin API;
  3. logs out, logs in with the read token, finds the actions disabled, submits one anyway and
     sees the server refuse it (403), the job untouched;
  4. checks that the pages run no inline script (the content security policy holds: no console
     error) and that the session cookie is HttpOnly (invisible to document.cookie).
Every wait is for a condition, with a deadline; nothing sleeps a fixed time to synchronise.
"""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ADMIN = "browser-admin-token-0123456789"
READ = "browser-read-token-0123456789"
NOTE = "maintenance window <until 18:00> & \"quotes\""
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_for(what, check, deadline_s=20, every=0.05):
    end = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < end:
        try:
            last = check()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - a condition not met yet
            last = e
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class Browser:
    """The few WebDriver (W3C) commands the test needs."""

    def __init__(self, driver_url):
        self.base = driver_url
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1500,950",
                "--no-first-run", "--disable-extensions", "--password-store=basic"]
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium_binary(), "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}}
        status, body = http("POST", self.base + "/session", caps, timeout=60)
        value = json.loads(body)["value"]
        if status != 200:
            raise RuntimeError(f"chromedriver refused a session: {value}")
        self.sid = value["sessionId"]
        self.cmd("POST", "/timeouts", {"implicit": 5000, "pageLoad": 30000})

    def cmd(self, method, path, body=None):
        status, raw = http(method, f"{self.base}/session/{self.sid}{path}", body if body is not None else ({} if method == "POST" else None), timeout=60)
        value = json.loads(raw).get("value") if raw else None
        if status != 200:
            raise RuntimeError(f"WebDriver {method} {path}: {status} {value}")
        return value

    def go(self, url):
        self.cmd("POST", "/url", {"url": url})

    def url(self):
        return self.cmd("GET", "/url")

    def find(self, css):
        return self.cmd("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def finds(self, css):
        return [e[ELEMENT] for e in self.cmd("POST", "/elements", {"using": "css selector", "value": css})]

    def click(self, css):
        self.cmd("POST", f"/element/{self.find(css)}/click")

    def type(self, css, text):
        e = self.find(css)
        self.cmd("POST", f"/element/{e}/clear")
        self.cmd("POST", f"/element/{e}/value", {"text": text})

    def text(self, css):
        return self.cmd("GET", f"/element/{self.find(css)}/text")

    def prop(self, css, name):
        return self.cmd("GET", f"/element/{self.find(css)}/property/{name}")

    def js(self, script, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def screenshot(self, path):
        png = base64.b64decode(self.cmd("GET", "/screenshot"))
        with open(path, "wb") as f:
            f.write(png)

    def console_errors(self):
        status, raw = http("POST", f"{self.base}/session/{self.sid}/se/log", {"type": "browser"})
        if status != 200:
            return []
        return [e["message"] for e in json.loads(raw)["value"] if e.get("level") == "SEVERE"]

    def quit(self):
        http("DELETE", f"{self.base}/session/{self.sid}")


def chromium_binary():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    raise SystemExit("no chromium on PATH: install Debian's chromium and chromium-driver")


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    pollerd = os.path.abspath(sys.argv[1])
    shot = sys.argv[sys.argv.index("--screenshot") + 1] if "--screenshot" in sys.argv else None
    driver_bin = shutil.which("chromedriver")
    if not driver_bin:
        raise SystemExit("no chromedriver on PATH: install Debian's chromium-driver")

    work = tempfile.mkdtemp(prefix="pollerd-browser-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(os.path.join(work, "pollers.yaml"), "w") as f:
        f.write(f"""
pollers:
  state_db: ./state.db
  admin:
    listen: 127.0.0.1:{port}
    tokens:
      - {{ token: {ADMIN}, role: admin }}
      - {{ token: {READ}, role: read }}
  deliver:
    - file: {{ path: ./items.jsonl }}
  jobs:
    - {{ id: orders-feed, kind: noop, schedule: {{ every_secs: 1, stagger_jitter_ms: 0 }}, config: {{ advance_cursor: true }} }}
    - {{ id: inventory-api, kind: command, schedule: {{ every_secs: 1, stagger_jitter_ms: 0 }},
         config: {{ argv: ["/bin/sh", "-c", "echo '{{\\"id\\":\\"a\\"}}'; echo '{{\\"id\\":\\"b\\"}}'"] }} }}
    - {{ id: flaky-partner, kind: command, schedule: {{ every_secs: 2, stagger_jitter_ms: 0 }}, max_staleness_secs: 1,
         config: {{ argv: ["/bin/sh", "-c", "echo 'upstream answered 502' >&2; exit 1"] }} }}
    - {{ id: nightly-report, kind: noop, schedule: {{ cron: "0 0 3 * * *", tz: Europe/Berlin }} }}
    - {{ id: broken-job, kind: noop, schedule: {{ every_secs: 0 }} }}
""")
    daemon = subprocess.Popen([pollerd, "run", "--config", os.path.join(work, "pollers.yaml")], cwd=work,
                              stdout=open(os.path.join(work, "daemon.log"), "w"), stderr=subprocess.STDOUT, start_new_session=True)
    dport = free_port()
    driver = subprocess.Popen([driver_bin, f"--port={dport}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    browser = None
    try:
        wait_for("the daemon's /readyz", lambda: http("GET", base + "/readyz", timeout=1)[0] == 200)
        wait_for("chromedriver", lambda: http("GET", f"http://127.0.0.1:{dport}/status", timeout=1)[0] == 200)
        auth = {"Authorization": f"Bearer {ADMIN}"}

        def job(jid):
            status, body = http("GET", f"{base}/admin/jobs/{jid}", headers=auth)
            assert status == 200, (status, body)
            return json.loads(body)

        # Some history for the table's sparklines and counts.
        wait_for("ticks of orders-feed", lambda: job("orders-feed")["ticks_total"] >= 3)
        wait_for("a failure of flaky-partner", lambda: job("flaky-partner")["consecutive_errors"] >= 1)

        browser = Browser(f"http://127.0.0.1:{dport}")
        b = browser

        # 1. Not logged in: the dashboard sends us to the login page; a wrong token is refused.
        b.go(base + "/")
        wait_for("the login page", lambda: "/login" in b.url())
        b.type("#token", "not-a-token")
        b.click("#login")
        assert "not one of this daemon's" in b.text("#login-error"), "a wrong token must be refused"

        # 2. Log in as admin; pause orders-feed from the job table with a note.
        b.type("#token", ADMIN)
        b.click("#login")
        wait_for("the job table", lambda: b.finds("#jobs tbody tr#job-orders-feed"))
        assert b.text("#role") == "admin"
        assert "orders-feed" in b.text("#jobs") and "broken-job" in b.text("#jobs")
        assert b.js("return document.cookie;") == "", "the session cookie must be HttpOnly"
        assert b.finds("#job-orders-feed svg.spark rect"), "the sparkline must have bars"
        assert b.text("#job-orders-feed .badge") == "ok"
        b.click("#job-orders-feed details.pause summary")
        b.type("#job-orders-feed input[name=note]", NOTE)
        b.click("#job-orders-feed button.pause")
        wait_for("the flash", lambda: b.text("#flash") == "Paused orders-feed.")
        assert b.text("#job-orders-feed .badge") == "paused", b.text("#job-orders-feed .status")
        assert b.text("#job-orders-feed .note") == NOTE, b.text("#job-orders-feed .note")
        assert "paused" in b.url() or "done=paused" in b.url()
        state = job("orders-feed")
        assert state["paused"] is True and state["paused_reason"] == NOTE, state

        # The job's page says the same, and explains it.
        b.click("#job-orders-feed td.id a")
        wait_for("the job page", lambda: b.text("#job-status") == "paused")
        assert b.text("#job-note") == "Paused: " + NOTE
        assert "paused" in b.text("#explain").lower()
        assert b.finds("#ticks tbody tr") and b.finds("#cursors tbody tr form"), "history and cursor rewind must show"

        # Filters: the paused filter shows just the paused job.
        b.go(base + "/?status=paused")
        wait_for("the filtered table", lambda: len(b.finds("#jobs tbody tr")) == 1)
        assert b.finds("#job-orders-feed")

        if shot:
            b.go(base + "/")
            wait_for("the table", lambda: b.finds("#job-flaky-partner"))
            b.js("document.querySelector('#job-inventory-api details.pause').open = true;")
            b.screenshot(shot)
            b.go(base + "/jobs/orders-feed")
            wait_for("the job page", lambda: b.finds("#ticks"))
            b.screenshot(shot.replace(".png", "-job.png"))

        # The wrong token's 401 is the one error the console may hold.
        errors = [e for e in b.console_errors() if not ("/login" in e and "401" in e)]
        assert not errors, f"the browser console has errors (a CSP violation?): {errors}"

        # 3. A read token: actions are disabled, and refused by the server when sent anyway.
        b.click("#logout")
        wait_for("the login page again", lambda: "/login" in b.url())
        b.type("#token", READ)
        b.click("#login")
        wait_for("the job table as read", lambda: b.text("#role") == "read")
        assert b.prop("#job-inventory-api button.run", "disabled") is True
        b.js("""
            const form = document.querySelector('#job-inventory-api form.pause-form');
            form.querySelector('input[name=note]').value = 'a reader should not';
            form.querySelector('button.pause').disabled = false;
            form.querySelector('button.pause').click();
        """)
        wait_for("the refusal page", lambda: "read token may not" in b.text("#error-message"))
        assert "403" in b.text("h1")
        state = job("inventory-api")
        assert state["paused"] is False, "a read session must not pause a job"

        # The audit log names the dashboard as the actor of the pause.
        status, body = http("GET", f"{base}/admin/audit?job=orders-feed", headers=auth)
        entries = json.loads(body)["audit"]
        assert any(e["action"] == "pause" and e["actor"].startswith("dashboard") and e["detail"] == NOTE for e in entries), entries
        print("dashboard browser test: ok (login, wrong token, pause with a note, job page, filter, read token refused, CSP, HttpOnly)")
    finally:
        if browser:
            browser.quit()
        for p in (driver, daemon):
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=15)
            except Exception:  # noqa: BLE001
                os.killpg(p.pid, signal.SIGKILL)
        if os.environ.get("KEEP_WORK") != "1":
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("kept", work)


if __name__ == "__main__":
    main()
