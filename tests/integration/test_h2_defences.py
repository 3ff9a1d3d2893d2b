"""HTTP/2 defences: what a hostile client sends ends its own stream or its own
connection, never reaches a backend, and never costs portier unbounded memory
or other clients their service.

  rapid reset     streams opened and reset at once: GOAWAY ENHANCE_YOUR_CALM
                  after a bounded number, the backend sees few of them
  CONTINUATION    a header block that never ends: GOAWAY (non-zero), close
  header list     a decoded header list over limits.header_size (also by HPACK
                  back-references): GOAWAY (non-zero), close
  SETTINGS/PING   floods of tens of thousands: GOAWAY ENHANCE_YOUR_CALM, close
  malformed       uppercase names, connection-specific fields, missing or empty
                  pseudo-headers, :authority vs Host: RST_STREAM PROTOCOL_ERROR
  stream limit    streams beyond max_concurrent_streams are refused

Frames are written with hyperframe and hpack (h2client.FrameConn). A parallel
well-behaved connection checks that the others are unaffected. Every loop is
bounded in count and time.
"""

import threading
import time

import pytest

from controlclient import shorthand
from h2client import (ENHANCE_YOUR_CALM, NO_ERROR, PROTOCOL_ERROR, REFUSED_STREAM,
                      SETTINGS_HEADER_TABLE_SIZE, SETTINGS_MAX_CONCURRENT_STREAMS, FrameConn,
                      H2Client)
from harness import RssSampler, is_sanitized
from hyperframe.frame import SettingsFrame

MB = 1024 * 1024
HOST = "d.test"


@pytest.fixture(scope="module")
def edge(module_portier_factory, module_backend_factory):
    b = module_backend_factory("h2-def")
    other = module_backend_factory("h2-def-other")
    p = module_portier_factory({"d": shorthand(HOST, b), "o": shorthand("other.test", other)},
                               limits={"header_size": "16k", "header_count": 100},
                               timeouts={"backend_response": "30s"})
    return p, b, other


def frames(p):
    """frames: a raw HTTP/2 connection to p over TLS for HOST."""
    return FrameConn.open(p.https_port, HOST, p.ca_file, timeout=5)


def request_headers(path, authority=HOST, extra=()):
    return [(":method", "GET"), (":scheme", "https"), (":authority", authority),
            (":path", path)] + list(extra)


def reached(backend, tag):
    """reached: the backend's records that carry tag in the target or a header."""
    with backend.lock:
        recs = list(backend.requests)
    return [r for r in recs
            if tag in r["target"] or any(tag in v for _, v in r["headers"])]


class WellBehaved:
    """WellBehaved: another connection doing GETs in a thread, from before the
    attack (entering waits for its first answer) until 5 requests after it
    (at most `limit` requests and `budget` seconds); every one must be a 200."""

    def __init__(self, p, tag, limit=500, budget=30.0):
        self.p, self.tag, self.limit, self.budget = p, tag, limit, budget
        self.statuses = []
        self.after = 0
        self.error = None
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="well-behaved")

    def _run(self):
        deadline = time.monotonic() + self.budget
        try:
            with H2Client.open(self.p.https_port, HOST, self.p.ca_file, timeout=10) as c:
                for i in range(self.limit):
                    if self.after >= 5 or time.monotonic() > deadline:
                        break
                    stopped = self.stop.is_set()
                    self.statuses.append(c.get(f"{self.tag}/good/{i}", timeout=10).status)
                    self.ready.set()
                    self.after += stopped
        except Exception as e:  # reported by check()
            self.error = repr(e)
        finally:
            self.ready.set()

    def __enter__(self):
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=self.budget + 15)

    def check(self):
        assert not self.thread.is_alive(), "well-behaved client hung"
        assert self.error is None, f"well-behaved connection failed: {self.error}"
        assert self.after >= 5 and set(self.statuses) == {200}, self.statuses


def flood(f, make_batch, max_batches, per_batch):
    """flood: send batches until max_batches, the peer's GOAWAY or a failed
    write; read what arrived after each batch. Returns the items sent."""
    sent = 0
    for _ in range(max_batches):
        if not f.send(*make_batch(sent)):
            break
        sent += per_batch
        f.poll(0)
        if f.goaways or f.closed:
            break
    return sent


def goaway_then_close(f, what, timeout=10):
    """goaway_then_close: wait for a GOAWAY, then for the connection to close."""
    f.wait(lambda: f.goaways, timeout, what=f"GOAWAY after {what}", fail=False)
    assert f.goaways, f"no GOAWAY after {what} (closed={f.closed})"
    assert f.wait_closed(timeout), f"connection still open {timeout}s after GOAWAY ({what})"
    return f.goaways[0]


def check_rss_growth(p, base, peak, what, limit=16 * MB):
    if is_sanitized(p.binary):
        pytest.skip(f"RSS not meaningful under ASan (grew {(peak - base) // MB} MB); "
                    f"{what} verified")
    assert peak - base < limit, f"RSS grew {(peak - base) // MB} MB during {what}"


# -- rapid reset -------------------------------------------------------------------

def test_rapid_reset(edge, marker):
    """10,000 streams, each HEADERS then RST_STREAM at once, written as fast as
    portier reads: GOAWAY ENHANCE_YOUR_CALM before 1,000 streams were
    processed, then close; the backend saw fewer than 1,000 of them; a
    parallel well-behaved connection's requests all succeed."""
    p, b, _ = edge
    tag = marker + "/rr"
    per = 20

    def batch(start):
        out = []
        for i in range(start, start + per):
            sid = 2 * i + 1
            out.append(f.headers_frame(sid, request_headers(f"{tag}/{i}")))
            out.append(f.rst(sid))
        return out

    with WellBehaved(p, marker) as good:
        with frames(p) as f:
            sent = flood(f, batch, 10000 // per, per)
            code, last = goaway_then_close(f, f"{sent} reset streams")
    seen = len(reached(b, tag))
    print(f"\nrapid reset: {sent} streams written, GOAWAY {code:#x} last_stream_id {last}, "
          f"backend saw {seen}; well-behaved: {len(good.statuses)} requests")
    good.check()
    assert code == ENHANCE_YOUR_CALM, f"GOAWAY error code {code:#x}, expected 0xb"
    assert last < 2 * 1000, f"GOAWAY last_stream_id {last}: over 1,000 streams processed"
    assert seen < 1000, f"the backend saw {seen} of the reset streams"


# -- header blocks -------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["fields", "empty"])
def test_continuation_flood(edge, marker, kind):
    """HEADERS without END_HEADERS, then up to 10,000 CONTINUATION frames
    (each a small field, or empty): a GOAWAY with a non-zero error code, the
    connection closes, the backend sees nothing, portier's RSS stays bounded
    and a parallel connection is served."""
    p, b, _ = edge
    per = 200

    def batch(start):
        out = []
        for i in range(start, start + per):
            frag = f.encoder.encode([(f"x-flood-{i}".encode(), b"v" * 40)]) \
                if kind == "fields" else b""
            out.append(f.continuation(1, frag))
        return out

    base = p.rss_bytes()
    with WellBehaved(p, marker) as good, RssSampler(p, interval=0.05) as sampler:
        with frames(p) as f:
            first = f.block(request_headers(f"{marker}/flood", extra=[("x-case", marker)]))
            f.send(f.headers_frame(1, block=first, end_headers=False))
            sent = flood(f, batch, 10000 // per, per)
            code, _ = goaway_then_close(f, f"{sent} CONTINUATION frames")
    good.check()
    assert code != NO_ERROR, "GOAWAY with NO_ERROR after a CONTINUATION flood"
    assert reached(b, f"{marker}/flood") == []
    check_rss_growth(p, base, sampler.peak, "a CONTINUATION flood")


def split_block(f, sid, block, size=16384):
    """split_block: HEADERS + CONTINUATION frames carrying block (END_STREAM)."""
    parts = [block[i:i + size] for i in range(0, len(block), size)] or [b""]
    out = [f.headers_frame(sid, block=parts[0], end_headers=len(parts) == 1)]
    for k, part in enumerate(parts[1:], 1):
        out.append(f.continuation(sid, part, end_headers=k == len(parts) - 1))
    return out


@pytest.mark.parametrize("kind", ["literal", "hpack-references"])
def test_oversized_header_list(edge, marker, kind):
    """A header list whose decoded size exceeds limits.header_size (16 KiB):
    one 24 KiB field, or a 4000-byte field referenced 20 times from the HPACK
    table (80 KiB decoded from about 3 KiB on the wire). GOAWAY with a
    non-zero error code, close, the backend sees nothing, RSS bounded."""
    p, b, _ = edge
    path = f"{marker}/big"
    base = p.rss_bytes()
    with RssSampler(p, interval=0.05) as sampler, frames(p) as f:
        if kind == "literal":
            block = f.block(request_headers(path, extra=[("x-big", "a" * 24576)]))
        else:
            block = f.block(request_headers(path, extra=[("x-bomb", "b" * 4000)] * 21))
            assert len(block) < 6000, len(block)
        f.send(*split_block(f, 1, block))
        code, _ = goaway_then_close(f, f"a {kind} header list")
    assert code != NO_ERROR, "GOAWAY with NO_ERROR after an oversized header list"
    assert reached(b, path) == []
    check_rss_growth(p, base, sampler.peak, "oversized header lists")


def test_header_list_under_limit_is_served(edge, marker):
    """A decoded header list of about 8 KiB (under the 16 KiB limit) is served."""
    p, b, _ = edge
    with H2Client.open(p.https_port, HOST, p.ca_file) as c:
        s = c.get(marker, headers=[("x-half", "h" * 8000)])
    assert s.status == 200, s
    assert len(reached(b, marker)) == 1


# -- control frame floods ------------------------------------------------------------

@pytest.mark.parametrize("kind", ["settings", "ping"])
def test_control_frame_flood(edge, marker, kind):
    """Up to 50,000 SETTINGS (or PING) frames while reading every ACK: GOAWAY
    ENHANCE_YOUR_CALM, close; a parallel connection is served throughout."""
    p, _, _ = edge
    per = 500
    if kind == "settings":
        one = SettingsFrame(0, settings={SETTINGS_HEADER_TABLE_SIZE: 4096}).serialize()
    else:
        one = FrameConn.ping_frame(b"flooding").serialize()
    chunk = one * per

    with WellBehaved(p, marker) as good:
        with frames(p) as f:
            sent = flood(f, lambda _: [chunk], 50000 // per, per)
            code, _ = goaway_then_close(f, f"{sent} {kind} frames")
    acks = f.settings_acked if kind == "settings" else f.pings_acked
    print(f"\n{kind} flood: {sent} frames written, {acks} ACKed, GOAWAY {code:#x}; "
          f"well-behaved: {len(good.statuses)} requests")
    good.check()
    assert code == ENHANCE_YOUR_CALM, f"GOAWAY error code {code:#x}, expected 0xb"


# -- malformed requests ----------------------------------------------------------------

def _case(path, tag):
    method, scheme, auth, p = (":method", "GET"), (":scheme", "https"), \
        (":authority", HOST), (":path", path)
    x = ("x-case", tag)
    return {
        "uppercase-name": [method, scheme, auth, p, x, ("X-Upper", "1")],
        "connection": [method, scheme, auth, p, x, ("connection", "keep-alive")],
        "keep-alive": [method, scheme, auth, p, x, ("keep-alive", "timeout=5")],
        "proxy-connection": [method, scheme, auth, p, x, ("proxy-connection", "keep-alive")],
        "transfer-encoding": [method, scheme, auth, p, x, ("transfer-encoding", "chunked")],
        "upgrade": [method, scheme, auth, p, x, ("upgrade", "websocket")],
        "te-not-trailers": [method, scheme, auth, p, x, ("te", "gzip")],
        "no-method": [scheme, auth, p, x],
        "no-scheme": [method, auth, p, x],
        "no-path": [method, scheme, auth, x],
        "empty-path": [method, scheme, auth, (":path", ""), x],
        "duplicate-path": [method, scheme, auth, p, (":path", path + "/2"), x],
        "unknown-pseudo": [method, scheme, auth, p, (":foo", "bar"), x],
        "response-pseudo": [(":status", "200"), method, scheme, auth, p, x],
        "pseudo-after-field": [method, scheme, x, auth, p],
        "authority-host-differ": [method, scheme, auth, p, x, ("host", "other.test")],
    }


MALFORMED = list(_case("/", "t"))


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_request_reset(edge, marker, case):
    """A malformed request gets RST_STREAM PROTOCOL_ERROR and reaches no
    backend; the connection then serves a well-formed request."""
    p, b, other = edge
    path = f"{marker}/bad"
    with frames(p) as f:
        f.send(f.headers_frame(1, _case(path, marker)[case]))
        f.wait(lambda: 1 in f.resets or 1 in f.responses, 5, what="an answer to stream 1")
        assert f.status(1) is None, f"malformed request ({case}) was answered: {f.responses[1]}"
        assert f.resets[1] == PROTOCOL_ERROR, f"RST_STREAM {f.resets[1]:#x}, expected 0x1"
        f.request(3, f"{marker}/ok", HOST)
        f.wait(lambda: 3 in f.ended or 3 in f.resets, 5, what="the well-formed request")
        assert f.status(3) == 200, (f.responses, f.resets, f.goaways)
    assert reached(b, path) == [] and reached(other, marker) == []
    assert [r["target"] for r in reached(b, marker)] == [f"{marker}/ok"]


@pytest.mark.parametrize("field", [("x-evil", "a\r\nx-injected: 1"), ("x-evil", "a\nx-injected: 1"),
                                   ("x-evil", "a\x00b"), ("x evil", "1"),
                                   ("x-evil:x-injected", "1")],
                         ids=["crlf-value", "lf-value", "nul-value", "space-name", "colon-name"])
def test_invalid_field_never_reaches_backend(edge, marker, field):
    """A field with CR, LF or NUL in its value, or a space or colon in its
    name, never reaches the backend as such (no header injection into the
    HTTP/1.1 request): the stream is reset with PROTOCOL_ERROR (RFC 9113
    section 8.2.1), or at most the request goes on without that field."""
    p, b, _ = edge
    path = f"{marker}/inv"
    with frames(p) as f:
        f.send(f.headers_frame(1, request_headers(path, extra=[("x-case", marker), field])))
        f.wait(lambda: 1 in f.resets or 1 in f.ended, 5, what="an answer to stream 1")
        if f.status(1) is None:
            assert f.resets[1] == PROTOCOL_ERROR, f"RST_STREAM {f.resets[1]:#x}"
        f.ping()
    for r in reached(b, path):
        names = [k.lower() for k, _ in r["headers"]]
        assert "x-injected" not in names and "x-evil" not in names and "x evil" not in names, r
        for k, v in r["headers"]:
            assert not any(c in k + v for c in "\r\n\0"), r


# -- stream limit ------------------------------------------------------------------------

def test_streams_beyond_limit_refused(portier_factory, backend_factory, marker):
    """max_concurrent_streams 7 is advertised; with 7 slow requests open an
    8th stream is refused (RST_STREAM REFUSED_STREAM or PROTOCOL_ERROR, or a
    PROTOCOL_ERROR GOAWAY) and never reaches the backend."""
    b = backend_factory("h2-limit")
    p = portier_factory({"d": shorthand(HOST, b)},
                        http2={"max_concurrent_streams": 7})
    tag = marker.strip("/")
    with frames(p) as f:
        assert f.server_settings.get(SETTINGS_MAX_CONCURRENT_STREAMS) == 7, f.server_settings
        for i in range(7):
            f.request(2 * i + 1, f"/slow?ms=2000&tag={tag}-{i}", HOST)
        assert b.wait_for(lambda be: len(be.seen(tag)) == 7, 5), \
            f"only {len(b.seen(tag))} of 7 allowed streams reached the backend"
        f.request(15, f"/slow?ms=10&tag={tag}-extra", HOST)
        f.wait(lambda: 15 in f.resets or f.goaways or 15 in f.responses, 5,
               what="the 8th stream to be refused")
        assert f.status(15) is None, "the 8th concurrent stream was served"
        if 15 in f.resets:
            assert f.resets[15] in (REFUSED_STREAM, PROTOCOL_ERROR), f.resets
        else:
            code, last = f.goaways[0]
            assert code == PROTOCOL_ERROR and last < 15, f.goaways
        f.wait(lambda: all(2 * i + 1 in f.ended for i in range(7)) or f.closed, 10,
               what="the 7 slow streams", fail=False)
    assert b.seen(f"{tag}-extra") == []
