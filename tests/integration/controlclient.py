"""Client for portier's control API: HTTP/1.1 + JSON over its unix socket.

http.client does the HTTP; UnixHTTPConnection only replaces the TCP connect
with a unix-socket one (Host: portier, as `curl --unix-socket SOCK
http://portier/...` sends). Every call opens a fresh connection, so one test's
request never depends on the state another left on a kept-alive connection.

Shapes (DESIGN.md section 4 and the control-api notes): errors are
{"error": "...", "field": "..."}; GET /v1/tenants is {"generation", "tenants"}.
"""

import http.client
import json
import socket
import time
from pathlib import Path

from httpclient import Response

JSON_TYPE = "application/json"


class UnixHTTPConnection(http.client.HTTPConnection):
    """UnixHTTPConnection: http.client over AF_UNIX to the socket at path."""

    def __init__(self, path, timeout=10):
        super().__init__("portier", timeout=timeout)
        self.unix_path = str(path)

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def socket_of(portier):
    """socket_of: the control socket path a harness Portier was configured with."""
    return Path(portier.config["control"]["socket"])


class ControlClient:
    """ControlClient: requests to one control socket; answers are httpclient.Response."""

    def __init__(self, path, timeout=10):
        self.path = Path(path)
        self.timeout = timeout

    @classmethod
    def of(cls, portier, timeout=10):
        """of: a client for a harness Portier's control socket (waits until it answers)."""
        c = cls(socket_of(portier), timeout)
        c.wait_ready()
        return c

    # -- raw -------------------------------------------------------------------
    def request(self, method, path, body=None, headers=None, content_type=JSON_TYPE):
        """request: one request on a new connection. body: None, bytes, str, or
        any other value (sent as JSON). content_type None sends no Content-Type
        for a body. A peer that answers and closes before reading the whole body
        (413) still yields its answer."""
        hdrs = dict(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        if body is not None and content_type is not None:
            hdrs.setdefault("Content-Type", content_type)
        conn = UnixHTTPConnection(self.path, timeout=self.timeout)
        t0 = time.monotonic()
        try:
            try:
                conn.request(method, path, body=body, headers=hdrs)
            except (BrokenPipeError, ConnectionResetError):
                if conn.sock is None:
                    raise
            r = conn.getresponse()
            data = r.read()
            return Response(r.status, r.reason, r.headers, data, time.monotonic() - t0)
        finally:
            conn.close()

    def wait_ready(self, timeout=10.0):
        """wait_ready: poll GET /v1/status until the socket answers at all."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                return self.request("GET", "/v1/status")
            except OSError as e:  # not yet bound / not yet listening
                last = e
            time.sleep(0.05)
        raise AssertionError(f"control socket {self.path} did not answer within "
                             f"{timeout}s: {last!r}")

    def call(self, method, path, body=None, expect=None, **kw):
        """call: request, parse the JSON answer; assert the status when expect
        is given (an int or a tuple of them). Returns (status, json or None)."""
        r = self.request(method, path, body, **kw)
        try:
            data = r.json()
        except ValueError:
            data = None
        if expect is not None:
            ok = r.status in expect if isinstance(expect, tuple) else r.status == expect
            assert ok, f"{method} {path}: expected {expect}, got {r.status} {r.body[:500]!r}"
        return r.status, data

    # -- endpoints -------------------------------------------------------------------
    def table(self):
        """table: GET /v1/tenants as parsed JSON (asserting 200)."""
        r = self.request("GET", "/v1/tenants")
        assert r.status == 200, f"GET /v1/tenants: {r.status} {r.body[:500]!r}"
        return r.json()

    def generation(self):
        return self.table()["generation"]

    def get(self, name):
        return self.request("GET", f"/v1/tenants/{name}")

    def put(self, name, tenant, if_match=None, **kw):
        headers = kw.pop("headers", {})
        if if_match is not None:
            headers["If-Match"] = str(if_match)
        return self.request("PUT", f"/v1/tenants/{name}", tenant, headers=headers, **kw)

    def delete(self, name, if_match=None):
        headers = {"If-Match": str(if_match)} if if_match is not None else {}
        return self.request("DELETE", f"/v1/tenants/{name}", headers=headers)

    def validate(self, body, name=None):
        path = "/v1/validate" + (f"?name={name}" if name else "")
        return self.request("POST", path, body)

    def reload(self):
        return self.request("POST", "/v1/reload")

    def certs(self):
        return self.request("GET", "/v1/certs")

    def renew(self, host):
        return self.request("POST", f"/v1/certs/{host}/renew")

    def status(self):
        return self.request("GET", "/v1/status")

    def metrics(self):
        return self.request("GET", "/metrics")


def shorthand(hosts, *backends, **extra):
    """shorthand: {"hosts": [...], "backends": [ADDR...]} (backends may be Backend objects)."""
    if isinstance(hosts, str):
        hosts = [hosts]
    addrs = [b if isinstance(b, str) else b.address for b in backends]
    return {"hosts": list(hosts), "backends": addrs, **extra}


def full(host, *backends, **extra):
    """full: one Host route to service "web" with the given backends."""
    addrs = [b if isinstance(b, str) else b.address for b in backends]
    return {"routes": [{"rule": f"Host(`{host}`)", "service": "web"}],
            "services": {"web": {"backends": addrs}}, **extra}
