"""One client connection that sends one GET and reads the whole answer, stepped
without blocking so that one process keeps many in flight (client_handshake.py,
client_idle.py). Standard library only; imported by those scripts, not by the package."""
import selectors
import socket
import ssl
import time

READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


def context():
    """A client context that never resumes: no session is ever handed back to it, so
    each connection is a full handshake. Certificate chain checks are off (client CPU
    the proxy does not pay); the server's handshake signature is still verified."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class Conn:
    """connect -> TLS handshake (if ctx) -> GET path -> status 200 and Content-Length
    bytes. `step()` returns the selector event to wait for, or None when done; it
    raises on any failure (message in the exception)."""

    def __init__(self, ctx, port, host, path):
        self.t0 = time.monotonic()
        self.t_done = None
        raw = socket.socket()
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Loopback: returns as soon as the kernel queued the connection.
            raw.connect(("127.0.0.1", port))
            raw.setblocking(False)
            self.sock = (ctx.wrap_socket(raw, server_hostname=host, do_handshake_on_connect=False)
                         if ctx else raw)
        except BaseException:
            raw.close()
            raise
        self.tls = ctx is not None
        self.state = "handshake" if self.tls else "send"
        self.req = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        self.buf = bytearray()
        self.need = None  # header bytes + Content-Length, once the head is in

    def fileno(self):
        return self.sock.fileno()

    def step(self):
        try:
            if self.state == "handshake":
                self.sock.do_handshake()
                if self.sock.session_reused:
                    raise RuntimeError("TLS session was resumed")
                self.state = "send"
            if self.state == "send":
                while self.req:
                    self.req = self.req[self.sock.send(self.req):]
                self.state = "recv"
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise RuntimeError(f"closed by the server after {len(self.buf)} bytes")
                self.buf += chunk
                if self._complete():
                    self.t_done = time.monotonic()
                    self.state = "done"
                    return None
        except ssl.SSLWantReadError:
            return READ
        except ssl.SSLWantWriteError:
            return WRITE
        except BlockingIOError:
            return READ if self.state == "recv" else WRITE

    def _complete(self):
        if self.need is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            if head[0].split(" ")[1:2] != ["200"]:
                raise RuntimeError(f"answer: {head[0]}")
            length = [h.split(":", 1)[1] for h in head[1:] if h.lower().startswith("content-length:")]
            if not length:
                raise RuntimeError("answer without Content-Length")
            self.need = end + 4 + int(length[0])
        return len(self.buf) >= self.need

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
