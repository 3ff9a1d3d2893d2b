"""PROXY protocol (v1 and v2) on listeners that enable it: the client address
a trusted load balancer reports becomes the request's client (X-Forwarded-For,
X-Real-IP, access log), over HTTP and before the TLS handshake; untrusted
peers, garbage and silence are closed without an answer; listeners without
proxy_protocol treat a PROXY line as a bad request.

The edge listens on two HTTP and two HTTPS addresses: the first of each with
proxy_protocol, the second without. trusted_proxies is 127.0.0.1/32 only, so
a client bound to 127.0.0.2 is an untrusted peer.
"""

import ipaddress
import json
import re
import signal
import socket
import ssl
import struct
import time

import pytest

from harness import LISTEN_RE, wait_until
from httpclient import (LOOPBACK, StreamReader, http, https, raw_exchange, read_until_close,
                        tls_context)

HOST = "pp.test"
UNTRUSTED = "127.0.0.2"
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
CLIENT_HEADER_S = 1.0


def v1(src, dst, sport, dport):
    """v1: a PROXY v1 line for TCP4 or TCP6 (by the source's family)."""
    fam = "TCP6" if ipaddress.ip_address(src).version == 6 else "TCP4"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src=None, dst=None, sport=0, dport=0, local=False, tlvs=b""):
    """v2: a PROXY v2 header over TCP (LOCAL with no addresses when local)."""
    if local:
        return V2_SIG + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    fam = 0x11 if s.version == 4 else 0x21
    body = s.packed + d.packed + struct.pack("!HH", sport, dport) + tlvs
    return V2_SIG + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


def tlv(kind, value):
    return bytes([kind]) + struct.pack("!H", len(value)) + value


def request(path, close=True):
    return (f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n"
            f"{'Connection: close' if close else 'Connection: keep-alive'}\r\n\r\n").encode()


def listener_ports(p):
    """listener_ports: {"http": [ports], "https": [ports]} in config order."""
    ports = {"http": [], "https": []}
    for line in p.snapshot_lines():
        m = LISTEN_RE.search(line)
        if m:
            ports[m.group(1)].append(int(m.group(3)))
    return ports


@pytest.fixture(scope="module")
def edge(module_portier_factory, module_backend_factory):
    b = module_backend_factory("pp-backend")
    tenants = {"pp": {"routes": [{"rule": f"Host(`{HOST}`)", "service": "web"}],
                      "services": {"web": {"backends": [b.address]}},
                      "https_redirect": False}}
    p = module_portier_factory(
        tenants,
        listen={"http": [{"address": "127.0.0.1:0", "proxy_protocol": True}, "127.0.0.1:0"],
                "https": [{"address": "127.0.0.1:0", "proxy_protocol": True},
                          {"address": "127.0.0.1:0"}]},
        trusted_proxies=["127.0.0.1/32"],
        timeouts={"client_header": f"{int(CLIENT_HEADER_S)}s"})
    ports = listener_ports(p)
    assert len(ports["http"]) == 2 and len(ports["https"]) == 2, ports
    return p, b, ports


def connect(port, source=None, timeout=5):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(timeout)
    if source:
        sock.bind((source, 0))
    sock.connect((LOOPBACK, port))
    return sock


def send_read(port, *pieces, source=None, pause=0.0, deadline_s=5.0):
    """send_read: send pieces (pausing between them), read until the close."""
    sock = connect(port, source)
    try:
        for i, piece in enumerate(pieces):
            if i and pause:
                time.sleep(pause)
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
        return read_until_close(sock, deadline_s)
    finally:
        sock.close()


def echo(data):
    """echo: status and the backend's echo of the one response in data."""
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    m = re.search(rb"(?im)^x-request-id:\s*(\S+)", head)
    return status, (json.loads(body) if status == 200 else None), \
        (m.group(1).decode() if m else None)


def header(rec, name):
    vals = [v for k, v in rec["headers"] if k.lower() == name.lower()]
    return ", ".join(vals) if vals else None


def entry_for(p, request_id, timeout=5):
    """entry_for: the access log line of request_id (written asynchronously)."""
    assert request_id, "response without X-Request-Id"
    hits = wait_until(lambda: [e for e in p.access_entries()
                               if e.get("request_id") == request_id] or None,
                      timeout, what=f"access log line for {request_id}")
    assert len(hits) == 1, hits
    return hits[0]


def check_client(p, data, client):
    """check_client: a 200 whose request reached the backend (and the access
    log) from `client`."""
    status, rec, rid = echo(data)
    assert status == 200, data[:300]
    assert header(rec, "X-Forwarded-For") == client, rec["headers"]
    assert header(rec, "X-Real-IP") == client, rec["headers"]
    assert entry_for(p, rid)["client_ip"] == client
    return rec


# -- a trusted proxy with a good header ------------------------------------------

def test_v1_over_http(edge, marker):
    """A v1 header and the request in one segment: the backend and the access
    log see the header's source; nothing of the request is lost."""
    p, _, ports = edge
    res = send_read(ports["http"][0], v1("203.0.113.7", "127.0.0.1", 40000, 80) + request(marker))
    assert res.closed, res
    check_client(p, res.data, "203.0.113.7")


def test_v1_in_pieces_then_keepalive(edge, marker):
    """A v1 header arriving in pieces, then two requests on the connection:
    both carry the header's source (IPv6 here)."""
    p, b, ports = edge
    hdr = v1("2001:db8::42", "2001:db8::1", 5555, 443)
    sock = connect(ports["http"][0])
    try:
        for piece in (hdr[:3], hdr[3:17], hdr[17:-1], hdr[-1:]):
            sock.sendall(piece)
            time.sleep(0.05)
        reader = StreamReader(sock)
        for i in range(2):
            sock.sendall(request(f"{marker}/{i}", close=False))
            r = reader.read_response()
            assert r.status == 200, r.status
            rec = json.loads(r.body)
            assert header(rec, "X-Forwarded-For") == "2001:db8::42", rec["headers"]
            assert entry_for(p, r.header("x-request-id"))["client_ip"] == "2001:db8::42"
    finally:
        sock.close()
    assert len(b.seen(marker)) == 2


def test_v2_ipv4_with_tlvs(edge, marker):
    """v2 PROXY over IPv4 with TLVs (ALPN, authority, padding) skipped."""
    p, _, ports = edge
    hdr = v2("198.51.100.23", "127.0.0.1", 61000, 80,
             tlvs=tlv(0x01, b"h2") + tlv(0x02, b"pp.test") + tlv(0x04, b"\0" * 20))
    res = send_read(ports["http"][0], hdr + request(marker))
    check_client(p, res.data, "198.51.100.23")


def test_v2_ipv6(edge, marker):
    p, _, ports = edge
    res = send_read(ports["http"][0], v2("2001:db8::7", "2001:db8::1", 1, 80), request(marker),
                    pause=0.05)
    check_client(p, res.data, "2001:db8::7")


def test_v2_local_keeps_socket_address(edge, marker):
    """v2 LOCAL (a balancer's own health check): the socket's address is used."""
    p, _, ports = edge
    res = send_read(ports["http"][0], v2(local=True) + request(marker))
    check_client(p, res.data, "127.0.0.1")


def test_v1_unknown_keeps_socket_address(edge, marker):
    p, _, ports = edge
    res = send_read(ports["http"][0], b"PROXY UNKNOWN\r\n" + request(marker))
    rec = check_client(p, res.data, "127.0.0.1")
    assert header(rec, "X-Forwarded-Port") == str(ports["http"][0])


@pytest.mark.parametrize("version", [1, 2])
def test_header_then_tls(edge, marker, version):
    """On the HTTPS listener the header comes before the ClientHello; SNI
    routing works and the client address is the header's."""
    p, _, ports = edge
    hdr = (v1("192.0.2.99", "127.0.0.1", 50000, 443) if version == 1
           else v2("192.0.2.99", "127.0.0.1", 50000, 443))
    sock = connect(ports["https"][0])
    try:
        sock.sendall(hdr)
        sock = tls_context(p.ca_file).wrap_socket(sock, server_hostname=HOST)
        sock.sendall(request(marker))
        res = read_until_close(sock, 5)
    finally:
        sock.close()
    rec = check_client(p, res.data, "192.0.2.99")
    assert header(rec, "X-Forwarded-Proto") == "https"
    assert header(rec, "X-Forwarded-Port") == "443", "the port the client reached on the proxy"


# -- refused ----------------------------------------------------------------------

def test_untrusted_peer_closed(edge, marker):
    """A peer outside trusted_proxies is closed without a byte of answer, even
    with a well-formed header; the backend sees nothing."""
    p, b, ports = edge
    res = send_read(ports["http"][0], v1("10.9.8.7", "127.0.0.1", 1234, 80) + request(marker),
                    source=UNTRUSTED)
    assert res.closed and res.data == b"", res
    assert b.seen(marker) == []


def test_untrusted_peer_closed_before_tls(edge, marker):
    """On the HTTPS listener too: after a well-formed header, the TLS handshake
    finds the connection closed."""
    p, b, ports = edge
    sock = connect(ports["https"][0], source=UNTRUSTED)
    try:
        sock.sendall(v2("10.9.8.7", "127.0.0.1", 1234, 443))
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            sock = tls_context(p.ca_file).wrap_socket(sock, server_hostname=HOST)
            sock.sendall(request(marker))
            sock.recv(1)
    finally:
        sock.close()
    assert b.seen(marker) == []


def test_untrusted_peer_fine_without_proxy_protocol(edge, marker):
    """The same peer on a listener without proxy_protocol is served as itself."""
    p, _, ports = edge
    res = send_read(ports["http"][1], request(marker), source=UNTRUSTED)
    check_client(p, res.data, UNTRUSTED)


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\nHost: pp.test\r\n\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 080 1\r\nGET / HTTP/1.1\r\nHost: pp.test\r\n\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
    b"PROXY UNKNOWN " + b"x" * 120,
    V2_SIG + b"\x11\x11\x00\x0c" + b"\0" * 12,
    b"\x16\x03\x01\x00\xa0\x01\x00\x00\x9c\x03\x03",
], ids=["http-request", "v1-leading-zero", "v1-port-range", "v1-no-crlf", "v2-version-1",
        "tls-client-hello"])
def test_trusted_garbage_closed(edge, data):
    """A trusted peer that starts with anything but a valid header is closed
    at once, without an answer (long before client_header)."""
    _, _, ports = edge
    t0 = time.monotonic()
    res = send_read(ports["http"][0], data)
    assert res.closed and res.data == b"", res
    assert time.monotonic() - t0 < CLIENT_HEADER_S * 0.8, res


@pytest.mark.parametrize("data", [b"", b"PROXY TCP4 1.2.", V2_SIG + b"\x21\x11\x00\x0c\x01"],
                         ids=["nothing", "half-v1", "half-v2"])
def test_trusted_silence_closed_after_client_header(edge, data):
    """A trusted peer that sends no (whole) header is closed after
    timeouts.client_header."""
    _, _, ports = edge
    t0 = time.monotonic()
    res = send_read(ports["https"][0], data, deadline_s=CLIENT_HEADER_S + 5)
    elapsed = time.monotonic() - t0
    assert res.closed and res.data == b"", res
    assert CLIENT_HEADER_S * 0.8 <= elapsed < CLIENT_HEADER_S + 4, elapsed


# -- listeners without proxy_protocol ------------------------------------------------

def test_proxy_line_without_proxy_protocol_is_400(edge, marker):
    p, b, ports = edge
    res = raw_exchange(ports["http"][1],
                       v1("203.0.113.7", "127.0.0.1", 1, 80) + request(marker))
    assert res.status == 400, res
    assert b.seen(marker) == []


def test_plain_listeners_still_work(edge, marker):
    p, _, ports = edge
    r = http(ports["http"][1], HOST, marker)
    assert r.status == 200, r
    assert header(r.json(), "X-Forwarded-For") == "127.0.0.1"
    r = https(ports["https"][1], HOST, p.ca_file, marker)
    assert r.status == 200, r
    assert header(r.json(), "X-Real-IP") == "127.0.0.1"


# -- lifecycle ------------------------------------------------------------------------

def test_drain_closes_waiting_connections(portier_factory, backend_factory):
    """SIGTERM closes connections still waiting for their header at once:
    portier exits 0 well before client_header or the shutdown grace."""
    b = backend_factory("pp-drain")
    p = portier_factory({"pp": {"hosts": [HOST], "backends": [b.address]}},
                        listen={"http": {"address": "127.0.0.1:0", "proxy_protocol": True}},
                        trusted_proxies=["127.0.0.1/32"],
                        timeouts={"client_header": "30s", "shutdown": "20s"})
    socks = [connect(p.http_port, timeout=10) for _ in range(3)]
    try:
        socks[0].sendall(b"PROXY TCP4 1.2.")
        socks[1].sendall(V2_SIG[:7])
        time.sleep(0.3)  # let the workers accept them
        t0 = time.monotonic()
        p.signal(signal.SIGTERM)
        for s in socks:
            res = read_until_close(s, 10)
            assert res.closed and res.data == b"", res
        assert p.wait_exit(10) == 0
        assert time.monotonic() - t0 < 8
    finally:
        for s in socks:
            s.close()
