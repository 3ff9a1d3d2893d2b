"""Routing: host → tenant → route → service → backend, on both listeners.

One portier serves four tenants: alpha (full form, path rules, priorities),
beta (HostRegexp, a respond service), gamma (shorthand form) on internal TLS,
and delta with https_redirect false. Backends are told apart by X-Backend.
"""

import re
import ssl

import pytest

from httpclient import PinnedHTTPSConnection, curl, exchange, http, https, open_raw

HOSTS = ("alpha.test", "beta.test", "gamma.test")


@pytest.fixture(scope="module")
def edge(module_portier_factory, module_backend_factory):
    """edge: the running portier plus its backends by name."""
    bk = {n: module_backend_factory(n) for n in
          ("alpha-1", "alpha-2", "alpha-api", "beta-1", "beta-2", "gamma-1", "gamma-2",
           "delta-1")}
    a = {n: bk[n].address for n in bk}
    tenants = {
        "alpha": {
            "routes": [
                {"rule": "Host(`alpha.test`)", "service": "web"},
                {"rule": "Host(`alpha.test`) && PathPrefix(`/api`)", "service": "api",
                 "strip_prefix": "/api"},
                # explicit priority beats the longer rule's default (its length)
                {"rule": "Host(`alpha.test`) && PathPrefix(`/prio`)", "service": "api",
                 "priority": 1000},
                {"rule": "Host(`alpha.test`) && PathPrefix(`/prio/explicit`)",
                 "service": "web"},
                # a low explicit priority loses to the short Host rule
                {"rule": "Host(`alpha.test`) && PathPrefix(`/low/longer/path`)",
                 "service": "api", "priority": 1},
                # default priority: the longer rule wins
                {"rule": "Host(`alpha.test`) && PathPrefix(`/len`)", "service": "web"},
                {"rule": "Host(`alpha.test`) && PathPrefix(`/len/longer`)",
                 "service": "api"},
            ],
            "services": {"web": {"backends": [a["alpha-1"], a["alpha-2"]]},
                         "api": {"backends": [a["alpha-api"]]}},
            "tls": "internal",
        },
        "beta": {
            "routes": [
                {"rule": "Host(`beta.test`)", "service": "app"},
                {"rule": "HostRegexp(`^beta-[a-z0-9]+\\.test$`)", "service": "app"},
                {"rule": "Host(`beta.test`) && Path(`/maintenance`)", "service": "maint"},
            ],
            "services": {"app": {"backends": [a["beta-1"], a["beta-2"]]},
                         "maint": {"respond": {"status": 503,
                                               "body": "down for maintenance\n"}}},
            "tls": "internal",
        },
        "gamma": {"hosts": ["gamma.test", "www.gamma.test"],
                  "backends": [a["gamma-1"], a["gamma-2"]]},
        "delta": {
            "routes": [{"rule": "Host(`delta.test`)", "service": "web"}],
            "services": {"web": {"backends": [a["delta-1"]]}},
            "https_redirect": False,
        },
    }
    p = module_portier_factory(tenants, timeouts={"backend_connect": "1s",
                                                  "backend_response": "5s"})
    return p, bk


def get(edge, host, path="/", **kw):
    p, _ = edge
    return https(p.https_port, host, p.ca_file, path, **kw)


def headers_of(echo):
    """headers_of: the echo's header list as {lowercase name: [values]}."""
    out = {}
    for k, v in echo["headers"]:
        out.setdefault(k.lower(), []).append(v)
    return out


def no_backend_saw(edge, marker):
    _, bk = edge
    return [r for b in bk.values() for r in b.seen(marker)] == []


@pytest.mark.parametrize("host", HOSTS + ("www.gamma.test",))
def test_host_reaches_its_tenant(edge, host, marker):
    """Each tenant host reaches a backend of that tenant, and only it."""
    r = get(edge, host, marker)
    assert r.status == 200, r
    tenant = host.split(".")[-2]
    assert r.header("X-Backend").startswith(tenant + "-"), r
    assert r.json()["path"] == marker


def test_curl_trusts_internal_root(edge, marker):
    """curl with --resolve and --cacert root.pem verifies the issued leaf."""
    p, _ = edge
    port = p.https_port
    res = curl(["--resolve", f"alpha.test:{port}:127.0.0.1", "--cacert", str(p.ca_file),
                "-D", "-", "-o", "/dev/null", f"https://alpha.test:{port}{marker}"])
    assert res.returncode == 0, res.stderr
    assert re.search(r"^HTTP/(1\.1|2) 200", res.stdout, re.M), res.stdout
    assert re.search(r"^x-backend: alpha-[12]\r?$", res.stdout, re.M | re.I), res.stdout


@pytest.mark.parametrize("host", HOSTS)
def test_round_robin_uses_both_backends(edge, host, marker):
    """Twelve requests to a two-backend service reach both backends."""
    names = [get(edge, host, f"{marker}/{i}").header("X-Backend") for i in range(12)]
    assert len(set(names)) == 2, names
    assert min(names.count(n) for n in set(names)) >= 3, names


def test_strip_prefix(edge, marker):
    """PathPrefix(/api) with strip_prefix: the backend sees the path without it."""
    r = get(edge, "alpha.test", f"/api{marker}?x=1")
    assert r.status == 200 and r.header("X-Backend") == "alpha-api", r
    assert r.json()["target"] == f"{marker}?x=1"


def test_strip_prefix_whole_path_becomes_root(edge):
    """Stripping the whole path leaves "/" (never an empty request target)."""
    r = get(edge, "alpha.test", "/api")
    assert r.status == 200 and r.header("X-Backend") == "alpha-api", r
    assert r.json()["path"] == "/"


def test_host_regexp(edge, marker):
    """HostRegexp routes matching hosts (with an issued cert) to the tenant."""
    r = get(edge, "beta-42.test", marker)
    assert r.status == 200 and r.header("X-Backend") in ("beta-1", "beta-2"), r


def test_host_regexp_does_not_match_other_hosts(edge, marker):
    """The regex is anchored: a host it does not match has no route (404)."""
    p, _ = edge
    r = http(p.http_port, "xbeta-42.test.evil", marker)
    assert r.status == 404, r
    assert no_backend_saw(edge, marker)


def test_explicit_priority_wins(edge, marker):
    """An explicit priority beats the default priority of a longer rule."""
    r = get(edge, "alpha.test", f"/prio/explicit{marker}")
    assert r.header("X-Backend") == "alpha-api", r
    r = get(edge, "alpha.test", f"/low/longer/path{marker}")
    assert r.header("X-Backend") in ("alpha-1", "alpha-2"), r


def test_default_priority_is_rule_length(edge, marker):
    """Without priorities the longer (more specific) rule wins."""
    r = get(edge, "alpha.test", f"/len/longer{marker}")
    assert r.header("X-Backend") == "alpha-api", r
    r = get(edge, "alpha.test", f"/len/other{marker}")
    assert r.header("X-Backend") in ("alpha-1", "alpha-2"), r


def test_host_match_ignores_case_and_trailing_dot(edge, marker):
    """Host matching is case-insensitive and ignores a trailing dot."""
    p, _ = edge
    r = get(edge, "alpha.test", marker, headers={"Host": "ALPHA.Test."})
    assert r.status == 200 and r.header("X-Backend") in ("alpha-1", "alpha-2"), r


def test_unknown_host_404_on_http(edge, marker):
    """An unrouted Host on the HTTP listener: 404, plain text with the request id."""
    p, _ = edge
    r = http(p.http_port, "nobody.test", marker)
    assert r.status == 404, r
    assert (r.header("Content-Type") or "").startswith("text/plain"), r
    rid = r.header("X-Request-Id")
    assert rid and rid.encode() in r.body, r
    assert no_backend_saw(edge, marker)


def test_unknown_sni_refused(edge):
    """An SNI no tenant routes: the handshake fails with unrecognized_name."""
    p, _ = edge
    with pytest.raises(ssl.SSLError) as ei:
        open_raw(p.https_port, tls=True, sni="nobody.test", ca_file=p.ca_file).close()
    assert "UNRECOGNIZED_NAME" in str(ei.value).upper(), ei.value


def test_sni_and_host_of_different_tenants_421(edge, marker):
    """SNI alpha.test with Host beta.test is misdirected: 421, nothing proxied."""
    r = get(edge, "beta.test", marker, sni="alpha.test")
    assert r.status == 421, r
    assert no_backend_saw(edge, marker)


def test_http_listener_redirects_308(edge, marker):
    """Tenant hosts on HTTP get 308 to https with path and query kept."""
    p, _ = edge
    r = http(p.http_port, "alpha.test", f"{marker}/x?a=1&b=two")
    assert r.status == 308, r
    loc = r.header("Location")
    assert re.fullmatch(r"https://alpha\.test(:\d+)?" + re.escape(f"{marker}/x?a=1&b=two"),
                        loc or ""), loc
    assert no_backend_saw(edge, marker)


def test_http_listener_redirect_for_regexp_and_shorthand(edge, marker):
    """The redirect applies to HostRegexp and shorthand tenants alike."""
    p, _ = edge
    for host in ("beta-7.test", "www.gamma.test"):
        r = http(p.http_port, host, marker)
        assert r.status == 308, (host, r)
        assert r.header("Location").startswith(f"https://{host}"), r


def test_https_redirect_false_proxies_plain_http(edge, marker):
    """https_redirect false: the HTTP listener proxies, X-Forwarded-Proto http."""
    p, _ = edge
    r = http(p.http_port, "delta.test", marker)
    assert r.status == 200 and r.header("X-Backend") == "delta-1", r
    h = headers_of(r.json())
    assert h["x-forwarded-proto"] == ["http"], h
    assert h["x-forwarded-port"] == [str(p.http_port)], h


def test_respond_service(edge, marker):
    """A respond service answers from portier: its status and body exactly."""
    r = get(edge, "beta.test", "/maintenance")
    assert r.status == 503, r
    assert r.body == b"down for maintenance\n"
    _, bk = edge
    assert not bk["beta-1"].seen("/maintenance") and not bk["beta-2"].seen("/maintenance")


def test_forwarding_headers(edge, marker):
    """The backend gets X-Forwarded-*, X-Real-IP and the request id echoed back."""
    p, _ = edge
    r = get(edge, "alpha.test", marker)
    assert r.status == 200, r
    h = headers_of(r.json())
    assert h.get("x-forwarded-for") == ["127.0.0.1"], h
    assert h.get("x-real-ip") == ["127.0.0.1"], h
    assert h.get("x-forwarded-proto") == ["https"], h
    assert h.get("x-forwarded-host") in (["alpha.test"], [f"alpha.test:{p.https_port}"]), h
    assert h.get("x-forwarded-port") == [str(p.https_port)], h
    rid = h.get("x-request-id")
    assert rid and len(rid) == 1 and rid[0], h
    assert r.header("X-Request-Id") == rid[0], r


def test_request_ids_are_unique(edge, marker):
    """Each request gets its own generated request id."""
    ids = {get(edge, "alpha.test", f"{marker}/{i}").header("X-Request-Id") for i in range(5)}
    assert len(ids) == 5 and None not in ids, ids


def test_host_header_preserved(edge, marker):
    """The original Host header (with its port) reaches the backend unchanged."""
    p, _ = edge
    r = get(edge, "gamma.test", marker)
    assert headers_of(r.json())["host"] == [f"gamma.test:{p.https_port}"]


def test_hop_by_hop_headers_removed(edge, marker):
    """Connection-listed, Keep-Alive, TE, Proxy-Connection, Upgrade-less hop
    headers do not reach the backend; end-to-end headers do."""
    p, _ = edge
    conn = PinnedHTTPSConnection("alpha.test", p.https_port, p.ca_file)
    try:
        r = exchange(conn, "GET", marker, headers={
            "Connection": "keep-alive, X-Hop-Custom",
            "X-Hop-Custom": "secret",
            "Keep-Alive": "timeout=5",
            "TE": "deflate",
            "Proxy-Connection": "keep-alive",
            "X-End-To-End": "kept",
        })
    finally:
        conn.close()
    assert r.status == 200, r
    h = headers_of(r.json())
    for name in ("x-hop-custom", "keep-alive", "te", "proxy-connection"):
        assert name not in h, (name, h)
    assert "x-hop-custom" not in " ".join(h.get("connection", [])).lower(), h
    assert h.get("x-end-to-end") == ["kept"], h


def test_untrusted_forwarding_headers_replaced(edge, marker):
    """A client that is not a trusted proxy cannot inject its own
    X-Forwarded-For / X-Real-IP / X-Forwarded-Proto/Host: they are replaced."""
    p, _ = edge
    r = get(edge, "alpha.test", marker, headers={
        "X-Forwarded-For": "6.6.6.6",
        "X-Real-IP": "6.6.6.6",
        "X-Forwarded-Proto": "http",
        "X-Forwarded-Host": "evil.test",
        "X-Forwarded-Port": "1",
    })
    h = headers_of(r.json())
    assert h.get("x-forwarded-for") == ["127.0.0.1"], h
    assert h.get("x-real-ip") == ["127.0.0.1"], h
    assert h.get("x-forwarded-proto") == ["https"], h
    assert "evil.test" not in h.get("x-forwarded-host", [""])[0], h
    assert h.get("x-forwarded-port") == [str(p.https_port)], h
