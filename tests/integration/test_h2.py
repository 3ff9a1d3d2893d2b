"""HTTP/2 toward clients: ALPN and h2c, the same routing, limits, forwarding
headers and access log as HTTP/1.1, bodies streamed both ways under flow
control in bounded memory, trailers, WebSocket over extended CONNECT
(RFC 8441), real clients (curl, nghttp, h2load), and graceful ends (SIGTERM,
tenant removal).

Defences (rapid reset, floods, oversized and malformed header blocks, stream
limits) are in test_h2_defences.py.
"""

import base64
import hashlib
import json
import os
import re
import signal
import struct
import subprocess
import time

import hpack
import pytest

from backend import pattern_chunks, pattern_sha256
from controlclient import ControlClient, shorthand
from h2client import (NO_ERROR, PREFACE, SETTINGS_ENABLE_CONNECT_PROTOCOL,
                      SETTINGS_MAX_CONCURRENT_STREAMS, H2Client, alpn_of, open_socket)
from harness import RssSampler, is_sanitized, wait_until
from httpclient import curl, http, https, read_until_close

MB = 1024 * 1024
BIG = 200 * MB
RSS_LIMIT = int(os.environ.get("PORTIER_RSS_LIMIT_MB", "64")) * MB
HOSTS = ("a", "b", "c")


class Edge:
    def __init__(self, p, backends):
        self.p = p
        self.b = backends

    def client(self, host="a.test", **kw):
        """client: an HTTP/2 connection over TLS (SNI host, ALPN h2)."""
        return H2Client.open(self.p.https_port, host, self.p.ca_file, **kw)


@pytest.fixture(scope="module")
def edge(module_portier_factory, module_backend_factory):
    """Three tenants a/b/c, a rate-limited one and a plain-HTTP one; h2c on."""
    bs = {n: module_backend_factory(f"h2-{n}") for n in HOSTS + ("lim", "plain")}
    bs["hole"] = module_backend_factory("h2-hole", mode="blackhole")
    tenants = {n: shorthand(f"{n}.test", bs[n]) for n in HOSTS}
    tenants["lim"] = shorthand("lim.test", bs["lim"], rate_limit={
        "average": 1, "period": "1m", "burst": 3})
    tenants["plain"] = shorthand("plain.test", bs["plain"], https_redirect=False)
    tenants["hole"] = shorthand("hole.test", bs["hole"])
    p = module_portier_factory(
        tenants, http2={"enabled": True, "h2c": True, "max_concurrent_streams": 100},
        limits={"header_size": "16k", "header_count": 100},
        timeouts={"backend_response": "60s", "client_idle": "75s"})
    return Edge(p, bs)


@pytest.fixture(scope="module")
def defaults(module_portier_factory, module_backend_factory):
    """A portier whose config has no "http2" key at all."""
    b = module_backend_factory("h2-defaults")
    p = module_portier_factory({"d": shorthand("d.test", b, https_redirect=False)})
    return Edge(p, {"d": b})


def check_rss(p, peak, what="transfer"):
    """check_rss: portier's peak RSS stays under the limit. Under ASan RSS
    says little (shadow memory, quarantine): the transfer was checked, the
    bound is skipped with the figure measured."""
    if is_sanitized(p.binary):
        pytest.skip(f"RSS bound not meaningful under ASan (peak {peak // MB} MB); "
                    f"{what} verified")
    assert peak < RSS_LIMIT, f"peak RSS {peak // MB} MB >= {RSS_LIMIT // MB} MB during {what}"


def bounded(chunks, seconds):
    """bounded: pass chunks through, failing once `seconds` have elapsed."""
    deadline = time.monotonic() + seconds
    for c in chunks:
        assert time.monotonic() < deadline, f"transfer still running after {seconds}s"
        yield c


def headers_of(rec):
    """headers_of: a backend record's headers as {lowercase name: [values]}."""
    out = {}
    for k, v in rec["headers"]:
        out.setdefault(k.lower(), []).append(v)
    return out


def exact(s, n):
    """exact: stream s ended normally with the n pattern bytes."""
    assert s.status == 200 and s.ended and s.reset is None, s
    assert s.length == n, f"stream {s.id}: {s.length} bytes, expected {n}"
    assert s.sha256 == pattern_sha256(n), f"stream {s.id}: body differs from the pattern"


# -- real clients -----------------------------------------------------------------

@pytest.mark.parametrize("host", HOSTS)
def test_curl_http2_tenants(edge, marker, host):
    """curl --http2 with the internal CA trusted, each of three tenant hosts
    mapped to 127.0.0.1: HTTP/2 is negotiated and the tenant's own backend
    answers with the request's Host."""
    p = edge.p
    port = p.https_port
    r = curl(["--http2", "--cacert", str(p.ca_file),
              "--resolve", f"{host}.test:{port}:127.0.0.1",
              "-w", "\n%{http_version} %{response_code}",
              f"https://{host}.test:{port}{marker}"])
    assert r.returncode == 0, r.stderr
    body, _, tail = r.stdout.rpartition("\n")
    assert tail == "2 200", f"curl: {tail!r} (want HTTP version 2, status 200); {r.stderr}"
    echo = json.loads(body)
    assert echo["backend"] == f"h2-{host}" and echo["target"] == marker, echo
    assert headers_of(echo)["host"] == [f"{host}.test:{port}"], echo["headers"]


@pytest.mark.parametrize("host", HOSTS)
def test_nghttp_tenants(edge, marker, host):
    """nghttp (HTTP/2 only) to 127.0.0.1 with :authority (and so SNI) naming
    each tenant, verifying the chain against the internal root: the tenant's
    backend answers."""
    p = edge.p
    env = dict(os.environ, SSL_CERT_FILE=str(p.ca_file))
    r = subprocess.run(["nghttp", "-t", "20", "-H", f":authority: {host}.test",
                        f"https://127.0.0.1:{p.https_port}{marker}"],
                       capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 0, f"nghttp rc={r.returncode}: {r.stderr}{r.stdout[-500:]}"
    assert "verification failed" not in r.stderr.lower(), r.stderr
    echo = json.loads(r.stdout)
    assert echo["backend"] == f"h2-{host}" and echo["target"] == marker, echo
    assert headers_of(echo)["host"] == [f"{host}.test"], echo["headers"]


def test_h2load_no_errors(edge, marker):
    """h2load -c 10 -m 10 -n 20000 completes with every request succeeding
    over h2, and the backend received exactly those 20000 requests."""
    p, b = edge.p, edge.b["a"]
    port = p.https_port
    r = subprocess.run(["h2load", "-c", "10", "-m", "10", "-n", "20000",
                        f"--connect-to=127.0.0.1:{port}",
                        f"https://a.test:{port}/bytes/64?m={marker.strip('/')}"],
                       capture_output=True, text=True, timeout=180)
    out = r.stdout
    assert r.returncode == 0, f"h2load rc={r.returncode}: {r.stderr}\n{out[-2000:]}"
    assert re.search(r"^Application protocol: h2$", out, re.M), out[-2000:]
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    assert m, out[-2000:]
    total, started, done, ok, failed, errored, timeout = map(int, m.groups())
    assert (ok, failed, errored, timeout) == (20000, 0, 0, 0), m.group(0)
    codes = re.search(r"status codes: (\d+) 2xx", out)
    assert codes and int(codes.group(1)) == 20000, out[-2000:]
    assert b.wait_for(lambda be: len(be.seen(marker.strip("/"))) >= 20000, 10)
    assert len(b.seen(marker.strip("/"))) == 20000


# -- negotiation ----------------------------------------------------------------------

def test_alpn_prefers_h2(edge):
    """With http2 enabled the server picks h2 whatever the client's order;
    a client offering only http/1.1 still gets HTTP/1.1 and is served."""
    p = edge.p
    assert alpn_of(p.https_port, "a.test", p.ca_file, ["http/1.1", "h2"]) == "h2"
    assert alpn_of(p.https_port, "a.test", p.ca_file, ["h2", "http/1.1"]) == "h2"
    assert alpn_of(p.https_port, "a.test", p.ca_file, ["http/1.1"]) == "http/1.1"
    r = https(p.https_port, "a.test", p.ca_file, "/alpn-h1")
    assert r.status == 200 and r.header("X-Backend") == "h2-a", r


def test_server_settings(edge):
    """portier's SETTINGS advertise max_concurrent_streams (100) and
    SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (RFC 8441)."""
    with edge.client() as c:
        s = c.remote_settings
    assert s.get(SETTINGS_MAX_CONCURRENT_STREAMS) == 100, s
    assert s.get(SETTINGS_ENABLE_CONNECT_PROTOCOL) == 1, s


def test_defaults_h2_on_h2c_off(defaults, marker):
    """Without an "http2" key: ALPN selects h2 and requests are served; on the
    plain listener a client sending the h2 preface does not get HTTP/2
    (no SETTINGS frame back) and the backend sees nothing."""
    p, b = defaults.p, defaults.b["d"]
    assert alpn_of(p.https_port, "d.test", p.ca_file, ["http/1.1", "h2"]) == "h2"
    with defaults.client("d.test") as c:
        s = c.get(f"{marker}/tls")
    assert s.status == 200 and s.header("x-backend") == "h2-defaults", s

    sock = open_socket(p.http_port, tls=False)
    try:
        sock.sendall(PREFACE + bytes.fromhex("000000040000000000"))
        res = read_until_close(sock, 3.0)
    finally:
        sock.close()
    assert not (len(res.data) >= 9 and res.data[3] == 0x4), \
        f"h2c is off by default, yet a SETTINGS frame came back: {res!r}"
    assert res.data == b"" or res.data.startswith(b"HTTP/1."), res
    assert [r for r in b.requests if r["method"] == "PRI" or "HTTP/2" in r["target"]] == [], \
        b.requests

    r = http(p.http_port, "d.test", f"{marker}/h1")
    assert r.status == 200, r


def test_http2_disabled(portier_factory, backend_factory):
    """"http2": {"enabled": false}: ALPN never selects h2, HTTP/1.1 is served."""
    b = backend_factory("h2-off")
    p = portier_factory({"off": shorthand("off.test", b)}, http2={"enabled": False})
    assert alpn_of(p.https_port, "off.test", p.ca_file, ["h2", "http/1.1"]) == "http/1.1"
    assert alpn_of(p.https_port, "off.test", p.ca_file, ["h2"]) in (None, "")
    r = https(p.https_port, "off.test", p.ca_file, "/off")
    assert r.status == 200 and r.header("X-Backend") == "h2-off", r


def test_h2c_prior_knowledge(edge, marker):
    """"h2c": true: prior-knowledge HTTP/2 on the plain listener reaches the
    tenant's backend (X-Forwarded-Proto http); HTTP/1.1 on that listener
    still works."""
    p, b = edge.p, edge.b["plain"]
    with H2Client.open(p.http_port, "plain.test", None, tls=False) as c:
        s = c.get(f"{marker}/h2c")
        s2 = c.get(f"{marker}/h2c-again")
    assert s.status == 200 and s2.status == 200, (s, s2)
    echo = json.loads(bytes(s.body))
    assert echo["backend"] == "h2-plain" and echo["version"] == "HTTP/1.1", echo
    assert headers_of(echo)["x-forwarded-proto"] == ["http"], echo["headers"]
    assert headers_of(echo)["x-forwarded-port"] == [str(p.http_port)], echo["headers"]
    assert len(b.seen(f"{marker}/h2c")) == 2
    r = http(p.http_port, "plain.test", f"{marker}/h1")
    assert r.status == 200 and r.header("X-Backend") == "h2-plain", r
    r = http(p.http_port, "plain.test", f"{marker}/upgrade",
             headers={"Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c",
                      "HTTP2-Settings": "AAMAAABkAAQAAP__"})
    assert r.status == 200 and r.header("X-Backend") == "h2-plain", \
        f"h2c is prior knowledge only; an HTTP/1.1 Upgrade: h2c got {r!r}"


# -- request semantics ----------------------------------------------------------------

def test_forwarded_as_http11(edge, marker):
    """A request over h2 reaches the backend as HTTP/1.1 with exactly one Host
    equal to :authority, the path and query unchanged, forwarding headers,
    the body, and the X-Request-Id the client got back. The response carries
    no connection-specific header (h2 would reject it)."""
    p, b = edge.p, edge.b["a"]
    authority = f"a.test:{p.https_port}"
    with edge.client() as c:
        s = c.get(f"{marker}?x=1&y=%20z", method="POST", authority=authority,
                  headers=[("content-length", "11"), ("x-custom", "kept")],
                  body=b"hello world")
    assert s.status == 200, s
    echo = json.loads(bytes(s.body))
    h = headers_of(echo)
    assert echo["version"] == "HTTP/1.1" and echo["method"] == "POST", echo
    assert echo["target"] == f"{marker}?x=1&y=%20z", echo
    assert h["host"] == [authority], echo["headers"]
    assert h["x-forwarded-proto"] == ["https"], echo["headers"]
    assert "127.0.0.1" in ",".join(h.get("x-forwarded-for", [])), echo["headers"]
    assert h["x-forwarded-port"] == [str(p.https_port)], echo["headers"]
    assert h["x-custom"] == ["kept"], echo["headers"]
    assert echo["body_len"] == 11, echo
    assert h["x-request-id"] == [s.header("x-request-id")], (echo["headers"], s.headers)
    assert s.header("x-backend") == "h2-a", s.headers
    assert [r["body_len"] for r in b.seen(marker)] == [11]


def test_unique_fields_never_indexed(edge, marker):
    """Fields whose value is new in every response (X-Request-Id, Set-Cookie)
    are sent as never-indexed literals, so they neither fill the HPACK table
    nor become indexed references; a field that repeats (X-Backend) is
    indexed as usual."""
    with edge.client() as c:
        got = [c.get(f"{marker}?set_cookie=s%3D{i}") for i in range(3)]
    for s in got:
        assert s.status == 200, s
        kinds = {k: type(h) for h in s.headers for k in (h[0],)}
        assert kinds["x-request-id"] is hpack.NeverIndexedHeaderTuple, s.headers
        assert kinds["set-cookie"] is hpack.NeverIndexedHeaderTuple, s.headers
        assert kinds["x-backend"] is hpack.HeaderTuple, s.headers
    assert len({s.header("x-request-id") for s in got}) == 3
    assert [s.header("set-cookie") for s in got] == ["s=0", "s=1", "s=2"]


def test_host_header_without_authority(edge, marker):
    """Without :authority the Host header names the tenant and is forwarded."""
    with edge.client("b.test") as c:
        s = c.get(marker, pseudo=[(":method", "GET"), (":scheme", "https"), (":path", marker)],
                  headers=[("host", "b.test")])
        same = c.get(f"{marker}/same", headers=[("host", "b.test")], authority="b.test")
    assert s.status == 200, s
    echo = json.loads(bytes(s.body))
    assert echo["backend"] == "h2-b" and headers_of(echo)["host"] == ["b.test"], echo
    assert same.status == 200, same
    assert headers_of(json.loads(bytes(same.body)))["host"] == ["b.test"], same


def test_misdirected_421(edge, marker):
    """SNI a.test with :authority b.test (another tenant) gets 421 and neither
    backend sees it; the connection keeps serving a.test."""
    with edge.client("a.test") as c:
        s = c.get(marker, authority="b.test")
        ok = c.get(f"{marker}/ok")
    assert s.status == 421, s
    assert s.header("x-backend") is None, s
    assert [r["target"] for r in edge.b["a"].seen(marker)] == [f"{marker}/ok"]
    assert edge.b["b"].seen(marker) == []
    assert ok.status == 200, ok


def test_access_log_protocol_h2(edge, marker):
    """The access log line of an h2 request says "protocol": "h2" with the
    tenant, host, method, path, status, TLS version and upstream."""
    p, b = edge.p, edge.b["c"]
    with edge.client("c.test") as c:
        s = c.get(marker, authority="c.test")
    assert s.status == 200, s
    rid = s.header("x-request-id")
    assert rid, s.headers

    def find():
        hits = [e for e in p.access_entries() if e.get("request_id") == rid]
        return hits or None
    hits = wait_until(find, 5, what=f"access log line for {rid}")
    assert len(hits) == 1, hits
    e = hits[0]
    assert e["protocol"] == "h2", e
    assert (e["tenant"], e["method"], e["path"], e["status"]) == ("c", "GET", marker, 200), e
    assert e["host"].split(":")[0] == "c.test", e
    assert e["tls_version"] == "TLSv1.3", e
    assert e["upstream"] == b.address, e
    assert e["bytes_out"] >= s.length, e


def test_rate_limit_429_per_stream(edge, marker):
    """burst 3 (a token a minute): 8 concurrent streams on one connection get
    exactly 3 answers from the backend and 5 well-formed 429s with
    Retry-After; the connection stays usable (the next stream is a 429 too)."""
    b = edge.b["lim"]
    with edge.client("lim.test") as c:
        streams = [c.request(f"{marker}/{i}") for i in range(8)]
        c.wait_done(streams, 15)
        after = c.get(f"{marker}/after")
    codes = sorted(s.status for s in streams)
    assert codes == [200] * 3 + [429] * 5, [repr(s) for s in streams]
    for s in streams:
        if s.status == 429:
            ra = s.header("retry-after")
            assert ra is not None and ra.isdigit() and int(ra) >= 1, s.headers
            assert s.header("x-backend") is None, s.headers
            assert b"429" in bytes(s.body), s
    assert after.status == 429, after
    assert len(b.seen(marker)) == 3


# -- bodies and flow control -------------------------------------------------------------

def test_100_concurrent_streams_mixed(edge, marker):
    """100 concurrent streams on one connection, every tenth a 10 MB response
    and the rest 1 KiB: all complete byte-exact."""
    with edge.client(window=1 << 20, conn_window=1 << 27) as c:
        assert c.remote_settings.get(SETTINGS_MAX_CONCURRENT_STREAMS) == 100
        sizes = [10 * MB if i % 10 == 0 else 1024 for i in range(100)]
        streams = [c.request(f"/bytes/{n}?m={marker.strip('/')}-{i}", keep_body=False)
                   for i, n in enumerate(sizes)]
        c.wait_done(streams, 90)
    for s, n in zip(streams, sizes):
        exact(s, n)
    assert len(edge.b["a"].seen(marker.strip("/"))) == 100


def test_large_upload_streams(edge, marker):
    """A 200 MB upload over h2 (with content-length) reaches the backend
    byte-exact while portier's RSS, sampled every 100 ms, stays under 64 MB."""
    p = edge.p
    with edge.client(timeout=60) as c:
        with RssSampler(p) as sampler:
            s = c.request(f"/upload?m={marker.strip('/')}", method="POST",
                          headers=[("content-length", str(BIG))],
                          body=bounded(pattern_chunks(BIG, 16384), 240))
            c.wait_done([s], 240)
    assert s.status == 200, s
    echo = json.loads(bytes(s.body))
    assert (echo["body_len"], echo["body_sha256"]) == (BIG, pattern_sha256(BIG)), echo
    check_rss(p, sampler.peak, "200 MB upload")


def test_large_download_streams(edge):
    """A 200 MB download over h2 arrives byte-exact with portier's RSS under 64 MB."""
    p = edge.p
    with edge.client(timeout=60, window=4 << 20, conn_window=1 << 28) as c:
        with RssSampler(p) as sampler:
            s = c.request(f"/bytes/{BIG}", keep_body=False)
            c.wait_done([s], 240)
    exact(s, BIG)
    check_rss(p, sampler.peak, "200 MB download")


def test_upload_to_stalled_backend_is_bounded(edge, marker):
    """A 200 MB upload to a backend that never reads: portier stops opening
    the stream's window, so the client can send only a bounded amount (under
    64 MB, kernel buffers included) and portier's RSS grows by less than 16 MB."""
    p, b = edge.p, edge.b["hole"]
    with edge.client("hole.test", timeout=30) as c:
        base = p.rss_bytes()
        with RssSampler(p, interval=0.05) as sampler:
            s = c.request(f"/upload?m={marker.strip('/')}", method="POST",
                          headers=[("content-length", str(BIG))],
                          body=pattern_chunks(BIG, 16384))
            assert b.wait_for(lambda be: be.seen(marker.strip("/")), 10), \
                "the upload's head never reached the backend"
            last, still_since = -1, time.monotonic()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:  # until 1 s without progress
                c.pump(0.1)
                if s.sent != last:
                    last, still_since = s.sent, time.monotonic()
                elif time.monotonic() - still_since >= 1.0:
                    break
        sent = s.sent
        c.reset(s)
    print(f"\nstalled backend: the client sent {sent} bytes before the window closed")
    assert sent < 64 * MB, f"the client could send {sent // MB} MB to a backend that reads nothing"
    assert len(b.seen(marker.strip("/"))) == 1
    check_rss(p, sampler.peak, "a stalled upload")
    assert sampler.peak - base < 16 * MB, \
        f"RSS grew {(sampler.peak - base) // MB} MB while {sent // MB} MB waited for the backend"


def test_stalled_reader_is_bounded(edge, marker):
    """A stream whose reader stops (no WINDOW_UPDATE for it) on a 100 MB
    response: another stream on the same connection and another connection
    still complete 8 MB byte-exact, the stalled stream gets no more than its
    window, portier's RSS grows by less than 16 MB while it is held, and
    once the reader resumes the whole response arrives byte-exact."""
    p = edge.p
    n_big, n_other = 100 * MB, 8 * MB
    with edge.client(window=65535, timeout=30) as c, edge.client(timeout=30) as other:
        exact(c.get(f"/bytes/{n_other}", keep_body=False), n_other)   # warm both paths
        exact(other.get(f"/bytes/{n_other}", keep_body=False), n_other)
        base = p.rss_bytes()
        stalled = c.request(f"/bytes/{n_big}?m={marker.strip('/')}", keep_body=False)
        c.pause(stalled)
        c.wait(lambda: stalled.length >= 65535, 10, "the stalled stream's first window")
        with RssSampler(p, interval=0.05) as sampler:
            s2 = c.request(f"/bytes/{n_other}", keep_body=False)
            c.wait_done([s2], 30)
            s3 = other.get(f"/bytes/{n_other}", keep_body=False, timeout=30)
            end = time.monotonic() + 1.0  # keep the stall held while sampling
            while time.monotonic() < end:
                c.pump(0.1)
        exact(s2, n_other)
        exact(s3, n_other)
        held = stalled.length
        assert not stalled.done and held <= 65535, \
            f"stalled stream received {held} bytes with a 65535-byte window"
        growth = sampler.peak - base
        c.resume(stalled, extra=16 * MB)
        c.wait_done([stalled], 120)
    exact(stalled, n_big)
    if is_sanitized(p.binary):
        pytest.skip(f"RSS growth not meaningful under ASan ({growth // MB} MB); "
                    "flow control verified")
    assert growth < 16 * MB, f"RSS grew {growth // MB} MB while a 100 MB response was held"
    assert sampler.peak < RSS_LIMIT, f"peak RSS {sampler.peak // MB} MB"


def test_response_trailers(edge):
    """A chunked backend response with trailer fields reaches the h2 client
    byte-exact, its trailers in a trailing HEADERS frame."""
    n = 300_007
    with edge.client() as c:
        s = c.get(f"/trailers/{n}", headers=[("te", "trailers")], keep_body=False)
    exact(s, n)
    assert s.trailers is not None, f"no trailing HEADERS: {s!r}"
    assert s.trailer("x-pattern-sha256") == pattern_sha256(n), s.trailers
    assert s.trailer("x-pattern-length") == str(n), s.trailers


def test_request_trailers(edge, marker):
    """A request body without content-length followed by trailers reaches the
    backend chunked, byte-exact, with the trailer fields."""
    b = edge.b["a"]
    sizes = [1, 100, 16384, 70001, 5]
    total = sum(sizes)
    data = b"".join(pattern_chunks(total, total))
    chunks, off = [], 0
    for k in sizes:
        chunks.append(data[off:off + k])
        off += k
    digest = hashlib.sha256(data).hexdigest()
    with edge.client() as c:
        s = c.get(f"/upload?m={marker.strip('/')}", method="POST", body=chunks,
                  trailers=[("x-checksum", digest), ("x-note", "done")])
    assert s.status == 200, s
    echo = json.loads(bytes(s.body))
    assert (echo["body_len"], echo["body_sha256"]) == (total, digest), echo
    assert "chunked" in ",".join(headers_of(echo).get("transfer-encoding", [])).lower(), echo
    recs = b.seen(marker.strip("/"))
    assert len(recs) == 1, recs
    got = {k.lower(): v for k, v in recs[0].get("trailers", [])}
    assert got.get("x-checksum") == digest and got.get("x-note") == "done", recs[0]


# -- WebSocket (RFC 8441) ---------------------------------------------------------------

def ws_frame(op, payload):
    """ws_frame: one final, masked client frame."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | op, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | op, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | op, 0x80 | 127, n)
    m = (mask * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(m, "big")).to_bytes(n, "big") \
        if n else b""
    return head + mask + body


def ws_parse(buf, off):
    """ws_parse: (fin, op, payload, new offset) of the unmasked server frame at
    buf[off:], or None while it is incomplete."""
    if len(buf) - off < 2:
        return None
    b0, b1 = buf[off], buf[off + 1]
    assert not b1 & 0x80, "server frames must not be masked"
    n, pos = b1 & 0x7F, off + 2
    if n == 126:
        if len(buf) - pos < 2:
            return None
        n, pos = struct.unpack("!H", bytes(buf[pos:pos + 2]))[0], pos + 2
    elif n == 127:
        if len(buf) - pos < 8:
            return None
        n, pos = struct.unpack("!Q", bytes(buf[pos:pos + 8]))[0], pos + 8
    if len(buf) - pos < n:
        return None
    return bool(b0 & 0x80), b0 & 0x0F, bytes(buf[pos:pos + n]), pos + n


def test_websocket_over_h2_echo(edge, marker):
    """Extended CONNECT (:protocol websocket) becomes an HTTP/1.1 Upgrade at the
    backend; the client gets :status 200, and 60 text and binary messages of
    1 byte to 70000 bytes, a ping and a close echo through DATA frames in
    order. The connection keeps serving requests afterwards."""
    b = edge.b["a"]
    before = b.ws_messages
    sizes = [1, 10, 125, 126, 1000, 4096, 65535, 65536, 70000]
    path = f"/ws?m={marker.strip('/')}"
    with edge.client(timeout=20) as c:
        s = c.request(path, method="CONNECT", end_stream=False,
                      pseudo=[(":method", "CONNECT"), (":protocol", "websocket"),
                              (":scheme", "https"), (":path", path),
                              (":authority", "a.test")],
                      headers=[("sec-websocket-version", "13")])
        c.wait(lambda: s.headers is not None or s.done, 10, "the CONNECT response")
        assert s.status == 200 and not s.done, s
        off = 0

        def next_frame(what):
            nonlocal off
            got = []

            def ready():
                r = ws_parse(s.body, off)
                if r:
                    got.append(r)
                return bool(r) or s.done
            c.wait(ready, 10, what)
            assert got, f"stream ended before {what}: {s!r}"
            fin, op, payload, off = got[0]
            return fin, op, payload

        for i in range(60):
            n = sizes[i % len(sizes)]
            if i % 2:
                op, msg = 1, f"{i:06d}".ljust(n, "t")[:n].encode()
            else:
                op, msg = 2, bytes([i % 256]) * n
            c.send_data(s, [ws_frame(op, msg)])
            fin, rop, payload = next_frame(f"echo of message {i} ({n} bytes)")
            assert (fin, rop, payload) == (True, op, msg), f"message {i} came back different"
        c.send_data(s, [ws_frame(9, b"ping!")])
        assert next_frame("pong") == (True, 10, b"ping!")
        c.send_data(s, [ws_frame(8, struct.pack("!H", 1000))])
        fin, op, payload = next_frame("close echo")
        assert op == 8 and payload[:2] == struct.pack("!H", 1000)
        c.send_data(s, [], end=True)
        c.wait(lambda: s.done, 10, "the WebSocket stream to end")
        after = c.get(f"{marker}/after-ws")
        assert after.status == 200, after
    assert b.ws_messages - before == 60
    recs = [r for r in b.seen(marker.strip("/")) if r["path"] == "/ws"]
    assert len(recs) == 1, recs
    rec = recs[0]
    h = headers_of(rec)
    assert (rec["method"], rec["version"]) == ("GET", "HTTP/1.1"), rec
    assert h["upgrade"][0].lower() == "websocket", h
    assert "upgrade" in ",".join(h["connection"]).lower(), h
    assert h["sec-websocket-version"] == ["13"], h
    assert len(base64.b64decode(h["sec-websocket-key"][0])) == 16, h
    assert h["host"] == ["a.test"], h


# -- graceful ends ---------------------------------------------------------------------

def start_held_download(c, n):
    """start_held_download: a stream of n bytes paused after its first MB."""
    s = c.request(f"/bytes/{n}", keep_body=False)
    c.wait(lambda: s.length >= MB, 15, "the first MB")
    c.pause(s)
    return s


def test_sigterm_goaway_stream_completes(portier_factory, backend_factory):
    """SIGTERM while a 32 MB response is mid-stream: the client gets GOAWAY
    (NO_ERROR) covering its stream, the stream still completes byte-exact,
    then the connection closes and portier exits 0."""
    b = backend_factory("h2-term")
    p = portier_factory({"t": shorthand("t.test", b)}, timeouts={"shutdown": "30s"})
    n = 32 * MB
    with H2Client.open(p.https_port, "t.test", p.ca_file, window=65535, timeout=30) as c:
        s = start_held_download(c, n)
        p.signal(signal.SIGTERM)
        c.wait(lambda: c.goaways, 10, "GOAWAY after SIGTERM")
        assert not s.done, "the stream ended before the GOAWAY: nothing was in flight"
        c.resume(s, extra=16 * MB)
        c.wait_done([s], 60)
        exact(s, n)
        assert c.goaways and all(code == NO_ERROR for code, _, _ in c.goaways), c.goaways
        assert all(last >= s.id for _, last, _ in c.goaways), c.goaways
        assert c.wait_closed(15), "connection still open after its last stream ended"
    assert p.wait_exit(20) == 0


def test_tenant_removal_goaway(portier_factory, backend_factory):
    """Removing a tenant through the control API sends its open h2 connection a
    GOAWAY (NO_ERROR) while a 16 MB response is mid-stream; the stream
    completes byte-exact and the connection then closes. Another tenant's
    connection gets no GOAWAY and keeps serving."""
    bg, bk = backend_factory("h2-gone"), backend_factory("h2-kept")
    p = portier_factory({"gone": shorthand("gone.test", bg),
                         "kept": shorthand("kept.test", bk)})
    cc = ControlClient.of(p)
    n = 16 * MB
    with H2Client.open(p.https_port, "gone.test", p.ca_file, window=65535, timeout=30) as g, \
            H2Client.open(p.https_port, "kept.test", p.ca_file) as k:
        assert k.get("/before").status == 200
        s = start_held_download(g, n)
        r = cc.delete("gone")
        assert r.status == 200, r
        g.wait(lambda: g.goaways, 10, "GOAWAY after the tenant was removed")
        assert not s.done, "the stream ended before the GOAWAY"
        g.resume(s, extra=16 * MB)
        g.wait_done([s], 60)
        exact(s, n)
        assert all(code == NO_ERROR for code, _, _ in g.goaways), g.goaways
        assert g.wait_closed(15), "connection still open after its last stream ended"
        after = k.get("/after")
        k.ping()
        assert after.status == 200 and after.header("x-backend") == "h2-kept", after
        assert k.goaways == [], k.goaways
