"""portier's built-in ACME client, end to end against pebble (DESIGN.md section 6).

pebble runs on loopback through the shared testbed (acme_testbed.py); its
validator connects to portier's listeners: portier's `listen` is
{"http": 127.0.0.1:PEBBLE_HTTP_PORT, "https": 127.0.0.1:PEBBLE_TLS_PORT}, and
every name resolves to 127.0.0.1. Certificates are verified against the issuing
root of the pebble run that issued them (a new one at every pebble start).

Contract exercised: static `acme` {directory, ca_bundle, email, challenges,
on_demand, on_demand_timeout, max_concurrent_orders, max_orders_per_minute,
eab}; tenants with "tls": "acme"; on-demand issuance inside the first handshake
(concurrent handshakes share one order, other hosts are not delayed); the store
STATE_DIR/certs/HOST/{cert.pem (leaf first), key.pem 0600, meta.json} and
STATE_DIR/acme/account.key 0600, reused across restarts without the CA;
GET /v1/certs {"certs": [{host, source, issuer, not_after, state, last_error,
next_attempt, failures}]}; POST /v1/certs/HOST/renew -> 202; per-host backoff
after a failed order (refused handshakes, no CA traffic); background renewal
when a third of the lifetime remains; unknown SNI and non-exact hosts order
nothing; `portierctl cert ls` / `cert renew`.

Orders are counted in pebble's log (`Added order "ID" to the db`, one per order
created; `Pulled a task ... Value:"HOST"`, one per challenge validated); while
pebble is down, a CountingListener on its ACME port counts the connections that
would have reached it. See acme_testbed.py.
"""

import json
import os
import re
import socket
import ssl
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from acme_testbed import CountingListener, PebbleFactory, eab_pair, free_port
from controlclient import ControlClient, socket_of
from httpclient import LOOPBACK, PinnedHTTPSConnection, StreamReader, curl, exchange, https

ON_DEMAND = 30          # on_demand_timeout used unless a test sets a shorter one
ISSUE_S = ON_DEMAND + 15  # client-side bound for one on-demand issuance
PROMPT_S = 2.0          # a refusal "at once" (sanitizer builds included)
PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


# -- fixtures ---------------------------------------------------------------------------

@pytest.fixture
def pebble_factory(tmp_path_factory):
    """pebble_factory(**PEBBLE_env): a started pebble of its own for this test;
    pebble-down.sh for each at teardown (its log tail printed, shown on failure)."""
    f = PebbleFactory(tmp_path_factory)
    yield f
    f.close()


@pytest.fixture(scope="module")
def module_pebble(tmp_path_factory):
    """module_pebble: one pebble with the testbed's defaults for the tests that
    neither stop it nor change its settings (they run one portier at a time on
    its VA ports)."""
    f = PebbleFactory(tmp_path_factory, "pebble-shared")
    try:
        yield f()
    finally:
        f.close()


@pytest.fixture
def shared_pebble(module_pebble):
    """shared_pebble: module_pebble; prints what it logged during this test
    (pytest shows it when the test failed)."""
    mark = len(module_pebble.log_text())
    yield module_pebble
    lines = module_pebble.log_text()[mark:].splitlines()
    print(f"--- shared pebble log during this test (last 60 of {len(lines)} lines)\n"
          + "\n".join(lines[-60:]))


# -- helpers ------------------------------------------------------------------------------

def acme_tenant(hosts, backend, tls="acme"):
    """acme_tenant: one Host() route per host to service s (backend), tls mode."""
    if isinstance(hosts, str):
        hosts = [hosts]
    return {"routes": [{"rule": f"Host(`{h}`)", "service": "s"} for h in hosts],
            "services": {"s": {"backends": [backend.address]}}, "tls": tls}


def acme_edge(portier_factory, pb, tenants, listen=None, acme=None, **config):
    """acme_edge: a started portier using pebble pb as its CA, listening on
    pb's VA ports unless listen says otherwise; (Portier, ControlClient)."""
    cfg = {"listen": listen or pb.listen(), "acme": pb.acme_config(**(acme or {}))}
    cfg.update(config)
    p = portier_factory(tenants, **cfg)
    return p, ControlClient.of(p)


class Served:
    """Served: a response plus the certificate the connection was served with."""

    def __init__(self, response, der, peer):
        self.response = response
        self.status = response.status
        self.der = der
        self.serial = peer.get("serialNumber")
        self.not_after = peer.get("notAfter")

    def __repr__(self):
        return f"<Served {self.status} serial={self.serial} {self.response!r}>"


def fetch(port, host, cafile, path="/", timeout=ISSUE_S):
    """fetch: a new TLS connection to 127.0.0.1:port with SNI/Host = host that
    verifies the served chain and name against cafile only, and one GET."""
    conn = PinnedHTTPSConnection(host, port, cafile, timeout=timeout)
    try:
        conn.connect()
        der = conn.sock.getpeercert(binary_form=True)
        peer = conn.sock.getpeercert()
        return Served(exchange(conn, "GET", path), der, peer)
    finally:
        conn.close()


def issue(pb, port, host, cafile, path="/issue", timeout=ISSUE_S):
    """issue: fetch that must succeed with 200; on failure the message carries
    the exception and pebble's log tail."""
    t0 = time.monotonic()
    try:
        s = fetch(port, host, cafile, path, timeout)
    except Exception as e:
        raise AssertionError(f"HTTPS to {host} (verified against {cafile}) failed after "
                             f"{time.monotonic() - t0:.1f}s: {e!r}\n--- pebble log tail\n"
                             f"{pb.log_tail(30)}") from e
    assert s.status == 200, (host, s)
    return s


def try_fetch(port, host, cafile, path="/", timeout=ISSUE_S):
    """try_fetch: fetch for threads: ("ok", Served) or ("error", repr)."""
    try:
        return "ok", fetch(port, host, cafile, path, timeout)
    except Exception as e:  # every failure is reported by the caller
        return "error", repr(e)


class BioTLS:
    """BioTLS: a client TLS connection driven through memory BIOs, so the
    caller learns the moment its ClientHello has been sent (on_sent) while the
    handshake then waits for the server. Verifies against cafile only. Has
    recv/settimeout for httpclient.StreamReader."""

    def __init__(self, port, host, cafile, timeout):
        self.host = host
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        ctx = ssl.create_default_context(cafile=str(cafile))
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname=host)
        self.sock = socket.create_connection((LOOPBACK, port), timeout)

    def _flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("server closed the connection")
        self.inc.write(data)

    def handshake(self, on_sent):
        while True:
            try:
                self.obj.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                on_sent()
                self._fill()

    def settimeout(self, t):
        self.sock.settimeout(t)

    def recv(self, n):
        while True:
            try:
                return self.obj.read(n)
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
            except ssl.SSLZeroReturnError:
                return b""

    def get(self, path):
        self.obj.write(get_request(self.host, path))
        self._flush()
        return StreamReader(self, timeout=self.sock.gettimeout()).read_response()

    def close(self):
        self.sock.close()


def parked_get(port, host, cafile, sent, path="/", timeout=ISSUE_S):
    """parked_get: a first handshake + GET that sets the event `sent` once its
    ClientHello is out; ("ok", RawResponse) or ("error", repr)."""
    conn = None
    try:
        conn = BioTLS(port, host, cafile, timeout)
        conn.handshake(sent.set)
        return "ok", conn.get(path)
    except Exception as e:  # every failure is reported by the caller
        return "error", repr(e)
    finally:
        sent.set()
        if conn is not None:
            conn.close()


def refused(port, host, timeout):
    """refused: does a handshake with SNI host fail? (refused, seconds, what).
    The client verifies nothing, so any handshake portier completes, whatever
    certificate it shows, counts as not refused; a timeout is not a refusal."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    t0 = time.monotonic()
    sock = socket.create_connection((LOOPBACK, port), timeout)
    try:
        tls = ctx.wrap_socket(sock, server_hostname=host)
    except socket.timeout:
        sock.close()
        return False, time.monotonic() - t0, "timeout"
    except (ssl.SSLError, OSError) as e:
        sock.close()
        return True, time.monotonic() - t0, repr(e)
    tls.close()
    return False, time.monotonic() - t0, "handshake completed"


def certs(cc):
    r = cc.certs()
    assert r.status == 200, f"GET /v1/certs: {r.status} {r.body[:300]!r}"
    return r.json()["certs"]


def cert_entry(cc, host):
    for c in certs(cc):
        if c.get("host") == host:
            return c
    return None


def wait_cert(cc, host, pred, timeout, what, interval=0.1):
    """wait_cert: poll GET /v1/certs until host's entry satisfies pred."""
    deadline = time.monotonic() + timeout
    entry = None
    while True:
        entry = cert_entry(cc, host)
        if entry is not None and pred(entry):
            return entry
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {host} {what}; "
                                 f"last entry: {entry!r}")
        time.sleep(interval)


def state_of(cc, host):
    e = cert_entry(cc, host)
    return e and e.get("state")


def openssl(*args):
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True,
                          timeout=30)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def check_store(p, host, root, served_der):
    """check_store: STATE_DIR/certs/HOST holds the served certificate: cert.pem
    = leaf (the one served) first, then the chain, verifying against root;
    key.pem mode 0600 matching it; meta.json JSON; account key 0600."""
    state = Path(p.config["state_dir"])
    d = state / "certs" / host
    cert, key, meta = d / "cert.pem", d / "key.pem", d / "meta.json"
    for f in (cert, key, meta):
        held = sorted(os.listdir(d)) if d.is_dir() else None
        assert f.is_file(), f"{f} missing; {d} holds {held}"
    blocks = PEM_CERT.findall(cert.read_text())
    assert len(blocks) >= 2, f"{cert}: expected leaf + intermediate, got {len(blocks)} certificates"
    assert ssl.PEM_cert_to_DER_cert(blocks[0]) == served_der, \
        f"{cert}: first certificate is not the one served for {host}"
    res = openssl("verify", "-CAfile", root, "-untrusted", cert, cert)
    assert res.returncode == 0, f"openssl verify of {cert} against {root}: {res.stdout}{res.stderr}"
    assert mode(key) == 0o600, f"{key} mode {oct(mode(key))}"
    pub_cert = openssl("x509", "-in", cert, "-noout", "-pubkey")
    pub_key = openssl("pkey", "-in", key, "-pubout")
    assert pub_cert.returncode == 0 and pub_key.returncode == 0, (pub_cert.stderr, pub_key.stderr)
    assert pub_cert.stdout == pub_key.stdout, f"{key} does not match the leaf in {cert}"
    json.loads(meta.read_text())
    account = state / "acme" / "account.key"
    assert account.is_file(), f"{account} missing"
    assert mode(account) == 0o600, f"{account} mode {oct(mode(account))}"


def assert_valid_acme_entry(cc, host):
    e = cert_entry(cc, host)
    assert e is not None, f"{host} not in /v1/certs: {certs(cc)}"
    assert e["source"] == "acme" and e["state"] == "valid", e
    assert e["not_after"], e
    assert "pebble" in (e.get("issuer") or "").lower(), e
    assert e.get("failures") == 0 and e.get("last_error") is None, e
    return e


def run_ctl(binary, sock, *args, timeout=20):
    env = {k: v for k, v in os.environ.items() if k != "PORTIER_SOCKET"}
    return subprocess.run([str(binary), "-s", str(sock), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env)


def get_request(host, path):
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


# -- 1. one challenge type at a time ------------------------------------------------------

def _issue_with_one_challenge(pebble_factory, portier_factory, backend_factory, challenge):
    """Common part of the two tests below: pebble's VA port for the OTHER
    challenge type is a CountingListener, so issuance can only succeed through
    `challenge`, and the listener proves pebble never tried the other one."""
    host = "t1.example.test"
    b = backend_factory("b1")
    with CountingListener(free_port()) as decoy:
        if challenge == "http-01":
            pb = pebble_factory(PEBBLE_TLS_PORT=decoy.port)
            listen = {"http": f"{LOOPBACK}:{pb.http_port}", "https": f"{LOOPBACK}:{free_port()}"}
        else:
            pb = pebble_factory(PEBBLE_HTTP_PORT=decoy.port)
            listen = {"http": f"{LOOPBACK}:{free_port()}", "https": f"{LOOPBACK}:{pb.tls_port}"}
        p, cc = acme_edge(portier_factory, pb, {"t1": acme_tenant(host, b)}, listen=listen,
                          acme={"challenges": [challenge]})
        port = p.https_port
        root = pb.issuer_root()

        res = curl(["-i", "-w", "\nHTTP_CODE=%{http_code}", "--cacert", str(root),
                    "--resolve", f"{host}:{port}:127.0.0.1", f"https://{host}:{port}/first"],
                   timeout=ISSUE_S)
        assert res.returncode == 0, (f"curl rc={res.returncode}: {res.stderr}\n--- pebble log\n"
                                     f"{pb.log_tail(30)}")
        assert "HTTP_CODE=200" in res.stdout and "x-backend: b1" in res.stdout.lower(), res.stdout

        served = issue(pb, port, host, root, "/second", timeout=10)
        assert served.response.header("X-Backend") == "b1", served
        check_store(p, host, root, served.der)
        assert_valid_acme_entry(cc, host)
        assert pb.orders() == 1 and pb.validations(host) == 1, pb.log_tail(40)
        assert decoy.value() == 0, f"pebble connected to the {challenge}-less VA port"
        return pb


def test_http01_issues_on_first_handshake(pebble_factory, portier_factory, backend_factory):
    """challenges ["http-01"]: the first curl to https://t1.example.test
    (trusting only pebble's issuing root) succeeds in one call with the
    backend's 200; the stored chain verifies against the root, the served leaf
    is cert.pem's first certificate, key.pem and the account key are 0600;
    /v1/certs lists it (acme, valid, issuer pebble); pebble created one order,
    fetched /.well-known/acme-challenge/ from portier's HTTP listener, and never
    connected to its TLS-ALPN-01 port."""
    pb = _issue_with_one_challenge(pebble_factory, portier_factory, backend_factory, "http-01")
    assert pb.http01_fetches("t1.example.test") >= 1, pb.log_tail(40)


def test_tlsalpn01_issues_on_first_handshake(pebble_factory, portier_factory, backend_factory):
    """challenges ["tls-alpn-01"]: as above, with pebble's HTTP-01 port a
    listener that counts connections: issuance succeeds, pebble's VA never
    connected to it and logged no HTTP-01 fetch, so the challenge was answered
    by the acme-tls/1 handshake on portier's HTTPS listener."""
    pb = _issue_with_one_challenge(pebble_factory, portier_factory, backend_factory,
                                   "tls-alpn-01")
    assert pb.http01_fetches() == 0, pb.log_tail(40)


# -- 2. concurrent first handshakes share one order ----------------------------------------

def test_fifty_concurrent_first_handshakes_share_one_order(shared_pebble, portier_factory,
                                                           backend_factory):
    """50 threads, each its own TLS connection verifying against pebble's
    root, start their first handshake for a new host together: all 50 answer
    200 with the same leaf, and pebble saw exactly one order and one challenge
    validation for the host."""
    pb = shared_pebble
    host = "c50.example.test"
    b = backend_factory("c")
    p, cc = acme_edge(portier_factory, pb, {"c": acme_tenant(host, b)})
    root = pb.issuer_root()
    orders0 = pb.orders()
    n = 50
    barrier = threading.Barrier(n, timeout=15)
    results = [None] * n

    def one(i):
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            results[i] = ("error", "barrier broken")
            return
        results[i] = try_fetch(p.https_port, host, root, f"/c50/{i}")

    threads = [threading.Thread(target=one, args=(i,), daemon=True, name=f"c50-{i}")
               for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=ISSUE_S + 20)
    assert not any(t.is_alive() for t in threads), "a handshake thread hung"
    bad = [(i, r) for i, r in enumerate(results) if r is None or r[0] != "ok" or r[1].status != 200]
    assert not bad, f"{len(bad)} of {n} failed, e.g. {bad[:3]}\n{pb.log_tail(30)}"
    assert len({r[1].der for r in results}) == 1, "the 50 connections saw different leaves"
    assert pb.orders() - orders0 == 1, f"orders at pebble: {pb.orders() - orders0}"
    assert pb.validations(host) == 1, pb.validations(host)
    assert_valid_acme_entry(cc, host)


# -- 3. what must not order, and what must not wait ----------------------------------------

def test_unknown_sni_and_non_exact_hosts_order_nothing(shared_pebble, portier_factory,
                                                       backend_factory):
    """An SNI no tenant routes, a name under an acme tenant's Host(`*.…`) and
    one matched by its HostRegexp are refused at the handshake at once; none
    of them ever reaches pebble (no order, no request naming it) nor shows up
    in /v1/certs. The same portier issues for an exact host before them, and
    for one added by PUT after them, which is the sync point: exactly that one
    later order."""
    pb = shared_pebble
    b = backend_factory("u")
    tenants = {
        "exact": acme_tenant("k1.example.test", b),
        "loose": {"routes": [{"rule": "Host(`*.wild.example.test`)", "service": "s"},
                             {"rule": "HostRegexp(`^r[0-9]+\\.example\\.test$`)", "service": "s"}],
                  "services": {"s": {"backends": [b.address]}}, "tls": "acme"},
    }
    p, cc = acme_edge(portier_factory, pb, tenants)
    root = pb.issuer_root()
    issue(pb, p.https_port, "k1.example.test", root)
    orders0, newOrder0 = pb.orders(), pb.requests("/order-plz")

    bogus = ("nobody.example.test", "x.wild.example.test", "r7.example.test")
    for name in bogus:
        ok, took, what = refused(p.https_port, name, timeout=10)
        assert ok, f"handshake for {name} was not refused: {what}"
        assert took < PROMPT_S, f"refusing {name} took {took:.2f}s"

    r = cc.put("later", acme_tenant("k2.example.test", b))
    assert r.status == 201, r
    issue(pb, p.https_port, "k2.example.test", root)
    assert pb.orders() - orders0 == 1, f"orders since the refusals: {pb.orders() - orders0}"
    assert pb.requests("/order-plz") - newOrder0 == 1
    assert pb.validations("k2.example.test") == 1
    for name in bogus:
        assert not pb.mentions(name), f"pebble's log names {name}"
        assert cert_entry(cc, name) is None, cert_entry(cc, name)


def test_other_hosts_not_delayed_by_an_order_in_flight(pebble_factory, portier_factory,
                                                       backend_factory):
    """pebble's VA sleeps a random 0-5 s per validation. An acme tenant is
    added (PUT) and a first handshake for its host started at once; once its
    ClientHello is out and while it waits on the order (/v1/certs says
    "ordering"), a handshake and request for a host of an internal-CA tenant
    completes, and the acme host is still "ordering" afterwards; the waiting
    handshake then completes with pebble's certificate. A run whose
    validation happened to sleep too little to observe this is retried with
    the next host (3 hosts). (The acme tenants are added one at a time so
    that no order can have run before its attempt, whether or not portier
    orders for configured hosts at start-up.)"""
    pb = pebble_factory(PEBBLE_VA_NOSLEEP="0", PEBBLE_VA_SLEEPTIME="6")
    assert pb.mentions("Setting maximum random VA sleep time to 6 seconds"), pb.log_tail(20)
    slow = [f"slow{i}.example.test" for i in (1, 2, 3)]
    inside = "in.example.test"
    b1, b2 = backend_factory("slow"), backend_factory("in")
    p, cc = acme_edge(portier_factory, pb, {"inside": acme_tenant(inside, b2, tls="internal")})
    root, internal_root = pb.issuer_root(), p.ca_file
    attempts = []
    for i, host in enumerate(slow):
        r = cc.put(f"slow{i}", acme_tenant(host, b1))
        assert r.status == 201, r
        box, sent = {}, threading.Event()
        t = threading.Thread(target=lambda h=host, bx=box, ev=sent: bx.update(
                             r=parked_get(p.https_port, h, root, ev, "/first")),
                             daemon=True, name=f"first-{host}")
        t.start()
        note = {"host": host}
        try:
            assert sent.wait(10), f"the first handshake for {host} never sent its ClientHello"
            deadline = time.monotonic() + 20
            while state_of(cc, host) != "ordering" and t.is_alive():
                assert time.monotonic() < deadline, \
                    f"{host} never showed state 'ordering' in /v1/certs: {cert_entry(cc, host)}"
                time.sleep(0.02)
            if t.is_alive():
                t0 = time.monotonic()
                r = https(p.https_port, inside, internal_root, "/inside", timeout=ISSUE_S)
                note["inside_s"] = round(time.monotonic() - t0, 3)
                assert r.status == 200 and r.header("X-Backend") == "in", r
                note["after"] = state_of(cc, host)
            else:
                note["after"] = "finished before it was seen ordering"
        finally:
            t.join(timeout=ISSUE_S + 5)
        assert not t.is_alive(), f"first handshake for {host} hung"
        kind, res = box.get("r", ("error", "no result"))
        assert kind == "ok" and res.status == 200, \
            f"{host}: {res if kind == 'error' else res.status}\n{pb.log_tail(30)}"
        attempts.append(note)
        if note["after"] == "ordering":
            break
    else:
        pytest.fail(f"never saw the internal host complete while an order was in flight: "
                    f"{attempts}")


# -- 4. renewal ----------------------------------------------------------------------------

def test_background_renewal_keeps_open_connections(pebble_factory, portier_factory,
                                                   backend_factory):
    """Certificates of 120 s: after issuance a keep-alive connection answers
    one request; within 110 s a new connection is served a different leaf
    (renewal at a third of the lifetime left, ~80 s), verifying against
    pebble's root, with a later notAfter, now stored as cert.pem; the old
    connection, still showing the old leaf, answers a second request on the
    same socket. Polling opens a new connection at most every 2 s, and every
    one of them is served."""
    pb = pebble_factory(PEBBLE_CERT_VALIDITY="120")
    host = "renew.example.test"
    b = backend_factory("r")
    p, cc = acme_edge(portier_factory, pb, {"r": acme_tenant(host, b)},
                      timeouts={"client_idle": "300s"})
    root = pb.issuer_root()
    first = issue(pb, p.https_port, host, root)
    issued_at = time.monotonic()
    entry0 = assert_valid_acme_entry(cc, host)

    raw = socket.create_connection((LOOPBACK, p.https_port), 10)
    keep = ssl.create_default_context(cafile=str(root)).wrap_socket(raw, server_hostname=host)
    try:
        keep.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert keep.getpeercert(binary_form=True) == first.der
        reader = StreamReader(keep, timeout=15)
        keep.sendall(get_request(host, "/keep/1"))
        r1 = reader.read_response()
        assert r1.status == 200 and r1.header("x-backend") == "r", r1.status

        renewed, polls = None, 0
        while time.monotonic() - issued_at < 110:
            time.sleep(2)
            polls += 1
            cur = fetch(p.https_port, host, root, f"/poll/{polls}", timeout=20)
            assert cur.status == 200, cur
            if cur.der != first.der:
                renewed = cur
                break
        assert renewed is not None, (f"no new certificate within 110 s of issuance ({polls} "
                                     f"polls); /v1/certs: {cert_entry(cc, host)}\n"
                                     f"{pb.log_tail(30)}")
        assert renewed.serial != first.serial
        assert ssl.cert_time_to_seconds(renewed.not_after) > \
            ssl.cert_time_to_seconds(first.not_after), (first.not_after, renewed.not_after)

        keep.sendall(get_request(host, "/keep/2"))
        r2 = reader.read_response()
        assert r2.status == 200 and r2.header("x-backend") == "r", r2.status
        assert keep.getpeercert(binary_form=True) == first.der
    finally:
        keep.close()

    assert pb.orders() == 2, pb.orders()
    check_store(p, host, root, renewed.der)
    entry = wait_cert(cc, host, lambda e: e["state"] == "valid", 10, "valid after renewal")
    assert entry["not_after"] != entry0["not_after"], (entry0, entry)


# -- 5. CA down ----------------------------------------------------------------------------

def test_ca_down_backs_off_then_recovers(pebble_factory, portier_factory, backend_factory):
    """With a.example.test issued, pebble stops and a listener that accepts
    and closes takes its ACME port. a still serves. Tenant b is added (PUT:
    b's first order happens while the CA is down, whether portier orders at
    once or at the handshake). The first handshake for b.example.test fails
    within on_demand_timeout (5 s); /v1/certs shows b
    failed (last_error, failures >= 1, next_attempt); then 20 handshakes for b
    over ~3 s are all refused at once and no further connection reaches the
    CA's port, while a keeps serving. pebble starts again on the same ports
    (new root, no accounts); POST /v1/certs/b/renew -> 202, b becomes valid
    and serves a chain of the new root."""
    pb = pebble_factory()
    a, bh = "a.example.test", "b.example.test"
    b = backend_factory("ab")
    p, cc = acme_edge(portier_factory, pb, {"a": acme_tenant(a, b)},
                      acme={"on_demand_timeout": "5s"})
    root1 = pb.issuer_root()
    issue(pb, p.https_port, a, root1)

    pb.stop()
    with CountingListener(pb.acme_port) as ca:
        assert fetch(p.https_port, a, root1, "/a-while-down", timeout=10).status == 200
        r = cc.put("b", acme_tenant(bh, b))
        assert r.status == 201, r

        ok, took, what = refused(p.https_port, bh, timeout=20)
        assert ok, f"handshake for {bh} with the CA down: {what} after {took:.1f}s"
        assert took < 5 + 3, f"failing {bh} took {took:.1f}s (on_demand_timeout 5s)"
        e = wait_cert(cc, bh, lambda e: e["state"] == "failed", 5, "state failed")
        assert e["last_error"], e
        assert e["failures"] >= 1 and e["next_attempt"], e
        after_failure = ca.value()
        assert after_failure >= 1, "the failed order never tried to reach the CA"

        for i in range(20):
            ok, took, what = refused(p.https_port, bh, timeout=10)
            assert ok and took < PROMPT_S, f"handshake {i} for {bh} while backing off: " \
                                           f"{what} after {took:.2f}s"
            time.sleep(0.15)
        assert ca.value() == after_failure, \
            f"connections to the CA while backing off: {ca.value() - after_failure}"
        assert state_of(cc, bh) == "failed", cert_entry(cc, bh)
        assert fetch(p.https_port, a, root1, "/a-still", timeout=10).status == 200

    pb.start()
    root2 = pb.issuer_root()
    assert root2.read_text() != root1.read_text()
    r = cc.renew(bh)
    assert r.status == 202, r
    wait_cert(cc, bh, lambda e: e["state"] == "valid", ISSUE_S, "valid after renew")
    s = issue(pb, p.https_port, bh, root2, "/b-at-last", timeout=10)
    check_store(p, bh, root2, s.der)


# -- 6. restart ----------------------------------------------------------------------------

def test_restart_serves_stored_certificates_without_ca(pebble_factory, portier_factory,
                                                       backend_factory, tmp_path):
    """t1 and t2 issued, portier and pebble stopped, a counting listener on
    the ACME port: a new portier on the same state directory serves both with
    the same leaves (verifying against the old root), lists them valid, and
    made no connection to the CA's port."""
    pb = pebble_factory()
    hosts = ("t1.example.test", "t2.example.test")
    b = backend_factory("rs")
    tenants = {"rs": acme_tenant(list(hosts), b)}
    state = tmp_path / "state"
    p1, _ = acme_edge(portier_factory, pb, tenants, state_dir=str(state))
    root = pb.issuer_root()
    before = {h: issue(pb, p1.https_port, h, root).der for h in hosts}
    p1.stop()
    pb.stop()

    with CountingListener(pb.acme_port) as ca:
        p2, cc2 = acme_edge(portier_factory, pb, tenants, state_dir=str(state))
        for h in hosts:
            s = fetch(p2.https_port, h, root, "/after-restart", timeout=10)
            assert s.status == 200 and s.der == before[h], (h, s)
        for h in hosts:
            e = cert_entry(cc2, h)
            assert e and e["source"] == "acme" and e["state"] == "valid", (h, e)
        assert ca.value() == 0, f"{ca.value()} connections to the CA after the restart"


# -- 7. external account binding -----------------------------------------------------------

def test_eab_required(pebble_factory, portier_factory, backend_factory):
    """pebble requiring external account binding: portier with acme.eab
    {kid, hmac_key} registers (pebble logs the binding) and issues; a second
    portier without eab gets its handshake refused and /v1/certs shows the
    host failed with a last_error about external account binding."""
    kid, key = eab_pair()
    pb = pebble_factory(PEBBLE_EAB_KID=kid, PEBBLE_EAB_HMAC=key)
    b = backend_factory("eab")
    tenants = {"e": acme_tenant(["e1.example.test", "e2.example.test"], b)}
    p1, _ = acme_edge(portier_factory, pb, tenants,
                      acme={"eab": {"kid": kid, "hmac_key": key}})
    issue(pb, p1.https_port, "e1.example.test", pb.issuer_root())
    assert pb.mentions(f'Successful newAccount Binding with CA using kid "{kid}"'), pb.log_tail(30)
    p1.stop()

    p2, cc2 = acme_edge(portier_factory, pb, tenants, acme={"on_demand_timeout": "10s"})
    ok, took, what = refused(p2.https_port, "e2.example.test", timeout=20)
    assert ok, f"handshake without EAB: {what} after {took:.1f}s"
    e = wait_cert(cc2, "e2.example.test", lambda e: e["state"] == "failed", 10, "state failed")
    assert re.search(r"external\s*account", e["last_error"] or "", re.I), e
    assert e["failures"] >= 1, e


# -- 8. portierctl, control API ------------------------------------------------------------

def test_portierctl_cert_ls_and_renew(shared_pebble, portier_factory, backend_factory, ctl_bin):
    """`portierctl cert ls` lists the issued host on a row with source acme and
    state valid; `portierctl cert renew HOST` exits 0, pebble gets a new
    order at once, and new connections are soon served a new leaf."""
    pb = shared_pebble
    host = "ctl.example.test"
    b = backend_factory("ctl")
    p, cc = acme_edge(portier_factory, pb, {"ctl": acme_tenant(host, b)})
    root = pb.issuer_root()
    first = issue(pb, p.https_port, host, root)
    sock = socket_of(p)

    res = run_ctl(ctl_bin, sock, "cert", "ls")
    assert res.returncode == 0, (res.returncode, res.stdout, res.stderr)
    rows = [line.split() for line in res.stdout.splitlines() if host in line.split()]
    assert len(rows) == 1 and "acme" in rows[0] and "valid" in rows[0], res.stdout

    orders0 = pb.orders()
    res = run_ctl(ctl_bin, sock, "cert", "renew", host)
    assert res.returncode == 0, (res.returncode, res.stdout, res.stderr)
    deadline = time.monotonic() + ISSUE_S
    while True:
        cur = fetch(p.https_port, host, root, "/after-renew", timeout=10)
        assert cur.status == 200, cur
        if cur.der != first.der:
            break
        assert time.monotonic() < deadline, f"still the old leaf; {cert_entry(cc, host)}"
        time.sleep(0.25)
    assert pb.orders() - orders0 == 1, pb.orders() - orders0


def test_put_acme_tenant_orders_at_once(shared_pebble, portier_factory, backend_factory):
    """A tenant with tls acme added through PUT /v1/tenants/NAME has its
    certificate ordered without any handshake: /v1/certs shows the host valid
    and pebble one order; the first handshake then gets that certificate."""
    pb = shared_pebble
    host = "late.example.test"
    b = backend_factory("late")
    p, cc = acme_edge(portier_factory, pb, {})
    orders0 = pb.orders()
    r = cc.put("late", acme_tenant(host, b))
    assert r.status == 201, r
    wait_cert(cc, host, lambda e: e["state"] == "valid", ISSUE_S, "valid without a handshake")
    assert pb.orders() - orders0 == 1
    s = issue(pb, p.https_port, host, pb.issuer_root(), "/late", timeout=10)
    check_store(p, host, pb.issuer_root(), s.der)


def test_global_caps_queue_orders(shared_pebble, portier_factory, backend_factory):
    """max_orders_per_minute 2 (and one order at a time): a tenant with three
    new hosts gets two certificates, one after the other; the third host waits
    in the queue ("ordering") and reaches pebble not at all until the minute
    has passed, while a handshake for it is answered within on_demand_timeout
    rather than making a fourth order."""
    pb = shared_pebble
    hosts = ["cap1.example.test", "cap2.example.test", "cap3.example.test"]
    b = backend_factory("caps")
    p, cc = acme_edge(portier_factory, pb, {},
                      acme={"max_concurrent_orders": 1, "max_orders_per_minute": 2,
                            "on_demand_timeout": "2s"})
    orders0 = pb.orders()
    assert cc.put("caps", acme_tenant(hosts, b)).status == 201
    valid = []
    deadline = time.monotonic() + ISSUE_S
    while time.monotonic() < deadline and len(valid) < 2:
        valid = [h for h in hosts if (cert_entry(cc, h) or {}).get("state") == "valid"]
        time.sleep(0.1)
    assert len(valid) == 2, certs(cc)
    (waiting,) = [h for h in hosts if h not in valid]
    assert pb.orders() - orders0 == 2
    t0 = time.monotonic()
    with pytest.raises(Exception):
        fetch(p.https_port, waiting, pb.issuer_root(), "/queued", timeout=10)
    assert time.monotonic() - t0 < 6, "the queued host's handshake outlived on_demand_timeout"
    e = cert_entry(cc, waiting)
    assert e and e["state"] == "ordering", e
    assert pb.orders() - orders0 == 2 and not pb.mentions(waiting), pb.log_tail(20)


def test_http01_answers_are_exempt_from_rate_limits(shared_pebble, portier_factory,
                                                    backend_factory):
    """A tenant limited to one request a minute still gets its certificate
    over http-01: pebble's validation fetches (three per challenge) are
    answered ahead of the limit, the visitor's own request spends the one
    token, and the next request is refused with 429."""
    pb = shared_pebble
    host = "limited.example.test"
    b = backend_factory("lim")
    tenant = dict(acme_tenant(host, b),
                  rate_limit={"average": 1, "period": "1m", "burst": 1})
    p, cc = acme_edge(portier_factory, pb, {"lim": tenant},
                      acme={"challenges": ["http-01"]})
    root = pb.issuer_root()
    first = issue(pb, p.https_port, host, root, "/first")
    assert first.status == 200
    assert pb.http01_fetches(host) >= 3, pb.log_tail(30)
    second = fetch(p.https_port, host, root, "/second", timeout=10)
    assert second.status == 429, second
