"""Access log: one JSON object per request with the documented keys and the
right values, matched to requests by their X-Request-Id.
"""

import pytest

from harness import wait_until
from httpclient import http, https

KEYS = {"time", "tenant", "host", "method", "path", "status", "bytes_in", "bytes_out",
        "duration_ms", "upstream", "upstream_ms", "client_ip", "request_id", "protocol",
        "tls_version"}


@pytest.fixture(scope="module")
def edge(module_portier_factory, module_backend_factory):
    b = module_backend_factory("log-backend")
    p = module_portier_factory({"logs": {"hosts": ["log.test"], "backends": [b.address]}})
    return p, b


def entry_for(p, request_id, timeout=5):
    """entry_for: the access log line of request_id (written asynchronously)."""
    assert request_id, "response without X-Request-Id"
    def find():
        hits = [e for e in p.access_entries() if e.get("request_id") == request_id]
        return hits or None
    hits = wait_until(find, timeout, what=f"access log line for {request_id}")
    assert len(hits) == 1, f"{len(hits)} lines for one request: {hits}"
    return hits[0]


def check_common(e, p, path, method, status):
    assert KEYS <= set(e), f"missing keys {KEYS - set(e)}: {e}"
    assert e["tenant"] == "logs", e
    assert e["host"].split(":")[0] == "log.test", e
    assert (e["method"], e["path"], e["status"]) == (method, path, status), e
    assert e["protocol"] == "HTTP/1.1", e
    assert e["client_ip"] == "127.0.0.1", e
    assert isinstance(e["time"], str) and e["time"], e
    for k in ("bytes_in", "bytes_out", "duration_ms"):
        assert isinstance(e[k], (int, float)) and e[k] >= 0, (k, e)


def test_get_logged(edge, marker):
    """A proxied GET: status, host, tenant, method, path, TLS 1.3, upstream."""
    p, b = edge
    r = https(p.https_port, "log.test", p.ca_file, marker)
    assert r.status == 200
    e = entry_for(p, r.header("X-Request-Id"))
    check_common(e, p, marker, "GET", 200)
    assert e["tls_version"] == "TLSv1.3", e
    assert e["upstream"] == b.address, e
    assert isinstance(e["upstream_ms"], (int, float)) and e["upstream_ms"] >= 0, e
    assert e["bytes_out"] >= len(r.body), e


def test_post_body_counted(edge, marker):
    """A POST's body is counted in bytes_in."""
    p, _ = edge
    r = https(p.https_port, "log.test", p.ca_file, marker, method="POST", body=b"x" * 5000)
    assert r.status == 200
    e = entry_for(p, r.header("X-Request-Id"))
    check_common(e, p, marker, "POST", 200)
    assert e["bytes_in"] >= 5000, e


def test_backend_status_logged(edge):
    """The backend's status (404 here) is what the log records."""
    p, _ = edge
    r = https(p.https_port, "log.test", p.ca_file, "/status/404")
    assert r.status == 404
    e = entry_for(p, r.header("X-Request-Id"))
    check_common(e, p, "/status/404", "GET", 404)


def test_redirect_on_http_logged(edge, marker):
    """A 308 on the plain listener is logged too, without a TLS version."""
    p, _ = edge
    r = http(p.http_port, "log.test", marker)
    assert r.status == 308
    e = entry_for(p, r.header("X-Request-Id"))
    check_common(e, p, marker, "GET", 308)
    assert e["tls_version"] in (None, "", "-"), e


def test_one_line_per_request(edge, marker):
    """Five requests produce exactly five lines carrying their ids."""
    p, _ = edge
    ids = [https(p.https_port, "log.test", p.ca_file, f"{marker}/{i}").header("X-Request-Id")
           for i in range(5)]
    for rid in ids:
        entry_for(p, rid)
