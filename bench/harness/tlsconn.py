"""One client connection that sends one GET and reads the whole answer, stepped
without blocking so that one process keeps many in flight (client_handshake.py,
client_idle.py). Standard library only; imported by those scripts, not by the package."""
import selectors
import socket
import ssl
import time

READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


# HTTP/2 (RFC 9113) in the few frames one GET needs, so that no library is required.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2_DATA, H2_HEADERS, H2_RST_STREAM, H2_SETTINGS, H2_GOAWAY = 0, 1, 3, 4, 7
H2_END_STREAM, H2_ACK, H2_END_HEADERS, H2_PADDED, H2_PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
H2_STATUS_200 = 0x88  # HPACK static table entry 8, ":status: 200"


def h2_frame(kind, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def h2_get(host, port, path, stream):
    """The HEADERS frame of stream `stream` for GET https://host:port/path, in HPACK's
    static table and literals without indexing (no Huffman): no state to keep."""
    def literal(index, value):
        value = value.encode()
        if len(value) > 126:
            raise ValueError("header value too long for this encoder")
        return bytes([index, len(value)]) + value
    block = b"\x82\x87"  # :method GET, :scheme https
    block += b"\x84" if path == "/" else literal(4, path)
    block += literal(1, f"{host}:{port}")  # :authority
    return h2_frame(H2_HEADERS, H2_END_STREAM | H2_END_HEADERS, stream, block)


def context(h2=False):
    """A client context that never resumes: no session is ever handed back to it, so
    each connection is a full handshake. Certificate chain checks are off (client CPU
    the proxy does not pay); the server's handshake signature is still verified."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if h2:
        ctx.set_alpn_protocols(["h2"])
    return ctx


class Conn:
    """connect -> TLS handshake (if ctx) -> GET path -> status 200 and Content-Length
    bytes; with h2, over HTTP/2 (ALPN "h2"): `requests` GETs one after the other, as a
    browser loading a page, each answered 200 to the end of its stream, the server's
    SETTINGS acknowledged. `step()` returns the selector event to wait for, or None when
    done; it raises on any failure (message in the exception)."""

    def __init__(self, ctx, port, host, path, h2=False, requests=1):
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
        self.h2 = h2
        self.get = (host, port, path)
        self.h2_left = requests - 1  # h2: GETs still to send after the current one
        self.stream = 1             # h2: the current GET's stream
        self.req = (H2_PREFACE + h2_frame(H2_SETTINGS, 0, 0) + h2_get(host, port, path, 1) if h2
                    else f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        self.buf = bytearray()
        self.need = None  # header bytes + Content-Length, once the head is in
        self.ended = False  # h2: the last GET's stream ended

    def fileno(self):
        return self.sock.fileno()

    def step(self):
        try:
            if self.state == "handshake":
                self.sock.do_handshake()
                if self.sock.session_reused:
                    raise RuntimeError("TLS session was resumed")
                if self.h2 and self.sock.selected_alpn_protocol() != "h2":
                    raise RuntimeError("ALPN did not choose h2")
                self.state = "send"
            if self.state == "send":
                while self.req:
                    self.req = self.req[self.sock.send(self.req):]
                self.state = "recv"
            while True:
                while self.req:  # h2: SETTINGS acknowledgements
                    self.req = self.req[self.sock.send(self.req):]
                if self.h2 and self.ended:
                    self.t_done = time.monotonic()
                    self.state = "done"
                    return None
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise RuntimeError(f"closed by the server after {len(self.buf)} bytes")
                self.buf += chunk
                if self.h2:
                    self._h2_frames()
                elif self._complete():
                    self.t_done = time.monotonic()
                    self.state = "done"
                    return None
        except ssl.SSLWantReadError:
            return READ
        except ssl.SSLWantWriteError:
            return WRITE
        except BlockingIOError:
            return READ if self.state == "recv" else WRITE

    def _h2_frames(self):
        """Take the whole frames in buf: acknowledge SETTINGS, check the current
        stream's status, at its end send the next GET or note the last end; a reset or
        a GOAWAY fails the connection."""
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + length:
                return
            kind, flags = self.buf[3], self.buf[4]
            stream = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            payload = bytes(self.buf[9:9 + length])
            del self.buf[:9 + length]
            if kind == H2_SETTINGS and not flags & H2_ACK:
                self.req += h2_frame(H2_SETTINGS, H2_ACK, 0)
            elif kind in (H2_RST_STREAM, H2_GOAWAY):
                raise RuntimeError(f"HTTP/2 frame type {kind} from the server")
            elif kind == H2_HEADERS and stream == self.stream and self.need is None:
                if flags & H2_PADDED:
                    payload = payload[1:]
                if flags & H2_PRIORITY:
                    payload = payload[5:]
                if payload[:1] != bytes([H2_STATUS_200]):
                    raise RuntimeError(f"answer block starts {payload[:8].hex()}, not :status 200")
                self.need = 0
            if kind in (H2_HEADERS, H2_DATA) and stream == self.stream and flags & H2_END_STREAM:
                if not self.h2_left:
                    self.ended = True
                    continue
                self.h2_left -= 1
                self.stream += 2
                self.need = None
                self.req += h2_get(*self.get, self.stream)

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
