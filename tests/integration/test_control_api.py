"""Control API on the unix socket: every endpoint, with good and bad input.

The contract is DESIGN.md section 4 (and the shapes in the control-api
notes): a change is validated, compiled, persisted and only then published and
acknowledged; a rejected change leaves both the running table (GET
/v1/tenants) and the tenants file byte for byte as they were; an accepted one
is visible to the very next proxied request.
"""

import datetime
import json
import os
import re
import signal
import stat
import subprocess
import threading
from http.client import HTTPException
from types import SimpleNamespace

import pytest

from controlclient import ControlClient, full, shorthand, socket_of
from harness import Portier, wait_until
from httpclient import PinnedHTTPSConnection, curl, exchange, http, https

MIB = 1 << 20
FAKE = "127.0.0.1:9"  # a backend address for tenants that are never requested


# -- helpers ----------------------------------------------------------------------

def snapshot(cc, p):
    """snapshot: (the table as GET /v1/tenants answers it, the tenants file's bytes)."""
    return cc.table(), p.tenants_file.read_bytes()


def assert_unchanged(cc, p, before, what):
    table, data = snapshot(cc, p)
    assert table == before[0], f"{what}: the running table changed:\n{before[0]}\n->\n{table}"
    assert data == before[1], f"{what}: the tenants file changed"


def file_tenants(p):
    return json.loads(p.tenants_file.read_text())["tenants"]


def backend_of(resp):
    return resp.header("X-Backend")


def error_of(resp):
    """error_of: the JSON error answer, asserting the documented shape."""
    try:
        data = resp.json()
    except ValueError:
        raise AssertionError(f"error answer is not JSON: {resp!r}")
    assert isinstance(data, dict) and isinstance(data.get("error"), str) and data["error"], \
        f"error answer without an 'error' sentence: {data!r}"
    return data


@pytest.fixture
def edge(portier_factory, backend_factory):
    """edge: portier with alpha (full form, internal TLS) and beta (shorthand),
    real backends for them and two spare backends n1, n2 for new tenants."""
    bk = {n: backend_factory(n) for n in ("alpha-1", "beta-1", "n1", "n2")}
    tenants = {
        "alpha": full("alpha.test", bk["alpha-1"], tls="internal"),
        "beta": shorthand(["beta.test", "www.beta.test"], bk["beta-1"]),
    }
    p = portier_factory(tenants)
    return SimpleNamespace(p=p, cc=ControlClient.of(p), bk=bk, tenants=tenants)


# -- reading ----------------------------------------------------------------------

def test_list_get_and_unknown(edge):
    """GET /v1/tenants lists every tenant as written (shorthand kept) with an
    integer generation; GET one gives generation, name and tenant; an unknown
    name is 404 with a JSON error."""
    cc = edge.cc
    table = cc.table()
    assert isinstance(table["generation"], int), table
    assert table["tenants"] == edge.tenants
    for name, t in edge.tenants.items():
        r = cc.get(name)
        assert r.status == 200, r
        assert r.json() == {"generation": table["generation"], "name": name, "tenant": t}
    r = cc.get("nobody")
    assert r.status == 404, r
    error_of(r)


def test_socket_mode_0600(edge):
    """The control socket is a socket with mode 0600 (the default)."""
    st = os.stat(socket_of(edge.p))
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(stat.S_IMODE(st.st_mode))


# -- writing ----------------------------------------------------------------------

def test_put_creates_then_replaces(edge):
    """PUT of a new name answers 201, of an existing one 200, each with the
    generation one higher; GET and the tenants file show the tenant exactly as
    written (shorthand kept, full form kept); If-Match with the current
    generation is accepted; a 63-character name is a valid name."""
    cc, p = edge.cc, edge.p
    g0 = cc.generation()
    t1 = shorthand(["newt.test", "www.newt.test"], edge.bk["n1"])
    r = cc.put("newt", t1)
    assert r.status == 201, r
    assert r.json() == {"generation": g0 + 1}
    assert cc.get("newt").json() == {"generation": g0 + 1, "name": "newt", "tenant": t1}
    assert file_tenants(p)["newt"] == t1

    t2 = full("newt.test", edge.bk["n2"], https_redirect=False,
              rate_limit={"average": 50, "period": "1s"})
    r = cc.put("newt", t2, if_match=g0 + 1)
    assert r.status == 200, r
    assert r.json() == {"generation": g0 + 2}
    table = cc.table()
    assert table["generation"] == g0 + 2
    assert table["tenants"] == {**edge.tenants, "newt": t2}
    assert file_tenants(p) == table["tenants"]

    long_name = "a" + "-b" * 31  # 63 characters
    r = cc.put(long_name, shorthand("long.test", FAKE))
    assert r.status == 201, r
    assert r.json() == {"generation": g0 + 3}


def test_put_content_type_variants_accepted(edge):
    """No Content-Type, and application/json with a charset parameter, are
    both accepted (415 is only for another media type)."""
    cc = edge.cc
    r = cc.put("nct", shorthand("nct.test", FAKE), content_type=None)
    assert r.status == 201, r
    r = cc.put("cs", shorthand("cs.test", FAKE), content_type="application/json; charset=utf-8")
    assert r.status == 201, r


def test_curl_workflow(edge):
    """The operator's workflow with curl itself: `curl --unix-socket SOCK
    http://portier/v1/tenants` lists, and `curl -X PUT -d @FILE` creates (curl
    -d declares application/x-www-form-urlencoded; portier reads that body as
    JSON rather than refusing what operators type, see config/control.c)."""
    sock = str(socket_of(edge.p))
    res = curl(["--unix-socket", sock, "http://portier/v1/tenants"])
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["tenants"] == edge.tenants
    body = json.dumps(shorthand("curl.test", FAKE))
    res = curl(["--unix-socket", sock, "-X", "PUT", "-d", body, "-w", "\n%{http_code}",
                "http://portier/v1/tenants/curled"])
    assert res.returncode == 0, res.stderr
    answer, _, code = res.stdout.rpartition("\n")
    assert code == "201", res.stdout
    assert "generation" in json.loads(answer)
    assert edge.cc.get("curled").json()["tenant"] == json.loads(body)


def test_put_visible_to_next_request_https(edge):
    """A PUT is visible to the next HTTPS request at once: create newt → n1,
    the first request reaches n1; replace → n2, the next new connection
    reaches n2. No waiting in between."""
    cc, p = edge.cc, edge.p
    assert cc.put("newt", shorthand("newt.test", edge.bk["n1"])).status == 201
    r = https(p.https_port, "newt.test", p.ca_file, "/first")
    assert r.status == 200 and backend_of(r) == "n1", r
    assert cc.put("newt", shorthand("newt.test", edge.bk["n2"])).status == 200
    r = https(p.https_port, "newt.test", p.ca_file, "/second")
    assert r.status == 200 and backend_of(r) == "n2", r


def test_put_visible_to_next_request_http(edge):
    """The same on the plain HTTP listener (https_redirect false)."""
    cc, p = edge.cc, edge.p
    assert cc.put("plain", full("plain.test", edge.bk["n1"], https_redirect=False)).status == 201
    r = http(p.http_port, "plain.test", "/first")
    assert r.status == 200 and backend_of(r) == "n1", r
    assert cc.put("plain", full("plain.test", edge.bk["n2"], https_redirect=False)).status == 200
    r = http(p.http_port, "plain.test", "/second")
    assert r.status == 200 and backend_of(r) == "n2", r


def test_put_visible_on_kept_alive_connection(edge):
    """A kept-alive client connection is not pinned to the old table: its
    next request after a PUT routes by the new one (new requests see the new
    snapshot), and the connection stays open."""
    cc, p = edge.cc, edge.p
    assert cc.put("ka", shorthand("ka.test", edge.bk["n1"])).status == 201
    conn = PinnedHTTPSConnection("ka.test", p.https_port, p.ca_file)
    try:
        r = exchange(conn, "GET", "/before")
        assert r.status == 200 and backend_of(r) == "n1", r
        sock = conn.sock
        assert cc.put("ka", shorthand("ka.test", edge.bk["n2"])).status == 200
        r = exchange(conn, "GET", "/after")
        assert r.status == 200 and backend_of(r) == "n2", r
        assert conn.sock is sock, "the client connection was replaced"
    finally:
        conn.close()


def test_delete(edge):
    """DELETE answers 200 with the next generation; the tenant is gone from
    GET, from the file and from routing (its host is 404 on HTTP)."""
    cc, p = edge.cc, edge.p
    assert cc.put("gone", full("gone.test", edge.bk["n1"], https_redirect=False)).status == 201
    assert http(p.http_port, "gone.test").status == 200
    g = cc.generation()
    r = cc.delete("gone", if_match=g)
    assert r.status == 200, r
    assert r.json() == {"generation": g + 1}
    assert cc.get("gone").status == 404
    assert "gone" not in file_tenants(p)
    assert cc.table()["tenants"] == edge.tenants
    r = http(p.http_port, "gone.test", "/after-delete")
    assert r.status == 404, r
    assert not edge.bk["n1"].seen("/after-delete")


def test_delete_closes_the_removed_tenants_connections(edge):
    """Removing a tenant closes its idle keep-alive connections (a request in
    flight would finish first), while another tenant's connection stays open."""
    cc, p = edge.cc, edge.p
    assert cc.put("leaving", shorthand("leaving.test", edge.bk["n1"])).status == 201
    gone = PinnedHTTPSConnection("leaving.test", p.https_port, p.ca_file)
    kept = PinnedHTTPSConnection("beta.test", p.https_port, p.ca_file)
    try:
        assert exchange(gone, "GET", "/one").status == 200
        assert exchange(kept, "GET", "/one").status == 200
        assert cc.delete("leaving").status == 200
        gone.sock.settimeout(5)
        assert gone.sock.recv(1) == b"", "the removed tenant's connection stayed open"
        r = exchange(kept, "GET", "/two")
        assert r.status == 200 and backend_of(r) == "beta-1", r
    finally:
        gone.close()
        kept.close()


# -- bad input ------------------------------------------------------------------------

NEW = "/v1/tenants/newt"


def W(**extra):
    """W: a valid full-form tenant for newt.test, updated by extra."""
    t = full("newt.test", FAKE)
    t.update(extra)
    return t


def S(**extra):
    return {**shorthand("newt.test", FAKE), **extra}


def WEB(**svc):
    return {"web": {"backends": [FAKE], **svc}}


def R(*rules, svc="web"):
    return [{"rule": r, "service": svc} for r in rules]


class Contains(str):
    """Contains: an expected field that need only appear inside the answer's field."""


# (id, method, path, body, request kwargs, expected status(es), field, owning tenant)
# body: bytes are sent as they are; other values as JSON. A callable kwargs
# value is called with the current generation.
BAD = [
    # malformed JSON: field ""
    ("json-truncated", "PUT", NEW, b'{"hosts": ["newt.test"], "backends": ["127.0.0.1:9"]',
     {}, 400, "", None),
    ("json-unquoted-key", "PUT", NEW, b'{hosts: ["newt.test"], backends: ["127.0.0.1:9"]}',
     {}, 400, "", None),
    ("json-trailing-comma", "PUT", NEW,
     b'{"hosts": ["newt.test"], "backends": ["127.0.0.1:9"],}', {}, 400, "", None),
    ("json-single-quotes", "PUT", NEW, b"{'hosts': ['newt.test'], 'backends': ['127.0.0.1:9']}",
     {}, 400, "", None),
    ("json-empty-body", "PUT", NEW, b"", {}, 400, "", None),
    ("json-trailing-garbage", "PUT", NEW,
     b'{"hosts": ["newt.test"], "backends": ["127.0.0.1:9"]} {"x": 1}', {}, 400, "", None),
    ("json-invalid-utf8", "PUT", NEW,
     b'{"hosts": ["newt\xff.test"], "backends": ["127.0.0.1:9"]}', {}, 400, "", None),
    ("json-nan", "PUT", NEW,
     b'{"hosts": ["newt.test"], "backends": ["127.0.0.1:9"], "max_body": NaN}', {}, 400, "",
     None),
    # body not an object
    ("body-array", "PUT", NEW, [S()], {}, 400, "", None),
    ("body-string", "PUT", NEW, b'"newt"', {}, 400, "", None),
    ("body-null", "PUT", NEW, b"null", {}, 400, "", None),
    ("body-number", "PUT", NEW, 42, {}, 400, "", None),
    # unknown keys, named at every depth
    ("unknown-key-top", "PUT", NEW, W(colour="blue"), {}, 400, "colour", None),
    ("unknown-key-shorthand", "PUT", NEW, S(colour="blue"), {}, 400, "colour", None),
    ("unknown-key-route", "PUT", NEW,
     W(routes=[{"rule": "Host(`newt.test`)", "service": "web", "colour": 1}]), {}, 400,
     "routes[0].colour", None),
    ("unknown-key-service", "PUT", NEW, W(services=WEB(colour=1)), {}, 400,
     "services.web.colour", None),
    ("unknown-key-health", "PUT", NEW, W(services=WEB(health={"path": "/", "colour": 1})), {},
     400, "services.web.health.colour", None),
    ("unknown-key-respond", "PUT", NEW,
     W(routes=R("Host(`newt.test`)", svc="m"),
       services={"m": {"respond": {"status": 200, "colour": 1}}}), {}, 400,
     "services.m.respond.colour", None),
    ("unknown-key-rate-limit", "PUT", NEW, W(rate_limit={"average": 5, "colour": 1}), {}, 400,
     "rate_limit.colour", None),
    # rules
    ("rule-unclosed", "PUT", NEW, W(routes=R("Host(`newt.test`")), {}, 400, "routes[0].rule",
     None),
    ("rule-unknown-matcher", "PUT", NEW, W(routes=R("Hots(`newt.test`)")), {}, 400,
     "routes[0].rule", None),
    ("rule-bad-regex", "PUT", NEW, W(routes=R("HostRegexp(`^(newt`)")), {}, 400,
     "routes[0].rule", None),
    ("rule-dangling-and", "PUT", NEW, W(routes=R("Host(`newt.test`)", "Host(`newt.test`) &&")),
     {}, 400, "routes[1].rule", None),
    ("rule-not-a-string", "PUT", NEW, W(routes=[{"rule": 5, "service": "web"}]), {}, 400,
     "routes[0].rule", None),
    # services and backends
    ("service-missing", "PUT", NEW, W(routes=R("Host(`newt.test`)", svc="nope")), {}, 400,
     "routes[0].service", None),
    ("backend-without-port", "PUT", NEW, W(services={"web": {"backends": ["10.0.0.1"]}}), {},
     400, "services.web.backends[0]", None),
    ("shorthand-backend-without-port", "PUT", NEW, S(backends=["newt-web"]), {}, 400,
     "backends[0]", None),
    ("backend-port-too-big", "PUT", NEW, W(services={"web": {"backends": ["10.0.0.1:99999"]}}),
     {}, 400, "services.web.backends[0]", None),
    ("backend-port-zero", "PUT", NEW,
     W(services={"web": {"backends": ["10.0.0.1:80", "10.0.0.1:0"]}}), {}, 400,
     "services.web.backends[1]", None),
    ("backend-port-name", "PUT", NEW, W(services={"web": {"backends": ["10.0.0.1:http"]}}), {},
     400, "services.web.backends[0]", None),
    ("bad-balance", "PUT", NEW, W(services=WEB(balance="random")), {}, 400,
     "services.web.balance", None),
    ("bad-duration-rate-period", "PUT", NEW, W(rate_limit={"average": 5, "period": "soon"}), {},
     400, "rate_limit.period", None),
    ("bad-duration-health-interval", "PUT", NEW,
     W(services=WEB(health={"path": "/", "interval": "10 parsecs"})), {}, 400,
     "services.web.health.interval", None),
    ("respond-status-700", "PUT", NEW,
     W(routes=R("Host(`newt.test`)", svc="m"), services={"m": {"respond": {"status": 700}}}),
     {}, 400, "services.m.respond.status", None),
    ("respond-status-99", "PUT", NEW,
     W(routes=R("Host(`newt.test`)", svc="m"), services={"m": {"respond": {"status": 99}}}),
     {}, 400, "services.m.respond.status", None),
    ("shorthand-and-routes", "PUT", NEW, S(routes=R("Host(`newt.test`)")), {}, 400, "routes",
     None),
    ("bad-tls", "PUT", NEW, W(tls="bogus"), {}, 400, "tls", None),
    ("bad-max-body", "PUT", NEW, W(max_body="lots"), {}, 400, "max_body", None),
    ("bad-hsts", "PUT", NEW, W(hsts="yes"), {}, 400, "hsts", None),
    # tenant names in the path
    ("name-uppercase", "PUT", "/v1/tenants/Newt", S(), {}, 400, "name", None),
    ("name-too-long", "PUT", "/v1/tenants/" + "a" * 64, S(), {}, 400, "name", None),
    ("name-leading-dash", "PUT", "/v1/tenants/-newt", S(), {}, 400, "name", None),
    ("name-dots", "PUT", "/v1/tenants/new.t", S(), {}, 400, "name", None),
    ("name-underscore", "PUT", "/v1/tenants/new_t", S(), {}, 400, "name", None),
    ("name-encoded-space", "PUT", "/v1/tenants/new%20t", S(), {}, 400, "name", None),
    # host isolation: 409 naming the owner
    ("host-of-full-tenant", "PUT", NEW, W(routes=R("Host(`alpha.test`)")), {}, 409,
     "routes[0].rule", "alpha"),
    ("host-of-shorthand-tenant", "PUT", NEW, S(hosts=["newt.test", "www.beta.test"]), {}, 409,
     None, "beta"),
    ("host-case-and-trailing-dot", "PUT", NEW, W(routes=R("Host(`ALPHA.Test.`)")), {}, 409,
     "routes[0].rule", "alpha"),
    ("host-in-second-route", "PUT", NEW, W(routes=R("Host(`newt.test`)", "Host(`beta.test`)")),
     {}, 409, "routes[1].rule", "beta"),
    ("host-inside-or", "PUT", NEW, W(routes=R("Host(`newt.test`) || Host(`alpha.test`)")), {},
     409, "routes[0].rule", "alpha"),
    ("wildcard-covers-host", "PUT", NEW, W(routes=R("Host(`*.beta.test`)")), {}, 409,
     "routes[0].rule", "beta"),
    ("host-under-wildcard", "PUT", NEW, W(routes=R("Host(`a.wild.test`)")), {}, 409,
     "routes[0].rule", "wild"),
    ("same-wildcard", "PUT", NEW, W(routes=R("Host(`*.wild.test`)")), {}, 409,
     "routes[0].rule", "wild"),
    ("replace-claims-other", "PUT", "/v1/tenants/beta", S(hosts=["beta.test", "alpha.test"]),
     {}, 409, None, "alpha"),
    # preconditions
    ("if-match-stale-put", "PUT", NEW, S(), {"headers": lambda g: {"If-Match": str(g - 1)}},
     412, None, None),
    ("if-match-future-put", "PUT", NEW, S(), {"headers": lambda g: {"If-Match": str(g + 5)}},
     412, None, None),
    ("if-match-stale-replace", "PUT", "/v1/tenants/beta", S(hosts=["beta.test"]),
     {"headers": lambda g: {"If-Match": str(g - 1)}}, 412, None, None),
    ("if-match-stale-delete", "DELETE", "/v1/tenants/beta", None,
     {"headers": lambda g: {"If-Match": str(g - 1)}}, 412, None, None),
    ("if-match-not-a-number", "PUT", NEW, S(), {"headers": {"If-Match": "abc"}}, (400, 412),
     None, None),
    # size and media type
    ("body-over-1mib", "PUT", NEW,
     json.dumps(S(pad="x" * (MIB + 1024))).encode(), {}, 413, None, None),
    ("content-type-text", "PUT", NEW, S(), {"content_type": "text/plain"}, 415, None, None),
    ("content-type-xml", "PUT", NEW, S(), {"content_type": "application/xml"}, 415, None, None),
    # paths and methods
    ("unknown-path", "GET", "/v1/nope", None, {}, 404, None, None),
    ("unknown-version", "GET", "/v2/tenants", None, {}, 404, None, None),
    ("root-path", "GET", "/", None, {}, 404, None, None),
    ("tenant-subpath", "GET", "/v1/tenants/alpha/extra", None, {}, 404, None, None),
    ("get-unknown-tenant", "GET", "/v1/tenants/nobody", None, {}, 404, None, None),
    ("delete-unknown-tenant", "DELETE", "/v1/tenants/nobody", None, {}, 404, None, None),
    ("renew-unrouted-host", "POST", "/v1/certs/nobody.test/renew", None, {}, 404, None, None),
    ("post-on-tenant", "POST", "/v1/tenants/alpha", S(), {}, 405, None, None),
    ("delete-on-list", "DELETE", "/v1/tenants", None, {}, 405, None, None),
    ("put-on-list", "PUT", "/v1/tenants", {"tenants": {}}, {}, 405, None, None),
    ("get-on-reload", "GET", "/v1/reload", None, {}, 405, None, None),
    ("get-on-validate", "GET", "/v1/validate", None, {}, 405, None, None),
    ("put-on-status", "PUT", "/v1/status", {}, {}, 405, None, None),
    ("delete-on-certs", "DELETE", "/v1/certs", None, {}, 405, None, None),
    ("get-on-renew", "GET", "/v1/certs/alpha.test/renew", None, {}, 405, None, None),
    ("post-on-metrics", "POST", "/metrics", {}, {}, 405, None, None),
    # dry runs
    ("validate-bad-rule", "POST", "/v1/validate?name=newt", W(routes=R("Host(`newt.test`")), {},
     400, "routes[0].rule", None),
    ("validate-bad-json", "POST", "/v1/validate", b'{"hosts": [', {}, 400, "", None),
    ("validate-conflict", "POST", "/v1/validate?name=newt", S(hosts=["alpha.test"]), {}, 409,
     None, "alpha"),
    ("validate-bad-name", "POST", "/v1/validate?name=Bad_Name", S(), {}, 400, "name", None),
    ("validate-document-bad", "POST", "/v1/validate",
     {"tenants": {"t1": W(routes=R("Host(`newt.test`"))}}, {}, 400,
     Contains("routes[0].rule"), None),
    ("validate-document-internal-conflict", "POST", "/v1/validate",
     {"tenants": {"t1": S(hosts=["dup.test"]), "t2": S(hosts=["dup.test"])}}, {}, (400, 409),
     None, None),
]


@pytest.fixture
def quiet_edge(portier_factory):
    """quiet_edge: alpha (full), beta (shorthand, two hosts), wild (*.wild.test);
    backends are never contacted."""
    tenants = {
        "alpha": full("alpha.test", FAKE),
        "beta": shorthand(["beta.test", "www.beta.test"], FAKE),
        "wild": {"routes": R("Host(`*.wild.test`)", svc="s"),
                 "services": {"s": {"backends": [FAKE]}}},
    }
    p = portier_factory(tenants)
    return SimpleNamespace(p=p, cc=ControlClient.of(p), tenants=tenants)


@pytest.mark.parametrize("case_id,method,path,body,kw,status,field,owner",
                         [pytest.param(*c, id=c[0]) for c in BAD])
def test_bad_request(quiet_edge, case_id, method, path, body, kw, status, field, owner):
    """Each bad request gets its documented status and a JSON error (naming
    the field, relative to the tenant, when one is at fault; naming the owning
    tenant for a host conflict; the current generation for 412; Allow for
    405), and changes neither the running table nor the tenants file."""
    cc, p = quiet_edge.cc, quiet_edge.p
    before = snapshot(cc, p)
    gen = before[0]["generation"]
    kw = {k: (v(gen) if callable(v) else v) for k, v in kw.items()}
    r = cc.request(method, path, body, **kw)
    expected = status if isinstance(status, tuple) else (status,)
    assert r.status in expected, f"{case_id}: expected {status}, got {r!r}"
    # libevent 2.1 answers an over-limit body itself, before any handler, with
    # its own HTML page (a custom error callback arrived only in 2.2): the
    # status is the contract there.
    if r.status == 413:
        assert_unchanged(cc, p, before, case_id)
        return
    err = error_of(r)
    if field is not None:
        assert "field" in err, f"{case_id}: no field in {err!r}"
        if isinstance(field, Contains):
            assert str(field) in err["field"], f"{case_id}: field {err['field']!r} lacks {field!r}"
        else:
            assert err["field"] == field, f"{case_id}: field {err['field']!r} != {field!r}"
    if owner is not None:
        assert err.get("tenant") == owner, f"{case_id}: tenant {err.get('tenant')!r} != {owner!r}"
        assert owner in err["error"], f"{case_id}: error does not name {owner!r}: {err!r}"
    if r.status == 412:
        assert err.get("generation") == gen, f"{case_id}: 412 without the current generation"
    if r.status == 405:
        assert r.header("Allow"), f"{case_id}: 405 without Allow: {r!r}"
    assert_unchanged(cc, p, before, case_id)


def test_bad_tenant_rejected_alone(edge):
    """A rejected PUT leaves the others routing: after several bad PUTs alpha
    and beta still answer through the proxy."""
    cc, p = edge.cc, edge.p
    assert cc.put("newt", W(routes=R("Host(`newt.test`"))).status == 400
    assert cc.put("newt", W(routes=R("Host(`alpha.test`)"))).status == 409
    assert cc.put("Newt", S()).status == 400
    r = https(p.https_port, "alpha.test", p.ca_file, "/still")
    assert r.status == 200 and backend_of(r) == "alpha-1", r
    r = https(p.https_port, "beta.test", p.ca_file, "/still")
    assert r.status == 200 and backend_of(r) == "beta-1", r


# -- dry run ----------------------------------------------------------------------

def test_validate_good_changes_nothing(edge):
    """POST /v1/validate of a good tenant (with ?name, without, and for an
    existing name keeping its own hosts) and of a whole good document answers
    200 {"ok": true}; the table, the file and routing stay as they were."""
    cc, p = edge.cc, edge.p
    before = snapshot(cc, p)
    for path, body in [
        ("/v1/validate?name=newt", shorthand("newt.test", edge.bk["n1"])),
        ("/v1/validate", full("dry.test", edge.bk["n1"])),
        ("/v1/validate?name=beta", shorthand(["beta.test"], edge.bk["n2"])),
        ("/v1/validate", {"tenants": {**edge.tenants,
                                      "newt": shorthand("newt.test", edge.bk["n1"])}}),
    ]:
        r = cc.request("POST", path, body)
        assert r.status == 200, (path, r)
        assert r.json() == {"ok": True}, (path, r)
        assert_unchanged(cc, p, before, path)
    assert cc.get("newt").status == 404
    assert cc.get("dry-run").status == 404
    r = https(p.https_port, "beta.test", p.ca_file, "/after-validate")
    assert backend_of(r) == "beta-1", r
    assert http(p.http_port, "newt.test").status == 404


# -- reload -------------------------------------------------------------------------

def test_reload_applies_hand_edit(edge):
    """An operator edits the tenants file by hand (adds newt, drops beta) and
    POSTs /v1/reload: 200 with a higher generation; the table equals the file
    and the new host routes while the dropped one does not."""
    cc, p = edge.cc, edge.p
    g = cc.generation()
    edited = {"alpha": edge.tenants["alpha"],
              "newt": full("newt.test", edge.bk["n1"], https_redirect=False)}
    p.write_tenants(edited)
    r = cc.reload()
    assert r.status == 200, r
    assert r.json()["generation"] > g
    table = cc.table()
    assert table["generation"] == r.json()["generation"]
    assert table["tenants"] == edited
    r = http(p.http_port, "newt.test", "/reloaded")
    assert r.status == 200 and backend_of(r) == "n1", r
    assert http(p.http_port, "beta.test", "/dropped").status == 404


@pytest.mark.parametrize("raw,field", [
    pytest.param('{"tenants": {"alpha": ', None, id="truncated-json"),
    pytest.param(json.dumps({"tenants": {"alpha": W(routes=R("Host(`alpha.test`"))}}),
                 "routes[0].rule", id="bad-rule"),
    pytest.param(json.dumps({"tenants": {"a1": shorthand("x.test", FAKE),
                                         "a2": shorthand("x.test", FAKE)}}),
                 "routes[0].rule", id="host-conflict"),
])
def test_reload_broken_file_keeps_old_table(edge, raw, field):
    """POST /v1/reload with a broken tenants file: 400 with the error (and the
    field when one is at fault; a host conflict inside the file may answer
    409 naming the owner, as PUT would); the old table is still served by GET
    and still routes."""
    cc, p = edge.cc, edge.p
    before = cc.table()
    p.write_tenants(raw=raw)
    r = cc.reload()
    err = error_of(r)
    if "tenant" in err:
        assert r.status == 409 and err["tenant"] == "a1", r
    else:
        assert r.status == 400, r
    if field:
        assert field in err.get("field", ""), err
    assert cc.table() == before
    r = https(p.https_port, "alpha.test", p.ca_file, "/old-table")
    assert r.status == 200 and backend_of(r) == "alpha-1", r
    r = https(p.https_port, "beta.test", p.ca_file, "/old-table")
    assert r.status == 200 and backend_of(r) == "beta-1", r


# -- restart ------------------------------------------------------------------------

def test_restart_keeps_everything(edge, portier_factory):
    """After PUTs (create, replace) and a DELETE, SIGTERM; a new portier on the
    same state dir and tenants file serves the same table (generation aside),
    with the same internal CA, and routes the changed tenants."""
    cc, p = edge.cc, edge.p
    assert cc.put("newt", shorthand("newt.test", edge.bk["n1"])).status == 201
    assert cc.put("gamma", full("gamma.test", edge.bk["n2"], tls="internal")).status == 201
    assert cc.put("alpha", full("alpha.test", edge.bk["n2"], tls="internal")).status == 200
    assert cc.delete("beta").status == 200
    r = https(p.https_port, "newt.test", p.ca_file, "/before-restart")
    assert backend_of(r) == "n1", r
    before = cc.table()
    root = p.ca_file.read_bytes()
    assert p.stop() == 0

    p2 = portier_factory(None, start=False, state_dir=str(p.state_dir),
                         tenants_file=str(p.tenants_file))
    p2.state_dir = p.state_dir
    p2.start()
    try:
        cc2 = ControlClient.of(p2)
        after = cc2.table()
        assert after["tenants"] == before["tenants"]
        assert p2.ca_file.read_bytes() == root, "the internal CA root changed on restart"
        for host, want in [("newt.test", "n1"), ("gamma.test", "n2"), ("alpha.test", "n2")]:
            r = https(p2.https_port, host, p2.ca_file, "/after-restart")
            assert r.status == 200 and backend_of(r) == want, (host, r)
        assert http(p2.http_port, "beta.test", "/deleted").status == 404
    finally:
        p2.stop()  # before the first instance's directory is removed


# -- status, metrics, certs -------------------------------------------------------------

def test_status(edge):
    """GET /v1/status: version, uptime_s, generation (the table's), workers
    (2, as configured), connections, and per-tenant request counters that
    count a request made through the proxy."""
    cc, p = edge.cc, edge.p
    r = https(p.https_port, "alpha.test", p.ca_file, "/count-me")
    assert r.status == 200, r

    def counted():
        s = cc.status()
        assert s.status == 200, s
        data = s.json()
        return data if data["tenants"].get("alpha", {}).get("requests", 0) >= 1 else None

    data = wait_until(counted, 5, what="alpha's request counter in /v1/status")
    assert isinstance(data["version"], str) and re.search(r"\d+\.\d+", data["version"]), data
    assert isinstance(data["uptime_s"], (int, float)) and data["uptime_s"] >= 0, data
    assert data["generation"] == cc.generation()
    assert data["workers"] == 2, data
    assert isinstance(data["connections"], int) and data["connections"] >= 0, data
    assert set(data["tenants"]) == {"alpha", "beta"}, data
    assert isinstance(data["tenants"]["beta"]["requests"], int), data


SAMPLE_RE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? '
                       r'[-+]?([0-9.eE+-]+|Inf|NaN)( -?\d+)?$')


def test_metrics(edge):
    """GET /metrics: 200 text/plain Prometheus exposition; every sample line
    is well-formed, and a request through the proxy is counted: the
    portier_requests_total{tenant="alpha",...} samples add up to at least 1."""
    cc, p = edge.cc, edge.p
    assert https(p.https_port, "alpha.test", p.ca_file, "/metric-me").status == 200

    def sampled():
        r = cc.metrics()
        assert r.status == 200, r
        text = r.body.decode()
        lines = [l for l in text.splitlines() if l.strip() and not l.startswith("#")]
        counted = sum(float(l.rsplit(" ", 1)[1]) for l in lines
                      if l.startswith("portier_requests_total{") and 'tenant="alpha"' in l)
        return (r, lines) if counted >= 1 else None

    r, lines = wait_until(sampled, 5, what='portier_requests_total{tenant="alpha"} >= 1')
    assert (r.header("Content-Type") or "").startswith("text/plain"), r.header("Content-Type")
    bad = [l for l in lines if not SAMPLE_RE.match(l)]
    assert not bad, f"malformed exposition lines: {bad[:5]}"


def parse_rfc3339(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


def test_certs_list_and_renew(edge):
    """After an HTTPS request to alpha.test, GET /v1/certs lists it: source
    internal, an issuer, a future RFC 3339 not_after, state valid, no error.
    POST /v1/certs/alpha.test/renew answers 202 renewing; the host keeps
    serving and comes back valid."""
    cc, p = edge.cc, edge.p
    assert https(p.https_port, "alpha.test", p.ca_file, "/cert").status == 200
    r = cc.certs()
    assert r.status == 200, r
    entries = [c for c in r.json()["certs"] if c["host"] == "alpha.test"]
    assert len(entries) == 1, r.json()
    c = entries[0]
    assert c["source"] == "internal", c
    assert isinstance(c["issuer"], str) and c["issuer"], c
    assert c["state"] == "valid", c
    assert c["last_error"] is None, c
    not_after = parse_rfc3339(c["not_after"])
    assert not_after.tzinfo is not None, c
    assert not_after > datetime.datetime.now(datetime.timezone.utc), c

    r = cc.renew("alpha.test")
    assert r.status == 202, r
    assert r.json() == {"host": "alpha.test", "state": "renewing"}

    def valid_again():
        entry = [x for x in cc.certs().json()["certs"] if x["host"] == "alpha.test"]
        return entry and entry[0]["state"] == "valid"

    wait_until(valid_again, 10, what="alpha.test valid again after renew")
    assert https(p.https_port, "alpha.test", p.ca_file, "/after-renew").status == 200


# -- persistence failures -------------------------------------------------------------

def _can_unshare(tmp_path):
    d = tmp_path / "probe"
    d.mkdir()
    res = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                          f"mount --bind -o ro {d} {d} && ! touch {d}/x 2>/dev/null"],
                         capture_output=True, text=True, timeout=10)
    return res.returncode == 0, res.stderr.strip()


@pytest.fixture
def ns_portier(portier_bin, tmp_path):
    """ns_portier(tenants): a portier started as `unshare -m --propagation
    private portier -c ...` (through an exec wrapper, so its PID is portier's),
    for bind mounts only it sees. Skips when unshare is not permitted."""
    ok, why = _can_unshare(tmp_path)
    if not ok:
        pytest.skip(f"unshare -m / bind mounts not permitted here: {why}")
    wrapper = tmp_path / "in-ns.sh"
    wrapper.write_text(f'#!/bin/sh\nexec unshare -m --propagation private "{portier_bin}" "$@"\n')
    wrapper.chmod(0o755)
    made = []

    def make(tenants):
        p = Portier(wrapper, name="portier-ns")
        made.append(p)
        p.configure(tenants=tenants)
        p.start()
        return p

    yield make
    for p in made:
        try:
            if p.proc is not None:
                p.stop(expect_rc=0 if p.returncode is None else None)
        finally:
            p.cleanup()


def nsenter(pid, *argv):
    return subprocess.run(["nsenter", "-t", str(pid), "-m", "--"] + list(argv),
                          capture_output=True, text=True, timeout=10)


def test_read_only_tenants_dir_put_500(ns_portier, backend_factory):
    """With the tenants file's directory read-only (a read-only bind mount in
    portier's own mount namespace), PUT and DELETE answer 500 with the OS
    error; the table and the file are unchanged and nothing new routes. Once
    writable again, the same PUT succeeds."""
    b = backend_factory("ro-1")
    p = ns_portier({"alpha": full("alpha.test", b, https_redirect=False)})
    cc = ControlClient.of(p)
    d = str(p.tenants_file.parent)
    res = nsenter(p.pid, "mount", "--bind", "-o", "ro", d, d)
    assert res.returncode == 0, f"bind mount failed: {res.stderr}"
    probe = nsenter(p.pid, "sh", "-c", f"touch {d}/.rw-probe")
    assert probe.returncode != 0, "the directory is still writable inside portier's namespace"

    before = snapshot(cc, p)
    newt = full("newt.test", b, https_redirect=False)
    r = cc.put("newt", newt)
    assert r.status == 500, f"{r!r}\n{p.stderr_text(40)}"
    assert "Read-only file system" in error_of(r)["error"], r
    assert_unchanged(cc, p, before, "PUT on a read-only directory")
    assert http(p.http_port, "newt.test", "/ro").status == 404

    r = cc.delete("alpha")
    assert r.status == 500, r
    assert "Read-only file system" in error_of(r)["error"], r
    assert_unchanged(cc, p, before, "DELETE on a read-only directory")
    r = http(p.http_port, "alpha.test", "/ro")
    assert r.status == 200 and backend_of(r) == "ro-1", r

    res = nsenter(p.pid, "umount", d)
    assert res.returncode == 0, res.stderr
    r = cc.put("newt", newt)
    assert r.status == 201, r
    assert file_tenants(p)["newt"] == newt
    assert http(p.http_port, "newt.test", "/rw").status == 200


def test_sigkill_during_burst_leaves_whole_file(portier_factory, portier_bin):
    """Three rounds: PUTs of new tenants stream from a thread, portier gets
    SIGKILL mid-burst. The tenants file is always whole JSON holding every
    acknowledged tenant (persisted before acknowledged) and nothing never
    sent; `portier --check` accepts it and a new portier serves exactly it."""
    p = portier_factory({"base": shorthand("base.test", FAKE)})
    sent, acked = set(), set()
    for rnd, kill_after in enumerate((8, 25, 50)):
        cc = ControlClient.of(p, timeout=5)
        stop = threading.Event()

        def burst():
            k = 0
            while not stop.is_set() and k < 5000:
                name = f"r{rnd}-t{k}"
                sent.add(name)
                try:
                    r = cc.put(name, shorthand(f"{name}.test", FAKE))
                except (OSError, HTTPException):
                    return  # portier is gone
                if r.status in (200, 201):
                    acked.add(name)
                k += 1

        t = threading.Thread(target=burst, daemon=True)
        base = len(acked)
        t.start()
        wait_until(lambda: len(acked) - base >= kill_after or not t.is_alive(), 20,
                   interval=0.001, what=f"{kill_after} acknowledged PUTs")
        p.proc.send_signal(signal.SIGKILL)
        p.wait_exit(10)
        stop.set()
        t.join(10)
        assert not t.is_alive()
        assert len(acked) - base >= kill_after, "the burst stopped before the kill"

        text = p.tenants_file.read_text()
        try:
            names = set(json.loads(text)["tenants"])
        except (ValueError, KeyError) as e:
            raise AssertionError(f"round {rnd}: tenants file not whole JSON ({e}): "
                                 f"{text[:200]!r}...{text[-200:]!r}")
        missing = acked - names
        assert not missing, f"round {rnd}: acknowledged but not persisted: {sorted(missing)[:5]}"
        assert names <= sent | {"base"}, f"round {rnd}: unknown tenants {names - sent}"
        check = subprocess.run([str(portier_bin), "--check", "-c", str(p.config_file)],
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr

        nxt = portier_factory(None, start=False, state_dir=str(p.state_dir),
                              tenants_file=str(p.tenants_file))
        nxt.state_dir = p.state_dir
        nxt.start()
        nxt.tenants_file = p.tenants_file  # only after start: start() writes its own
        table = ControlClient.of(nxt).table()
        assert set(table["tenants"]) == names
        acked = set(names)  # persisted now, so they must stay
        p = nxt
    p.stop()  # before the first instance's directory (holding its files) is removed


def test_full_table_refuses_new_tenants(portier_factory, backend_factory):
    """At the table's limit (100,000 tenants, the most a tenants file may
    hold) a new tenant is refused with 400 and nothing is written, so the API
    never saves a file the next start would reject; replacing one still works."""
    b = backend_factory("full")
    tenants = {f"t{i:06d}": {"hosts": [f"t{i:06d}.test"], "backends": [b.address]}
               for i in range(100000)}
    p = portier_factory(tenants)
    cc = ControlClient.of(p)
    before = p.tenants_file.read_bytes()
    r = cc.put("one-more", shorthand("one-more.test", b))
    assert r.status == 400 and "at most 100000 tenants" in error_of(r)["error"], r
    assert p.tenants_file.read_bytes() == before
    assert cc.put("t000001", shorthand("t000001.test", b)).status == 200
