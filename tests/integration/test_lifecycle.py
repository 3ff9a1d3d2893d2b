"""Lifecycle: SIGTERM drains in-flight requests and stops accepting; SIGHUP
reloads the tenants file, and a broken file leaves the running table alone.
"""

import re
import signal
import socket
import subprocess
import ssl
import threading
import time

from h2client import H2Client
from harness import wait_until
from httpclient import PinnedHTTPSConnection, exchange, http, https, tls_context


def tenant(host, backend):
    return {"hosts": [host], "backends": [backend.address]}


def connection_refused(port, ca_file=None, sni=None):
    """connection_refused: True if a new connection to port is refused or
    dropped (reset/EOF during the TLS handshake when sni is given); False if
    it is accepted (and, with sni, the handshake completes)."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=0.5)
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    except socket.timeout:
        return False
    try:
        if sni is None:
            return False
        try:
            sock = tls_context(ca_file).wrap_socket(sock, server_hostname=sni)
        except (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError):
            return True
        except (socket.timeout, ssl.SSLError):
            return False
        return False
    finally:
        sock.close()


def test_sigterm_drains_in_flight_and_refuses_new(portier_factory, backend_factory, marker):
    """SIGTERM during a 1.5 s request: new connections are refused while the
    request is still in flight, the request completes with 200, exit 0."""
    b = backend_factory("life")
    p = portier_factory({"life": tenant("life.test", b)}, timeouts={"shutdown": "10s"})
    ca = p.ca_file
    tag = marker.strip("/")
    result = {}

    def slow():
        try:
            result["r"] = https(p.https_port, "life.test", ca, f"/slow?ms=1500&tag={tag}",
                                timeout=15)
        except Exception as e:  # reported by the assertion below
            result["error"] = e

    t = threading.Thread(target=slow, daemon=True)
    t.start()
    assert b.wait_for(lambda be: be.seen(tag), 5), \
        f"slow request never reached the backend: {result}"
    p.signal(signal.SIGTERM)

    deadline = time.monotonic() + 5
    refused = None
    while time.monotonic() < deadline:
        https_refused = connection_refused(p.https_port, ca, "life.test")
        http_refused = connection_refused(p.http_port)
        if https_refused and http_refused:
            refused = (p.alive(), t.is_alive())
            break
        time.sleep(0.02)
    assert refused is not None, "new connections still accepted 5 s after SIGTERM"
    assert refused[1], "listeners closed only after the in-flight request ended"

    t.join(15)
    assert not t.is_alive(), "in-flight request did not complete"
    assert "error" not in result, f"in-flight request failed: {result.get('error')!r}"
    r = result["r"]
    assert r.status == 200 and tag in r.json()["target"], r
    assert p.wait_exit(15) is not None, "portier did not exit after draining"
    assert p.stop() == 0


def server_unread(server_port, client_port):
    """server_unread: bytes the kernel holds unread for portier on the loopback
    connection between the two ports (/proc/net/tcp), None if not found."""
    want = (f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}")
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if (fields[1], fields[2]) == want:
                return int(fields[4].split(":")[1], 16)
    return None


def test_sigterm_closes_a_fresh_tls_connection_at_once(portier_factory, backend_factory):
    """A TLS connection that finished its handshake and asked nothing is closed
    at SIGTERM with a close_notify (its session ticket, held for a first
    answer, goes with it), not left open until timeouts.shutdown."""
    b = backend_factory("fresh")
    p = portier_factory({"fresh": tenant("fresh.test", b)},
                        timeouts={"shutdown": "60s", "client_header": "60s"})
    ctx = tls_context(p.ca_file)
    ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF  # an end without close_notify raises
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", p.https_port), timeout=10),
                           server_hostname="fresh.test", suppress_ragged_eofs=False)
    try:
        # The client is done once its Finished is sent; portier, once it has
        # read it (nothing tells the client: the ticket waits, held).
        wait_until(lambda: server_unread(p.https_port, sock.getsockname()[1]) == 0, 10,
                   what="portier reading the client's Finished")
        p.signal(signal.SIGTERM)
        assert sock.recv(1) == b"", "expected a close_notify"
        assert sock.session is not None and sock.session.has_ticket, "no session ticket came"
    finally:
        sock.close()
    assert p.wait_exit(10) == 0, "portier still draining a connection that had nothing to do"


def test_sighup_applies_tenants_file(portier_factory, backend_factory, marker):
    """Editing the tenants file and sending SIGHUP adds a host; an open
    keep-alive connection survives the reload."""
    b1, b2 = backend_factory("one"), backend_factory("two")
    p = portier_factory({"one": tenant("one.test", b1)})
    conn = PinnedHTTPSConnection("one.test", p.https_port, p.ca_file)
    try:
        r = exchange(conn, "GET", f"{marker}/before")
        assert r.status == 200 and r.header("X-Backend") == "one", r
        sock = conn.sock
        assert http(p.http_port, "two.test", marker).status == 404

        p.write_tenants({"one": tenant("one.test", b1), "two": tenant("two.test", b2)})
        ok, line = p.reload()
        assert ok, line
        r = https(p.https_port, "two.test", p.ca_file, f"{marker}/new")
        assert r.status == 200 and r.header("X-Backend") == "two", r

        r = exchange(conn, "GET", f"{marker}/after")
        assert r.status == 200 and r.header("X-Backend") == "one", r
        assert conn.sock is sock, "keep-alive connection was closed by the reload"
    finally:
        conn.close()


def test_sighup_broken_file_keeps_old_table(portier_factory, backend_factory, marker):
    """A tenants file that does not parse: 'reload failed', and the running
    table keeps serving; a later good file applies (and can remove a host)."""
    b1, b2 = backend_factory("one"), backend_factory("two")
    p = portier_factory({"one": tenant("one.test", b1), "two": tenant("two.test", b2)})

    p.write_tenants(raw='{"tenants": {"one": ')
    ok, line = p.reload()
    assert not ok, f"broken tenants file accepted: {line}"
    assert p.alive()
    for host, name in (("one.test", "one"), ("two.test", "two")):
        r = https(p.https_port, host, p.ca_file, marker)
        assert r.status == 200 and r.header("X-Backend") == name, (host, r)

    p.write_tenants({"one": tenant("one.test", b1)})
    ok, line = p.reload()
    assert ok, line
    assert https(p.https_port, "one.test", p.ca_file, marker).status == 200
    assert http(p.http_port, "two.test", marker).status == 404


def test_reload_generation_increases(portier_factory, backend_factory):
    """Each successful reload reports a larger generation number."""
    b1 = backend_factory("one")
    p = portier_factory({"one": tenant("one.test", b1)})
    gens = []
    for _ in range(2):
        ok, line = p.reload()
        assert ok, line
        gens.append(int(re.search(r"reload: generation (\d+)", line).group(1)))
    assert gens[1] > gens[0], gens


def test_shutdown_timeout_stops_workers(portier_factory, backend_factory, marker):
    """Requests still in flight (HTTP/1.1 and HTTP/2) when timeouts.shutdown
    runs out do not hold the exit: the main thread tells each worker to stop,
    portier exits well before the 20 s requests would have ended, and what
    was still open is freed (the sanitizer build checks for leaks)."""
    b = backend_factory("stop")
    p = portier_factory({"stop": tenant("stop.test", b)}, timeouts={"shutdown": "1s"})
    tag = marker.strip("/")
    t = threading.Thread(daemon=True, target=lambda: _ignore_errors(
        lambda: https(p.https_port, "stop.test", p.ca_file, f"/slow?ms=20000&tag={tag}",
                      timeout=30)))
    t.start()
    h2 = H2Client.open(p.https_port, "stop.test", p.ca_file)
    h2.request(f"/slow?ms=20000&tag={tag}-h2")
    h2.flush()
    assert b.wait_for(lambda be: be.seen(tag) and be.seen(f"{tag}-h2"), 5), \
        "slow requests never reached the backend"
    started = time.monotonic()
    p.signal(signal.SIGTERM)
    rc = p.wait_exit(10)
    assert rc is not None, "portier still running 10 s after SIGTERM with a 1 s shutdown timeout"
    assert time.monotonic() - started < 10
    assert "timeout reached" in p.stderr_text(tail=100000), p.stderr_text()
    h2.close()


def _ignore_errors(fn):
    try:
        fn()
    except Exception:  # the connection is cut by the forced stop: expected
        pass


def test_sigint_exits_zero(portier_factory):
    """SIGINT stops portier like SIGTERM: exit status 0."""
    p = portier_factory({})
    p.signal(signal.SIGINT)
    assert p.wait_exit(15) == 0, p.stderr_text()


def test_listener_in_use_exits_one_without_crashing(portier_factory):
    """A listen address another socket holds (without SO_REUSEPORT): portier
    says which listener failed and exits 1, rather than crashing while it
    stops workers that never started."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        p = portier_factory({}, start=False,
                            listen={"http": f"127.0.0.1:{port}", "https": "127.0.0.1:0"})
        p.write()
        r = subprocess.run([p.binary, "-c", str(p.config_file)], capture_output=True, text=True,
                           timeout=30, cwd=p.dir)
        assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
        assert f"127.0.0.1:{port}" in r.stderr or "listen http" in r.stderr, r.stderr[-2000:]
        assert "AddressSanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    finally:
        holder.close()
