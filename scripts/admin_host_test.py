#!/usr/bin/env python3
"""The tokenless admin API's DNS-rebinding guard, against the real daemon binary.

Every address form of the SSRF suite (read from Tests/PollerdHTTPTests/AddressPolicyTests.swift,
so a form added there is tried here too), and the names a rebinding page would use
(`127.0.0.1.evil.example`, `127.evil.example`, ...), are sent as the Host header of a read (GET
/admin/jobs) and of every kind of action (pause, resume, reset, cursor, run, reload, DLQ replay and
drop). Only the loopback forms may be answered; the others get 403 and change nothing. A request
with no Host, or with two that differ, gets 400.

usage: admin_host_test.py PATH/TO/pollerd
"""
import ipaddress, json, os, re, signal, socket, subprocess, sys, tempfile, time

BIN = os.path.abspath(sys.argv[1])
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUITE = os.path.join(ROOT, "Tests", "PollerdHTTPTests", "AddressPolicyTests.swift")


def suite_forms():
    """The written forms of the SSRF suite's address lists: refused, public and obfuscated."""
    text = open(SUITE).read()
    forms = []
    for name in ("refused", "publicAddresses", "obfuscated"):
        m = re.search(r"static let " + name + r"(?::[^=]*)? = \[(.*?)\n    \]", text, re.S)
        assert m, f"no list '{name}' in {SUITE}"
        body = m.group(1)
        if name == "publicAddresses":
            forms += re.findall(r'"([^"]*)"', body)
        else:  # tuples: the form is the first string of each
            forms += re.findall(r'\(\s*"([^"]*)"', body)
    assert len(forms) > 50, forms
    return forms


def is_loopback(form):
    """What the daemon must decide: the address a form stands for is loopback, or the IPv4-mapped
    form of one. Obfuscated numbers are read as C's inet_aton reads them."""
    text = form.strip("[]").split("%")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        try:
            ip = ipaddress.ip_address(socket.inet_aton(text))
        except OSError:
            return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def as_host(form, port):
    """A form as a Host header writes it: IPv6 in brackets, with the port."""
    bare = form.strip("[]")
    if ":" in bare:
        return f"[{bare.replace('%', '%25')}]:{port}"
    return f"{bare}:{port}"


def request(port, method, path, host, body=b"", extra=""):
    """Sends one raw HTTP/1.1 request; returns (status, body). host=None sends no Host header."""
    head = f"{method} {path} HTTP/1.1\r\n"
    if host is not None:
        head += f"Host: {host}\r\n"
    head += extra
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    head += "Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head.encode() + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[-1]


ACTIONS = [
    ("POST", "/admin/jobs/hb/pause", b'{"note":"x"}'),
    ("POST", "/admin/jobs/hb/resume", b"{}"),
    ("POST", "/admin/jobs/hb/reset", b"{}"),
    ("POST", "/admin/jobs/hb/cursor", b'{"cursor":"AQID"}'),
    ("POST", "/admin/jobs/hb/run", b"{}"),
    ("POST", "/admin/reload", b"{}"),
    ("POST", "/admin/dlq/replay", b'{"all":true}'),
    ("POST", "/admin/dlq/drop", b'{"all":true}'),
]


def main():
    work = tempfile.mkdtemp(prefix="pollerd-admin-host-")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    probe_port = s.getsockname()[1]
    s.close()
    cfg = os.path.join(work, "pollers.yaml")
    with open(cfg, "w") as f:
        f.write(f"""pollers:
  state_db: {work}/state.db
  admin: {{ listen: "127.0.0.1:{port}", probe_listen: "127.0.0.1:{probe_port}" }}
  jobs:
    - {{ id: hb, kind: noop, schedule: {{ every_secs: 3600 }}, deliver: [{{ stdout: {{}} }}] }}
""")
    env = {k: v for k, v in os.environ.items() if k not in ("POLLERD_ADMIN_TOKEN", "POLLERD_READ_TOKEN")}
    daemon = subprocess.Popen([BIN, "run", "--config", cfg, "--log-level", "error"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(400):
            try:
                if request(port, "GET", "/readyz", "localhost")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        else:
            raise SystemExit("the daemon did not become ready")

        hostile = ["127.0.0.1.evil.example", "127.evil.example", "127.0.0.1.nip.io", "localhost.evil.example",
                   "evil.localhost", "evil.example", "0x7f.evil.example"]
        cases = [(as_host(form, port), is_loopback(form), form) for form in suite_forms()]
        cases += [(f"{name}:{port}", False, name) for name in hostile] + [(name, False, name) for name in hostile]
        cases += [(f"localhost:{port}", True, "localhost"), ("LOCALHOST", True, "LOCALHOST")]
        answered = refused = 0
        for host, loopback, form in cases:
            status, body = request(port, "GET", "/admin/jobs", host)
            if loopback:
                assert status == 200, (form, host, status, body)
                answered += 1
                continue
            assert status == 403 and b"host_refused" in body, (form, host, status, body)
            for method, path, payload in ACTIONS:
                status, body = request(port, method, path, host, payload, extra=f"Origin: http://{host}\r\n")
                assert status == 403, (form, host, method, path, status, body)
            refused += 1
        # No action above took effect: the job was never paused nor its cursor set.
        status, body = request(port, "GET", "/admin/jobs/hb", "localhost")
        job = json.loads(body)
        assert status == 200 and not job.get("paused") and job.get("cursor") in (None, ""), job
        audit_status, audit = request(port, "GET", "/admin/audit?job=hb", "localhost")
        assert audit_status == 200 and json.loads(audit)["audit"] == [], audit
        assert request(port, "GET", "/admin/jobs", None)[0] == 400
        two = "Host: evil.example\r\n"
        assert request(port, "GET", "/admin/jobs", f"localhost:{port}", extra=two)[0] == 400
        # One client (127.0.0.2) holding its whole cap of connections: its next one is closed
        # unanswered, and a probe from another client is answered.
        held = []
        try:
            for _ in range(32):
                c = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=("127.0.0.2", 0))
                c.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
                got = b""
                while b"ok\n" not in got:
                    chunk = c.recv(4096)
                    assert chunk, "a held connection was closed"
                    got += chunk
                held.append(c)
            extra = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=("127.0.0.2", 0))
            try:
                extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                answer = extra.recv(4096)
            except ConnectionResetError:
                answer = b""  # closed before it read the request
            assert answer == b"", f"the 33rd connection of one client was answered: {answer[:80]!r}"
            extra.close()
            assert request(port, "GET", "/healthz", "localhost")[0] == 200
        finally:
            for c in held:
                c.close()
        # The probe listener serves the probes alone, behind the same guard.
        for path in ("/healthz", "/readyz", "/metrics"):
            assert request(probe_port, "GET", path, "localhost")[0] == 200, path
        assert request(probe_port, "GET", "/admin/jobs", "localhost")[0] == 404
        assert request(probe_port, "GET", "/healthz", "127.0.0.1.evil.example")[0] == 403
        # The loopback forms do reach the actions.
        status, body = request(port, "POST", "/admin/jobs/hb/pause", "127.1", b'{"note":"x"}')
        assert status == 200, (status, body)
        print(f"admin host test OK: {answered} loopback Host forms answered, {refused} others refused on a read "
              f"and on {len(ACTIONS)} actions each, a missing or doubled Host refused; one client at its 32-connection cap does not starve a probe; the probe "
              "listener serves the probes alone")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)


if __name__ == "__main__":
    main()
