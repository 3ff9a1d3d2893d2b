"""Client helpers: reach a tenant host on portier's loopback listeners.

Every connection goes to 127.0.0.1:PORT while the TLS SNI and the Host header
name the tenant host, as `curl --resolve` does. Raw helpers send exact bytes
(for malformed requests) and read what comes back, with deadlines.
"""

import http.client
import json
import socket
import ssl
import subprocess
import time

LOOPBACK = "127.0.0.1"


def tls_context(ca_file):
    """tls_context: a client context that trusts only portier's internal root."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    return ctx


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """PinnedHTTPSConnection: HTTPS to 127.0.0.1:port, SNI and Host = host."""

    def __init__(self, host, port, ca_file, timeout=10, sni=None):
        super().__init__(host, port, context=tls_context(ca_file), timeout=timeout)
        self.sni = sni or host

    def connect(self):
        sock = socket.create_connection((LOOPBACK, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.sni)


class PinnedHTTPConnection(http.client.HTTPConnection):
    """PinnedHTTPConnection: plain HTTP to 127.0.0.1:port with Host = host."""

    def connect(self):
        self.sock = socket.create_connection((LOOPBACK, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Response:
    """Response: status, headers (case-insensitive) and the whole body."""

    def __init__(self, status, reason, headers, body, elapsed):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.elapsed = elapsed

    def header(self, name):
        return self.headers.get(name)

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {dict(self.headers)!r} {self.body[:200]!r}>"


def exchange(conn, method="GET", path="/", headers=None, body=None, encode_chunked=False):
    """exchange: one request on an open http.client connection; a Response."""
    t0 = time.monotonic()
    conn.request(method, path, body=body, headers=headers or {},
                 encode_chunked=encode_chunked)
    r = conn.getresponse()
    data = r.read()
    return Response(r.status, r.reason, r.headers, data, time.monotonic() - t0)


def https(port, host, ca_file, path="/", method="GET", headers=None, body=None,
          sni=None, timeout=10):
    """https: one request on a new TLS connection (SNI = sni or host)."""
    conn = PinnedHTTPSConnection(host, port, ca_file, timeout=timeout, sni=sni)
    try:
        return exchange(conn, method, path, headers, body)
    finally:
        conn.close()


def http(port, host, path="/", method="GET", headers=None, body=None, timeout=10):
    """http: one request on a new plain connection to the HTTP listener."""
    conn = PinnedHTTPConnection(host, port, timeout=timeout)
    try:
        return exchange(conn, method, path, headers, body)
    finally:
        conn.close()


def curl(args, timeout=30):
    """curl: run the curl CLI; a CompletedProcess with text output."""
    return subprocess.run(["curl", "-sS", "--max-time", str(timeout)] + list(args),
                          capture_output=True, text=True, timeout=timeout + 5)


# -- raw sockets ------------------------------------------------------------------

def open_raw(port, tls=False, sni=None, ca_file=None, timeout=5):
    """open_raw: a connected socket (TLS-wrapped when tls) to 127.0.0.1:port."""
    sock = socket.create_connection((LOOPBACK, port), timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls:
        sock = tls_context(ca_file).wrap_socket(sock, server_hostname=sni)
    sock.settimeout(timeout)
    return sock


class RawResult:
    """RawResult: bytes received, whether the peer closed, and why reading ended."""

    def __init__(self, data, closed, reason):
        self.data = data
        self.closed = closed
        self.reason = reason

    @property
    def status(self):
        return status_of(self.data)

    def __repr__(self):
        return f"<RawResult closed={self.closed} ({self.reason}) {self.data[:300]!r}>"


def read_until_close(sock, deadline_s=5.0):
    """read_until_close: read until EOF or the deadline. EOF includes a TLS
    close without close_notify and a reset, which also end the connection."""
    deadline = time.monotonic() + deadline_s
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return RawResult(b"".join(chunks), False, "deadline")
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return RawResult(b"".join(chunks), False, "deadline")
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return RawResult(b"".join(chunks), True, "tls eof")
        except ConnectionResetError:
            return RawResult(b"".join(chunks), True, "reset")
        except ssl.SSLError as e:
            return RawResult(b"".join(chunks), True, f"tls error {e}")
        if not data:
            return RawResult(b"".join(chunks), True, "eof")
        chunks.append(data)


def raw_exchange(port, data, tls=False, sni=None, ca_file=None, deadline_s=5.0):
    """raw_exchange: send exact bytes, then read until the peer closes."""
    sock = open_raw(port, tls, sni, ca_file)
    try:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the peer may answer and close before it read everything
        return read_until_close(sock, deadline_s)
    finally:
        sock.close()


def status_of(data):
    """status_of: the status code of the first response in data, or None."""
    line = data.split(b"\r\n", 1)[0]
    parts = line.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/1.") and parts[1].isdigit():
        return int(parts[1])
    return None


class RawResponse:
    """RawResponse: one parsed response read from a byte stream."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (lowercase name, value)
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k == name.lower():
                return v
        return None


class StreamReader:
    """StreamReader: parse HTTP/1.1 responses from a socket, with a deadline."""

    def __init__(self, sock, timeout=10.0):
        self.sock = sock
        self.buf = b""
        self.timeout = timeout

    def _fill(self):
        self.sock.settimeout(self.timeout)
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, head_only=False):
        """read_response: the next response (interim 1xx ones included)."""
        status = status_of(self._line() + b"\r\n")
        headers = []
        while True:
            line = self._line()
            if not line:
                break
            k, _, v = line.decode("latin-1").partition(":")
            headers.append((k.strip().lower(), v.strip()))
        resp = RawResponse(status, headers, b"")
        if head_only or status < 200 or status in (204, 304):
            return resp
        if "chunked" in (resp.header("transfer-encoding") or "").lower():
            parts = []
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                parts.append(self._exact(size))
                self._exact(2)
            resp.body = b"".join(parts)
        elif resp.header("content-length") is not None:
            resp.body = self._exact(int(resp.header("content-length")))
        else:
            while True:
                try:
                    self._fill()
                except EOFError:
                    break
            resp.body, self.buf = self.buf, b""
        return resp
