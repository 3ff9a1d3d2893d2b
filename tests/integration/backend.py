"""A test backend for portier's integration suite.

One thread per TCP connection, HTTP/1.1 with keep-alive, bound to
127.0.0.1:0. Every request head it receives is recorded (method, target,
headers, body length, connection id) in the backend's OWN log, so a test can
prove "the backend saw nothing" without trusting the proxy.

Endpoints (the path, query ignored unless said):
  /bytes/N        N bytes of the pattern (byte i == i % 251), Content-Length
  /chunked/N      the same bytes, Transfer-Encoding: chunked, several chunks
  /trailers/N     like /chunked/N, then trailer fields X-Pattern-Sha256 (of the
                  body) and X-Pattern-Length (announced in a Trailer header)
  /upload         consumes the body while hashing it; answers like echo
  /slow?ms=M      waits M ms, then answers like echo
  /status/N       answers with status N
  /ws             WebSocket echo (RFC 6455, done here by hand)
  anything else   echo: JSON with backend, method, target, path, query,
                  version, headers, body_len, body_sha256, conn, seq
Every response carries X-Backend: NAME and X-Backend-Conn: ID.
A chunked request body's trailer fields are recorded as "trailers" (a list of
[name, value]) in that request's record.

mode="blackhole": accepts, records the head, never answers.

Run as a subprocess: python3 backend.py --name NAME [--mode blackhole]
prints {"port": N} and then one JSON line per request on stdout.
"""

import argparse
import base64
import hashlib
import json
import signal
import socket
import struct
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PATTERN_PERIOD = 251
_BLOCK = bytes(i % PATTERN_PERIOD for i in range(PATTERN_PERIOD * 262))
_MAX_SLICE = PATTERN_PERIOD * 261
HEAD_LIMIT = 1 << 20
_sha_cache = {}


def pattern_chunks(n, chunk=64 * 1024):
    """pattern_chunks: yield n bytes of the pattern in pieces of <= chunk bytes."""
    off = 0
    chunk = max(1, min(chunk, _MAX_SLICE))
    while off < n:
        k = min(chunk, n - off)
        s = off % PATTERN_PERIOD
        yield _BLOCK[s:s + k]
        off += k


def pattern_sha256(n):
    """pattern_sha256: hex sha256 of the first n pattern bytes (cached)."""
    if n not in _sha_cache:
        h = hashlib.sha256()
        for piece in pattern_chunks(n, _MAX_SLICE):
            h.update(piece)
        _sha_cache[n] = h.hexdigest()
    return _sha_cache[n]


def closed_port():
    """closed_port: a loopback TCP port nothing listens on (bound, then closed)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class _Reader:
    """_Reader: buffered reads from a socket; EOFError when the peer closes."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def _fill(self):
        data = self.sock.recv(256 * 1024)
        if not data:
            raise EOFError("peer closed")
        self.buf += data

    def read_until(self, delim, limit):
        start = 0
        while True:
            i = self.buf.find(delim, start)
            if i >= 0:
                end = i + len(delim)
                out = bytes(self.buf[:end])
                del self.buf[:end]
                return out
            if len(self.buf) > limit:
                raise ValueError("line too long")
            start = max(0, len(self.buf) - len(delim) + 1)
            self._fill()

    def read_some(self, n):
        if not self.buf:
            self._fill()
        k = min(n, len(self.buf))
        out = bytes(self.buf[:k])
        del self.buf[:k]
        return out

    def read_exact(self, n):
        parts = []
        while n > 0:
            part = self.read_some(n)
            parts.append(part)
            n -= len(part)
        return b"".join(parts)


class _BadRequest(Exception):
    pass


def _header(headers, name):
    """_header: all values of header `name` (case-insensitive), joined by ', '."""
    vals = [v for k, v in headers if k.lower() == name]
    return ", ".join(vals) if vals else None


class Backend:
    """Backend: a threaded HTTP/1.1 test server; see the module docstring."""

    def __init__(self, name, mode="normal", also_ipv6=False, on_record=None):
        self.name = name
        self.mode = mode
        self.also_ipv6 = also_ipv6
        self.on_record = on_record
        self.port = None
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.requests = []
        self.connections = 0
        self.ws_messages = 0
        self._stop = threading.Event()
        self._listeners = []
        self._open = set()
        self._threads = []

    # -- lifecycle ---------------------------------------------------------
    def start(self):
        for _ in range(20):
            v4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            v4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            v4.bind(("127.0.0.1", 0))
            port = v4.getsockname()[1]
            socks = [v4]
            if self.also_ipv6:
                try:
                    v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                    v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    v6.bind(("::1", port))
                    socks.append(v6)
                except OSError:
                    v4.close()
                    continue
            break
        else:
            raise RuntimeError("could not bind a backend port")
        for s in socks:
            s.listen(512)
            t = threading.Thread(target=self._accept_loop, args=(s,), daemon=True,
                                 name=f"backend-{self.name}-accept")
            t.start()
            self._threads.append(t)
        self._listeners = socks
        self.port = port
        return self

    def stop(self):
        self._stop.set()
        for s in self._listeners:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        with self.lock:
            conns = list(self._open)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=5)

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    # -- queries for tests ---------------------------------------------------
    def seen(self, marker):
        """seen: the recorded requests whose target contains marker."""
        with self.lock:
            return [r for r in self.requests if marker in r["target"]]

    def conn_ids(self, marker):
        """conn_ids: distinct connection ids that carried requests with marker."""
        return {r["conn"] for r in self.seen(marker)}

    def wait_for(self, predicate, timeout=10.0):
        """wait_for: block until predicate(self) is true; False at the deadline."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 0.2))
        return True

    # -- connections -----------------------------------------------------------
    def _accept_loop(self, lsock):
        while not self._stop.is_set():
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                cid = self.connections
                self._open.add(conn)
                self.changed.notify_all()
            t = threading.Thread(target=self._serve, args=(conn, cid), daemon=True,
                                 name=f"backend-{self.name}-{cid}")
            t.start()

    def _serve(self, conn, cid):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(300)
        reader = _Reader(conn)
        try:
            while not self._stop.is_set():
                if not self._serve_one(conn, reader, cid):
                    break
        except (EOFError, OSError, ValueError, _BadRequest):
            pass
        finally:
            with self.lock:
                self._open.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def _record(self, rec):
        with self.changed:
            rec["seq"] = len(self.requests) + 1
            self.requests.append(rec)
            self.changed.notify_all()
        if self.on_record:
            self.on_record(rec)

    def _serve_one(self, conn, reader, cid):
        """_serve_one: one request/response; False when the connection must end."""
        head = reader.read_until(b"\r\n\r\n", HEAD_LIMIT)
        lines = head[:-4].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) == 3:
            method, target, version = parts
        else:  # malformed: keep the whole line so markers are still found
            method, target, version = "?", lines[0], "?"
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name, value.strip(" \t")))
        url = urlsplit(target)
        rec = {"backend": self.name, "conn": cid, "method": method, "target": target,
               "path": url.path, "query": url.query, "version": version,
               "headers": headers, "body_len": None, "body_sha256": None,
               "time": time.time()}
        self._record(rec)
        if len(parts) != 3 or not version.startswith("HTTP/1."):
            raise _BadRequest(lines[0])

        if self.mode == "blackhole":
            self._stop.wait()
            return False

        if url.path == "/ws" and (_header(headers, "upgrade") or "").lower() == "websocket":
            self._websocket(conn, reader, headers)
            return False

        if (_header(headers, "expect") or "").lower() == "100-continue":
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        trailers = []
        n, digest = self._consume_body(reader, headers, trailers)
        with self.changed:
            rec["body_len"], rec["body_sha256"] = n, digest
            if trailers:
                rec["trailers"] = trailers
            self.changed.notify_all()

        conn_hdr = (_header(headers, "connection") or "").lower()
        keep = "close" not in conn_hdr and (version == "HTTP/1.1" or "keep-alive" in conn_hdr)
        self._respond(conn, rec, url, keep)
        return keep

    def _consume_body(self, reader, headers, trailers=None):
        """_consume_body: read the body (chunked or Content-Length) while hashing it;
        a chunked body's trailer fields go to trailers (a list) when given."""
        h = hashlib.sha256()
        total = 0
        te = (_header(headers, "transfer-encoding") or "").lower()
        if "chunked" in te:
            while True:
                line = reader.read_until(b"\r\n", 4096)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        line = reader.read_until(b"\r\n", 65536)
                        if line == b"\r\n":
                            break
                        if trailers is not None:
                            name, _, value = line[:-2].decode("latin-1").partition(":")
                            trailers.append([name, value.strip(" \t")])
                    break
                left = size
                while left:
                    piece = reader.read_some(left)
                    h.update(piece)
                    left -= len(piece)
                total += size
                if reader.read_exact(2) != b"\r\n":
                    raise _BadRequest("chunk not followed by CRLF")
            return total, h.hexdigest()
        cl = _header(headers, "content-length")
        left = int(cl) if cl else 0
        while left:
            piece = reader.read_some(min(left, 256 * 1024))
            h.update(piece)
            left -= len(piece)
            total += len(piece)
        return total, h.hexdigest()

    # -- responses ---------------------------------------------------------------
    def _head(self, status, headers, keep, rec):
        reason = {200: "OK", 204: "No Content", 304: "Not Modified", 404: "Not Found"}
        out = [f"HTTP/1.1 {status} {reason.get(status, 'Status')}",
               f"X-Backend: {self.name}", f"X-Backend-Conn: {rec['conn']}",
               f"Connection: {'keep-alive' if keep else 'close'}"]
        out += [f"{k}: {v}" for k, v in headers]
        return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")

    def _respond(self, conn, rec, url, keep):
        method, path = rec["method"], url.path
        query = parse_qs(url.query)
        send_body = method != "HEAD"
        if path.startswith("/trailers/"):
            n = int(path.rsplit("/", 1)[1])
            conn.sendall(self._head(200, [("Content-Type", "application/octet-stream"),
                                          ("Transfer-Encoding", "chunked"),
                                          ("Trailer", "X-Pattern-Sha256, X-Pattern-Length")],
                                    keep, rec))
            if send_body:
                self._send_chunked(conn, n, trailers=[("X-Pattern-Sha256", pattern_sha256(n)),
                                                      ("X-Pattern-Length", n)])
            return
        if path.startswith("/bytes/") or path.startswith("/chunked/"):
            n = int(path.rsplit("/", 1)[1])
            if path.startswith("/bytes/"):
                conn.sendall(self._head(200, [("Content-Type", "application/octet-stream"),
                                              ("Content-Length", n)], keep, rec))
                if send_body:
                    for piece in pattern_chunks(n):
                        conn.sendall(piece)
            else:
                conn.sendall(self._head(200, [("Content-Type", "application/octet-stream"),
                                              ("Transfer-Encoding", "chunked")], keep, rec))
                if send_body:
                    self._send_chunked(conn, n)
            return
        status = 200
        if path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
        if path == "/slow":
            self._stop.wait(int(query.get("ms", ["1000"])[0]) / 1000.0)
        if status in (204, 304):
            conn.sendall(self._head(status, [], keep, rec))
            return
        body = json.dumps({k: rec[k] for k in ("backend", "conn", "seq", "method", "target",
                                               "path", "query", "version", "headers",
                                               "body_len", "body_sha256")}).encode()
        extra = [("Set-Cookie", c) for c in query.get("set_cookie", [])]
        conn.sendall(self._head(status, [("Content-Type", "application/json"),
                                         ("Content-Length", len(body))] + extra, keep, rec)
                     + (body if send_body else b""))

    @staticmethod
    def _send_chunked(conn, n, trailers=()):
        """_send_chunked: n pattern bytes in chunks of growing size (1, 10, 100, ...),
        then the trailer fields given."""
        sizes = [1, 10, 100, 1000, 10000]
        off = 0
        i = 0
        while off < n:
            k = min(sizes[i] if i < len(sizes) else 60000, n - off)
            i += 1
            s = off % PATTERN_PERIOD
            piece = _BLOCK[s:s + k]
            conn.sendall(b"%x\r\n" % k + piece + b"\r\n")
            off += k
        tail = "".join(f"{k}: {v}\r\n" for k, v in trailers)
        conn.sendall(b"0\r\n" + tail.encode("latin-1") + b"\r\n")

    # -- WebSocket -----------------------------------------------------------------
    def _websocket(self, conn, reader, headers):
        key = (_header(headers, "sec-websocket-key") or "").encode()
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
        conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n"
                      "X-Backend: " + self.name + "\r\n\r\n").encode())
        message, msg_op = [], None
        while True:
            fin, op, payload = self._ws_read_frame(reader)
            if op == 8:
                conn.sendall(self._ws_frame(8, payload[:2]))
                return
            if op == 9:
                conn.sendall(self._ws_frame(10, payload))
                continue
            if op == 10:
                continue
            if op in (1, 2):
                message, msg_op = [payload], op
            elif op == 0:
                message.append(payload)
            if fin and msg_op is not None:
                conn.sendall(self._ws_frame(msg_op, b"".join(message)))
                with self.changed:
                    self.ws_messages += 1
                message, msg_op = [], None

    @staticmethod
    def _ws_read_frame(reader):
        b0, b1 = reader.read_exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", reader.read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", reader.read_exact(8))[0]
        mask = reader.read_exact(4) if b1 & 0x80 else None
        data = reader.read_exact(n)
        if mask and n:
            m = (mask * (n // 4 + 1))[:n]
            data = (int.from_bytes(data, "big") ^ int.from_bytes(m, "big")).to_bytes(n, "big")
        return bool(b0 & 0x80), b0 & 0x0F, data

    @staticmethod
    def _ws_frame(op, payload):
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | op, n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | op, 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | op, 127, n)
        return head + payload


def main():
    ap = argparse.ArgumentParser(description="portier test backend")
    ap.add_argument("--name", default="backend")
    ap.add_argument("--mode", default="normal", choices=["normal", "blackhole"])
    args = ap.parse_args()
    out_lock = threading.Lock()

    def emit(rec):
        with out_lock:
            print(json.dumps(rec), flush=True)

    b = Backend(args.name, args.mode, on_record=emit).start()
    print(json.dumps({"port": b.port}), flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    b.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
