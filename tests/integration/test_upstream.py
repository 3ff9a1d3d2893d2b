"""Upstream failures and recovery: refused (502), silent (504), one dead of
two (retry on the other), backends named by host name (resolved).
"""

import time

import pytest

from backend import closed_port
from httpclient import https

CONNECT_S = 1.0
RESPONSE_S = 2.0


@pytest.fixture(scope="module")
def edge(module_portier_factory, module_backend_factory):
    alive = module_backend_factory("alive")
    silent = module_backend_factory("silent", mode="blackhole")
    named = module_backend_factory("named", also_ipv6=True)
    dead = f"127.0.0.1:{closed_port()}"
    tenants = {
        "refused": {"hosts": ["refused.test"], "backends": [dead]},
        "silent": {"hosts": ["silent.test"], "backends": [silent.address]},
        "half": {"hosts": ["half.test"], "backends": [dead, alive.address]},
        "named": {"hosts": ["named.test"], "backends": [f"localhost:{named.port}"]},
    }
    p = module_portier_factory(tenants, timeouts={"backend_connect": "1s",
                                                  "backend_response": "2s"})
    return p, {"alive": alive, "silent": silent, "named": named}


def get(edge, host, path, timeout=15):
    p = edge[0]
    return https(p.https_port, host, p.ca_file, path, timeout=timeout)


def test_refused_backend_502(edge, marker):
    """A backend port nobody listens on: 502 promptly, plain text with the
    request id and no internals."""
    r = get(edge, "refused.test", marker)
    assert r.status == 502, r
    assert r.elapsed < CONNECT_S + 2.0, f"502 took {r.elapsed:.2f}s"
    rid = r.header("X-Request-Id")
    assert rid and rid.encode() in r.body, r
    assert b"127.0.0.1" not in r.body, "error body leaks the backend address"


def test_silent_backend_504(edge, marker):
    """A backend that accepts but never answers: 504 after backend_response."""
    _, bk = edge
    r = get(edge, "silent.test", marker)
    assert r.status == 504, r
    assert 1.5 <= r.elapsed <= 6.0, f"504 after {r.elapsed:.2f}s (backend_response 2s)"
    assert bk["silent"].seen(marker), "the request never reached the silent backend"


def test_one_dead_backend_of_two(edge, marker):
    """Two backends, one refusing: all 50 requests succeed on the other."""
    _, bk = edge
    deadline = time.monotonic() + 60
    for i in range(50):
        r = get(edge, "half.test", f"{marker}/{i}")
        assert r.status == 200 and r.header("X-Backend") == "alive", (i, r)
        assert time.monotonic() < deadline
    assert len(bk["alive"].seen(marker)) == 50


def test_backend_named_by_host_name(edge, marker):
    """A backend written "localhost:PORT" is resolved and reached."""
    _, bk = edge
    for i in range(3):
        r = get(edge, "named.test", f"{marker}/{i}")
        assert r.status == 200 and r.header("X-Backend") == "named", r
    assert len(bk["named"].seen(marker)) == 3
