"""HTTP/2 clients for the integration suite, with a deadline on every wait.

H2Client drives python-h2 over a socket to 127.0.0.1 (TLS with ALPN "h2" and
SNI naming the tenant, or cleartext prior knowledge): requests, request bodies
sent under flow control, response bodies hashed as they arrive, trailers,
resets and GOAWAYs. A stream can be paused (its window is not reopened while
the connection window still is) to model a client that stops reading. Unlike
stock h2, it keeps serving its open streams after a GOAWAY, as a graceful
shutdown (RFC 9113 section 6.8) requires of a client.

FrameConn writes and reads raw frames (hyperframe + hpack) for what a
conforming client never sends: malformed header blocks, floods, rapid reset.
"""

import hashlib
import select
import socket
import ssl
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame,
                              PingFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame)

from httpclient import LOOPBACK, tls_context

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Error codes (RFC 9113 section 7)
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
ENHANCE_YOUR_CALM = 0xB

# SETTINGS identifiers
SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6
SETTINGS_ENABLE_CONNECT_PROTOCOL = 0x8

_CLOSED_ERRORS = (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError,
                  ssl.SSLZeroReturnError)


def open_socket(port, sni=None, ca_file=None, tls=True, alpn=("h2",), timeout=10):
    """open_socket: a connected socket to 127.0.0.1:port; with tls, wrapped with
    SNI = sni, trusting only ca_file, offering the ALPN list alpn (in order)."""
    sock = socket.create_connection((LOOPBACK, port), timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls:
        ctx = tls_context(ca_file)
        if alpn:
            ctx.set_alpn_protocols(list(alpn))
        try:
            sock = ctx.wrap_socket(sock, server_hostname=sni)
        except BaseException:
            sock.close()
            raise
    sock.settimeout(timeout)
    return sock


def alpn_of(port, sni, ca_file, alpn):
    """alpn_of: the protocol the server selected for a client offering alpn."""
    sock = open_socket(port, sni, ca_file, alpn=alpn)
    try:
        return sock.selected_alpn_protocol()
    finally:
        sock.close()


def _recv(sock, timeout):
    """_recv: bytes read within timeout; None if nothing arrived; b"" at EOF
    (a reset or a TLS close without close_notify counts as EOF)."""
    try:
        pending = sock.pending() if isinstance(sock, ssl.SSLSocket) else 0
        if not pending:
            r, _, _ = select.select([sock], [], [], max(0.0, timeout))
            if not r:
                return None
        sock.settimeout(max(timeout, 1.0))
        return sock.recv(1 << 18)
    except socket.timeout:
        return None
    except ssl.SSLWantReadError:
        return None
    except _CLOSED_ERRORS:
        return b""
    except ssl.SSLError:
        return b""
    except OSError:
        return b""


# -- python-h2 client ------------------------------------------------------------

class _GracefulStateMachine(h2.connection.H2ConnectionStateMachine):
    """_GracefulStateMachine: h2's client state machine, except that receiving
    a GOAWAY leaves the connection open, so the streams the server still
    serves can finish (stock h2 closes the connection state at once)."""

    _transitions = dict(h2.connection.H2ConnectionStateMachine._transitions)
    _transitions[(h2.connection.ConnectionState.CLIENT_OPEN,
                  h2.connection.ConnectionInputs.RECV_GOAWAY)] = \
        (None, h2.connection.ConnectionState.CLIENT_OPEN)


class Stream:
    """Stream: one request's response as it arrives."""

    def __init__(self, sid, keep_body=True):
        self.id = sid
        self.headers = None          # [(name, value)] of the final response
        self.informational = []      # [[(name, value)], ...] 1xx heads
        self.trailers = None         # [(name, value)] of a trailing HEADERS
        self.body = bytearray() if keep_body else None
        self.length = 0
        self._sha = hashlib.sha256()
        self.ended = False           # END_STREAM received
        self.reset = None            # error code of a RST_STREAM received
        self.paused = False
        self.unacked = 0             # bytes received while paused
        self.sent = 0                # request body bytes sent so far

    @property
    def status(self):
        v = self.header(":status")
        return int(v) if v is not None else None

    def header(self, name):
        for k, v in self.headers or ():
            if k == name:
                return v
        return None

    def trailer(self, name):
        for k, v in self.trailers or ():
            if k == name:
                return v
        return None

    @property
    def sha256(self):
        return self._sha.hexdigest()

    @property
    def done(self):
        return self.ended or self.reset is not None

    def _feed(self, data):
        self.length += len(data)
        self._sha.update(data)
        if self.body is not None:
            self.body += data

    def __repr__(self):
        return (f"<Stream {self.id} status={self.status} len={self.length} "
                f"ended={self.ended} reset={self.reset} headers={self.headers} "
                f"body={bytes(self.body[:200]) if self.body is not None else None!r}>")


class _Body:
    def __init__(self, chunks, trailers, end):
        self.chunks = iter(chunks)
        self.buf = b""
        self.trailers = trailers
        self.end = end


class H2Client:
    """H2Client: one HTTP/2 connection. Every wait has a deadline; a wait that
    cannot be met because the connection closed fails at once."""

    def __init__(self, sock, window=1 << 20, conn_window=1 << 26, timeout=10.0,
                 authority=None, scheme="https"):
        self.sock = sock
        self.timeout = timeout
        self.authority = authority
        self.scheme = scheme
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(cfg)
        self.conn.state_machine = _GracefulStateMachine()
        codes = h2.settings.SettingCodes
        self.conn.local_settings = h2.settings.Settings(
            client=True, initial_values={codes.ENABLE_PUSH: 0,
                                         codes.INITIAL_WINDOW_SIZE: window,
                                         codes.MAX_CONCURRENT_STREAMS: 1000})
        self.streams = {}
        self.goaways = []            # [(error_code, last_stream_id, debug data)]
        self.closed = False
        self.remote_settings = None  # {code: value} of the server's first SETTINGS
        self.pings_acked = 0
        self._bodies = {}
        self.conn.initiate_connection()
        if conn_window > 65535:
            self.conn.increment_flow_control_window(conn_window - 65535)
        self.flush()
        self.wait(lambda: self.remote_settings is not None, what="the server's SETTINGS")

    @classmethod
    def open(cls, port, sni, ca_file, tls=True, alpn=("h2",), **kw):
        """open: connect (TLS unless tls is False), check that ALPN chose h2,
        exchange SETTINGS. authority defaults to sni."""
        sock = open_socket(port, sni, ca_file, tls=tls, alpn=alpn)
        if tls:
            got = sock.selected_alpn_protocol()
            if got != "h2":
                sock.close()
                raise AssertionError(f"ALPN selected {got!r}, not 'h2' (offered {alpn})")
        kw.setdefault("authority", sni)
        kw.setdefault("scheme", "https" if tls else "http")
        try:
            return cls(sock, **kw)
        except BaseException:
            sock.close()
            raise

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- I/O ----------------------------------------------------------------------
    def flush(self):
        data = self.conn.data_to_send()
        if data and not self.closed:
            try:
                self.sock.settimeout(self.timeout)
                self.sock.sendall(data)
            except _CLOSED_ERRORS:
                self.closed = True

    def pump(self, timeout=0.05):
        """pump: send what can be sent, then handle what arrives within timeout."""
        self._send_bodies()
        self.flush()
        if self.closed:
            return
        data = _recv(self.sock, timeout)
        if data is None:
            return
        if not data:
            self.closed = True
            return
        for ev in self.conn.receive_data(data):
            self._event(ev)
        self._send_bodies()
        self.flush()

    def wait(self, predicate, timeout=None, what="a condition"):
        """wait: pump until predicate() is true; AssertionError at the deadline
        or when the connection closes first."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.closed:
                raise AssertionError(f"connection closed while waiting for {what}; "
                                     f"goaways={self.goaways}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; "
                                     f"goaways={self.goaways}")
            self.pump(min(left, 0.2))
        return True

    def wait_closed(self, timeout=10.0):
        """wait_closed: pump until the server closes; False at the deadline."""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self.pump(min(0.2, max(0.0, deadline - time.monotonic())))
        return self.closed

    def _event(self, ev):
        E = h2.events
        if isinstance(ev, E.RemoteSettingsChanged):
            if self.remote_settings is None:
                self.remote_settings = {int(k): v.new_value
                                        for k, v in ev.changed_settings.items()}
        elif isinstance(ev, E.InformationalResponseReceived):
            self.streams[ev.stream_id].informational.append(list(ev.headers))
        elif isinstance(ev, E.ResponseReceived):
            self.streams[ev.stream_id].headers = list(ev.headers)
        elif isinstance(ev, E.DataReceived):
            s = self.streams[ev.stream_id]
            s._feed(ev.data)
            n = ev.flow_controlled_length
            if s.paused:
                s.unacked += n
                if n:
                    self.conn.increment_flow_control_window(n)
            elif n:
                self.conn.acknowledge_received_data(n, ev.stream_id)
        elif isinstance(ev, E.TrailersReceived):
            self.streams[ev.stream_id].trailers = list(ev.headers)
        elif isinstance(ev, E.StreamEnded):
            self.streams[ev.stream_id].ended = True
        elif isinstance(ev, E.StreamReset):
            if ev.stream_id in self.streams:
                self.streams[ev.stream_id].reset = int(ev.error_code)
            self._bodies.pop(ev.stream_id, None)
        elif isinstance(ev, E.ConnectionTerminated):
            self.goaways.append((int(ev.error_code), ev.last_stream_id, ev.additional_data))
        elif isinstance(ev, E.PingAckReceived):
            self.pings_acked += 1

    # -- requests -------------------------------------------------------------------
    def request(self, path, method="GET", authority=None, headers=(), body=None,
                trailers=None, keep_body=True, pseudo=None, end_stream=None):
        """request: open a stream. body: None, bytes, or an iterable of bytes
        (sent under flow control, no content-length unless in headers);
        trailers: sent after the body. pseudo replaces the pseudo-headers."""
        sid = self.conn.get_next_available_stream_id()
        if pseudo is None:
            pseudo = [(":method", method), (":scheme", self.scheme),
                      (":authority", authority or self.authority), (":path", path)]
        hdrs = list(pseudo) + [(k.lower(), str(v)) for k, v in headers]
        s = Stream(sid, keep_body)
        self.streams[sid] = s
        has_body = body is not None or trailers is not None
        if end_stream is None:
            end_stream = not has_body
        self.conn.send_headers(sid, hdrs, end_stream=end_stream)
        if has_body:
            if isinstance(body, (bytes, bytearray, memoryview)):
                body = [bytes(body)]
            self._bodies[sid] = _Body(body or [], trailers, True)
        self._send_bodies()
        self.flush()
        return s

    def send_data(self, stream, chunks, end=False):
        """send_data: queue more body for an open stream (e.g. WebSocket bytes)."""
        b = self._bodies.get(stream.id)
        if b is None:
            self._bodies[stream.id] = _Body(chunks, None, end)
        else:
            b.chunks = _chain(b.chunks, chunks)
            b.end = end
        self._send_bodies()
        self.flush()

    def _send_bodies(self):
        sent = 0
        for sid in list(self._bodies):
            b = self._bodies[sid]
            while True:
                if not b.buf:
                    nxt = next(b.chunks, None)
                    if nxt is None:
                        if b.end:
                            if b.trailers is not None:
                                self.conn.send_headers(sid, list(b.trailers), end_stream=True)
                            else:
                                self.conn.end_stream(sid)
                            del self._bodies[sid]
                        break
                    b.buf = bytes(nxt)
                    continue
                try:
                    win = min(self.conn.local_flow_control_window(sid),
                              self.conn.max_outbound_frame_size)
                except h2.exceptions.StreamClosedError:
                    del self._bodies[sid]
                    break
                if win <= 0:
                    break
                chunk, b.buf = b.buf[:win], b.buf[win:]
                self.conn.send_data(sid, chunk)
                if sid in self.streams:
                    self.streams[sid].sent += len(chunk)
                sent += len(chunk)
                if sent >= 1 << 18:
                    self.flush()
                    sent = 0

    def reset(self, stream, code=CANCEL):
        self.conn.reset_stream(stream.id, code)
        self._bodies.pop(stream.id, None)
        self.flush()

    def pause(self, stream):
        """pause: stop reopening stream's window (the connection's still is)."""
        stream.paused = True

    def resume(self, stream, extra=0):
        """resume: give back what arrived while paused, plus extra bytes."""
        stream.paused = False
        n = stream.unacked + extra
        stream.unacked = 0
        if n:
            self.conn.increment_flow_control_window(n, stream_id=stream.id)
        self.flush()

    def ping(self, timeout=None):
        """ping: a PING round trip (everything sent before it was read)."""
        before = self.pings_acked
        self.conn.ping(b"portier!")
        self.flush()
        self.wait(lambda: self.pings_acked > before, timeout, what="PING ACK")

    def wait_done(self, streams, timeout=None):
        streams = list(streams)
        self.wait(lambda: all(s.done for s in streams), timeout,
                  what=f"{sum(not s.done for s in streams)} of {len(streams)} streams to end")
        return streams

    def get(self, path, timeout=None, **kw):
        """get: one request, waited for; the Stream."""
        s = self.request(path, **kw)
        self.wait_done([s], timeout)
        return s


def _chain(a, b):
    yield from a
    yield from b


# -- raw frames ---------------------------------------------------------------------

class FrameConn:
    """FrameConn: an HTTP/2 connection at the frame level. Server SETTINGS are
    ACKed; HEADERS blocks are decoded; RST_STREAM, GOAWAY and DATA are recorded."""

    def __init__(self, sock, timeout=10.0):
        self.sock = sock
        self.timeout = timeout
        self.buf = bytearray()
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.closed = False
        self.send_failed = False
        self.server_settings = None
        self.settings_acked = 0
        self.pings_acked = 0
        self.goaways = []      # [(error_code, last_stream_id)]
        self.resets = {}       # stream id -> error code
        self.responses = {}    # stream id -> [(name, value)] (the first block)
        self.ended = set()     # stream ids with END_STREAM seen
        self.data = {}         # stream id -> bytes received
        self.frames_in = 0
        self._block = None     # (stream id, bytearray, end_stream) while CONTINUATIONs come

    @classmethod
    def open(cls, port, sni, ca_file, tls=True, settings=None, **kw):
        sock = open_socket(port, sni, ca_file, tls=tls, alpn=("h2",))
        if tls and sock.selected_alpn_protocol() != "h2":
            got = sock.selected_alpn_protocol()
            sock.close()
            raise AssertionError(f"ALPN selected {got!r}, not 'h2'")
        c = cls(sock, **kw)
        try:
            c.start(settings)
        except BaseException:
            c.close()
            raise
        return c

    def start(self, settings=None):
        """start: preface + SETTINGS + a large connection window; wait for the
        server's SETTINGS (ACKed on arrival) and for its ACK of ours."""
        s = {SETTINGS_ENABLE_PUSH: 0, SETTINGS_INITIAL_WINDOW_SIZE: 1 << 24}
        s.update(settings or {})
        wu = WindowUpdateFrame(0)
        wu.window_increment = (1 << 30)
        self.send(PREFACE, SettingsFrame(0, settings=s), wu)
        self.wait(lambda: self.server_settings is not None and self.settings_acked,
                  what="server SETTINGS and SETTINGS ACK")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- sending ------------------------------------------------------------------
    def send(self, *items):
        """send: frames and/or bytes in one write. False if the peer is gone
        (or stopped reading for longer than the timeout)."""
        data = b"".join(i.serialize() if isinstance(i, Frame) else bytes(i) for i in items)
        if self.send_failed:
            return False
        try:
            self.sock.settimeout(self.timeout)
            self.sock.sendall(data)
            return True
        except (socket.timeout, ssl.SSLError, OSError):
            self.send_failed = True
            return False

    def block(self, headers):
        """block: an HPACK header block for [(name, value)] exactly as given."""
        return self.encoder.encode([(_b(k), _b(v)) for k, v in headers])

    def headers_frame(self, sid, headers=None, block=None, end_stream=True, end_headers=True):
        f = HeadersFrame(sid)
        f.data = block if block is not None else self.block(headers)
        if end_stream:
            f.flags.add("END_STREAM")
        if end_headers:
            f.flags.add("END_HEADERS")
        return f

    @staticmethod
    def continuation(sid, fragment=b"", end_headers=False):
        f = ContinuationFrame(sid)
        f.data = fragment
        if end_headers:
            f.flags.add("END_HEADERS")
        return f

    @staticmethod
    def rst(sid, code=CANCEL):
        f = RstStreamFrame(sid)
        f.error_code = code
        return f

    @staticmethod
    def ping_frame(payload=b"\0" * 8):
        f = PingFrame(0)
        f.opaque_data = payload
        return f

    @staticmethod
    def data_frame(sid, data, end_stream=False):
        f = DataFrame(sid)
        f.data = data
        if end_stream:
            f.flags.add("END_STREAM")
        return f

    def request(self, sid, path, authority, method="GET", extra=(), end_stream=True):
        """request: send a well-formed request's HEADERS on stream sid."""
        hdrs = [(":method", method), (":scheme", "https"), (":authority", authority),
                (":path", path)] + list(extra)
        return self.send(self.headers_frame(sid, hdrs, end_stream=end_stream))

    # -- receiving ------------------------------------------------------------------
    def poll(self, timeout=0.0):
        """poll: read what arrives within timeout (at least what is already
        there) and handle the complete frames. False once the peer closed."""
        if self.closed:
            return False
        data = _recv(self.sock, timeout)
        while data:
            self.buf += data
            self._parse()
            data = _recv(self.sock, 0.0)
        if data == b"":
            self.closed = True
            return False
        return True

    def wait(self, predicate, timeout=None, what="a condition", fail=True):
        """wait: poll until predicate() holds; at the deadline or on close,
        AssertionError (or False when fail is False)."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if self.closed or left <= 0:
                if not fail:
                    return False
                why = "connection closed" if self.closed else f"timed out after {timeout}s"
                raise AssertionError(f"{why} waiting for {what}; goaways={self.goaways} "
                                     f"resets={dict(list(self.resets.items())[:10])}")
            self.poll(min(left, 0.2))
        return True

    def wait_closed(self, timeout=10.0):
        """wait_closed: read (and handle frames) until EOF; False at the deadline."""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self.poll(min(0.2, max(0.0, deadline - time.monotonic())))
        return self.closed

    def ping(self, timeout=None):
        before = self.pings_acked
        self.send(self.ping_frame(b"sync-me!"))
        self.wait(lambda: self.pings_acked > before, timeout, what="PING ACK")

    def _parse(self):
        while len(self.buf) >= 9:
            f, length = Frame.parse_frame_header(memoryview(self.buf)[:9])
            if len(self.buf) < 9 + length:
                return
            body = bytes(self.buf[9:9 + length])
            del self.buf[:9 + length]
            f.parse_body(memoryview(body))
            self.frames_in += 1
            self._frame(f)

    def _frame(self, f):
        if isinstance(f, SettingsFrame):
            if "ACK" in f.flags:
                self.settings_acked += 1
            else:
                if self.server_settings is None:
                    self.server_settings = dict(f.settings)
                if SETTINGS_HEADER_TABLE_SIZE in f.settings:
                    self.encoder.header_table_size = min(
                        4096, f.settings[SETTINGS_HEADER_TABLE_SIZE])
                ack = SettingsFrame(0)
                ack.flags.add("ACK")
                self.send(ack)
        elif isinstance(f, PingFrame):
            if "ACK" in f.flags:
                self.pings_acked += 1
            else:
                ack = PingFrame(0)
                ack.flags.add("ACK")
                ack.opaque_data = f.opaque_data
                self.send(ack)
        elif isinstance(f, GoAwayFrame):
            self.goaways.append((f.error_code, f.last_stream_id))
        elif isinstance(f, RstStreamFrame):
            self.resets[f.stream_id] = f.error_code
        elif isinstance(f, HeadersFrame):
            self._block = (f.stream_id, bytearray(f.data), "END_STREAM" in f.flags)
            if "END_HEADERS" in f.flags:
                self._end_block()
        elif isinstance(f, ContinuationFrame):
            if self._block is not None:
                self._block[1].extend(f.data)
                if "END_HEADERS" in f.flags:
                    self._end_block()
        elif isinstance(f, DataFrame):
            self.data[f.stream_id] = self.data.get(f.stream_id, b"") + bytes(f.data)
            if "END_STREAM" in f.flags:
                self.ended.add(f.stream_id)

    def _end_block(self):
        sid, block, end = self._block
        self._block = None
        hdrs = [(k.decode("latin-1"), v.decode("latin-1"))
                for k, v in self.decoder.decode(bytes(block), raw=True)]
        self.responses.setdefault(sid, hdrs)
        if end:
            self.ended.add(sid)

    def status(self, sid):
        for k, v in self.responses.get(sid, ()):
            if k == ":status":
                return int(v)
        return None


def _b(x):
    return x if isinstance(x, bytes) else str(x).encode("latin-1")
