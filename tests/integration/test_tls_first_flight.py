"""A client's first requests sent in the same segment as its TLS Finished.

portier reads ahead from the first handshake read, so the bytes behind the
Finished (an HTTP/1.1 request, or the HTTP/2 preface and a HEADERS frame)
land in OpenSSL's buffer during the handshake and never make the socket
readable again. Each front must take them at once after the hand-over; a
front that waited for the socket would hang until the client gave up.
"""

import socket
import ssl
import time

import h2.config
import h2.connection
import h2.events
import pytest

from controlclient import shorthand

LOOPBACK = "127.0.0.1"
DEADLINE_S = 10


@pytest.fixture(scope="module")
def edge(module_portier_factory, module_backend_factory):
    b = module_backend_factory("first-flight")
    p = module_portier_factory({"ff": shorthand("ff.test", b)}, http2={"enabled": True})
    return p, b


class MemoryTLS:
    """MemoryTLS: a TLS 1.3 client over memory BIOs, so the test decides
    which of its records leave together in one send."""

    def __init__(self, p, host, alpn):
        ctx = ssl.create_default_context(cafile=str(p.ca_file))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.set_alpn_protocols([alpn])
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname=host)
        self.sock = socket.create_connection((LOOPBACK, p.https_port), DEADLINE_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.deadline = time.monotonic() + DEADLINE_S

    def _recv(self):
        self.sock.settimeout(max(0.1, self.deadline - time.monotonic()))
        data = self.sock.recv(65536)
        if not data:
            self.inc.write_eof()
        self.inc.write(data)
        return data

    def handshake_held(self):
        """handshake_held: run the handshake up to the client's Finished,
        which stays unsent in the outgoing BIO."""
        for _ in range(50):
            try:
                self.obj.do_handshake()
                return self.obj.selected_alpn_protocol()
            except ssl.SSLWantReadError:
                pending = self.out.read()
                if pending:
                    self.sock.sendall(pending)
                if not self._recv():
                    raise AssertionError("server closed during the handshake")
        raise AssertionError("handshake did not finish in 50 reads")

    def send_with_finished(self, payload):
        """send_with_finished: the Finished and payload's records in one send."""
        self.obj.write(payload)
        self.sock.sendall(self.out.read())

    def read_some(self):
        """read_some: decrypted bytes, b"" at the server's close."""
        while time.monotonic() < self.deadline:
            try:
                return self.obj.read(65536)
            except ssl.SSLWantReadError:
                if not self._recv():
                    return b""
            except ssl.SSLZeroReturnError:
                return b""
        raise AssertionError("no answer before the deadline")

    def close(self):
        self.sock.close()


def read_h1_answers(t, count):
    """read_h1_answers: count answers to GETs (each with Content-Length)."""
    buf, answers = b"", []
    while len(answers) < count:
        try:
            data = t.read_some()
        except (TimeoutError, socket.timeout):
            break
        if not data:
            break
        buf += data
        while b"\r\n\r\n" in buf:
            head, rest = buf.split(b"\r\n\r\n", 1)
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) < length:
                break
            answers.append((head, rest[:length]))
            buf = rest[length:]
    return answers


def test_h1_requests_sent_with_finished_are_answered(edge):
    p, b = edge
    t = MemoryTLS(p, "ff.test", "http/1.1")
    try:
        assert t.handshake_held() == "http/1.1"
        reqs = b"".join(b"GET /first-flight/%d HTTP/1.1\r\nHost: ff.test\r\n\r\n" % i
                        for i in range(2))
        t.send_with_finished(reqs)
        answers = read_h1_answers(t, 2)
    finally:
        t.close()
    assert [a[0].split(b"\r\n")[0] for a in answers] == [b"HTTP/1.1 200 OK"] * 2, answers
    paths = [r["path"] for r in b.requests]
    assert "/first-flight/0" in paths and "/first-flight/1" in paths


def test_h2_stream_sent_with_finished_is_answered(edge):
    p, b = edge
    t = MemoryTLS(p, "ff.test", "h2")
    try:
        assert t.handshake_held() == "h2"
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.send_headers(1, [(":method", "GET"), (":scheme", "https"),
                              (":authority", "ff.test"), (":path", "/first-flight/h2")],
                          end_stream=True)
        t.send_with_finished(conn.data_to_send())
        status, ended = None, False
        while not ended:
            data = t.read_some()
            assert data, "connection closed before the stream ended"
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    status = dict(ev.headers)[b":status"]
                elif isinstance(ev, h2.events.StreamEnded):
                    ended = True
            # Nothing more is sent (not even the SETTINGS ACK): a write from
            # the client would make the socket readable and hide a hang.
    finally:
        t.close()
    assert status == b"200"
    assert "/first-flight/h2" in [r["path"] for r in b.requests]
