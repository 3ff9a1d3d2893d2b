"""HTTP/2 deadlines: a connection that never sends its preface, never
acknowledges portier's SETTINGS, or sits idle with no stream open is closed,
the last two after a GOAWAY saying why. timeouts.client_header bounds the
first two, timeouts.client_idle the last; here both are short."""

import time

import pytest

from controlclient import shorthand
from h2client import NO_ERROR, PREFACE, FrameConn, open_socket
from hyperframe.frame import Frame, GoAwayFrame, SettingsFrame

HOST = "t.test"
SETTINGS_TIMEOUT = 0x4


@pytest.fixture(scope="module")
def edge(module_portier_factory, module_backend_factory):
    b = module_backend_factory("h2-timeouts")
    p = module_portier_factory({"t": shorthand(HOST, b)},
                               timeouts={"client_header": "1s", "client_idle": "1s"})
    return p, b


def read_until_closed(sock, timeout):
    """read_until_closed: every byte until EOF; (bytes, closed) at the deadline."""
    data = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return bytes(data), True
        if not chunk:
            return bytes(data), True
        data.extend(chunk)
    return bytes(data), False


def frames_of(data):
    out = []
    while len(data) >= 9:
        f, length = Frame.parse_frame_header(memoryview(data)[:9])
        if len(data) < 9 + length:
            break
        f.parse_body(memoryview(data[9:9 + length]))
        out.append(f)
        data = data[9 + length:]
    return out


def test_no_preface_closes(edge):
    """ALPN chose h2 but nothing follows: closed after client_header."""
    p, _ = edge
    sock = open_socket(p.https_port, HOST, p.ca_file, alpn=("h2",))
    try:
        start = time.monotonic()
        _, closed = read_until_closed(sock, 10)
        assert closed, "a silent h2 connection stayed open"
        assert time.monotonic() - start < 8
    finally:
        sock.close()


def test_settings_never_acked(edge):
    """The client sends its preface and SETTINGS but never ACKs portier's:
    GOAWAY SETTINGS_TIMEOUT (RFC 9113 6.5.3), then the close."""
    p, _ = edge
    sock = open_socket(p.https_port, HOST, p.ca_file, alpn=("h2",))
    try:
        sock.sendall(PREFACE + SettingsFrame(0).serialize())
        data, closed = read_until_closed(sock, 10)
        assert closed, "a connection that never ACKs SETTINGS stayed open"
        goaways = [f for f in frames_of(data) if isinstance(f, GoAwayFrame)]
        assert goaways and goaways[-1].error_code == SETTINGS_TIMEOUT, goaways
    finally:
        sock.close()


def test_idle_connection_goaway(edge):
    """A served connection left idle: GOAWAY NO_ERROR after client_idle, then
    the close; while a stream is open the idle deadline does not run."""
    p, _ = edge
    with FrameConn.open(p.https_port, HOST, p.ca_file, timeout=5) as f:
        f.send(f.request(1, "/idle-check", HOST))
        f.wait(lambda: 1 in f.ended, what="the response")
        assert f.status(1) == 200
        start = time.monotonic()
        assert f.wait_closed(10), "an idle h2 connection stayed open"
        assert time.monotonic() - start >= 0.5
        assert f.goaways and f.goaways[-1][0] == NO_ERROR, f.goaways
