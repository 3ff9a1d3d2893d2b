"""Live updates drop nothing (DESIGN.md sections 1 and 4).

Three tenants carry continuous HTTPS load, on kept-alive connections and on a
new connection per request, while the control API takes 200 PUTs of a fourth
tenant and 50 replacements of one of the three (its backend swapped back and
forth). Not one request may fail or reach another tenant's backend, no
connection may break, and a WebSocket opened through the proxy before the
first update still echoes after the last.
"""

import asyncio
import socket
import threading
import time

import websockets

from controlclient import ControlClient, shorthand
from httpclient import PinnedHTTPSConnection, exchange, https, tls_context

BUDGET_S = 60          # the whole test
DELTA_PUTS = 200
GAMMA_SWAPS = 50


class Load:
    """Load: one thread per (host, keep-alive?) target, requesting until stopped.
    A request fails unless it answers 200 from one of the host's backends;
    an exception (reset, EOF, TLS error, timeout) is a connection error."""

    def __init__(self, port, ca_file, targets):
        self.port = port
        self.ca_file = ca_file
        self.targets = targets  # [(host, {allowed backend names}, keepalive)]
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = {}            # (host, keepalive) -> count
        self.by_backend = {}    # backend name -> count
        self.failures = []      # (host, status, backend)
        self.errors = []        # (host, keepalive, repr(exception))
        self.threads = []

    def _run(self, host, allowed, keepalive):
        conn = None
        i = 0
        while not self.stop.is_set():
            i += 1
            if conn is None:
                conn = PinnedHTTPSConnection(host, self.port, self.ca_file, timeout=10)
            try:
                r = exchange(conn, "GET", f"/load/{host}/{int(keepalive)}/{i}")
            except Exception as e:  # every kind of breakage is counted
                with self.lock:
                    self.errors.append((host, keepalive, repr(e)))
                conn.close()
                conn = None
                continue
            backend = r.header("X-Backend")
            with self.lock:
                if r.status == 200 and backend in allowed:
                    self.ok[(host, keepalive)] = self.ok.get((host, keepalive), 0) + 1
                    self.by_backend[backend] = self.by_backend.get(backend, 0) + 1
                else:
                    self.failures.append((host, r.status, backend))
            if not keepalive or r.header("Connection") == "close":
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def __enter__(self):
        for host, allowed, keepalive in self.targets:
            t = threading.Thread(target=self._run, args=(host, allowed, keepalive),
                                 daemon=True, name=f"load-{host}-{keepalive}")
            t.start()
            self.threads.append(t)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=15)
        assert not any(t.is_alive() for t in self.threads), "a load thread hung"


def test_updates_under_load_drop_nothing(portier_factory, backend_factory):
    """200 PUTs of tenant delta (created, then its backend alternated) and 50
    replacements of gamma (backend swapped s1 <-> s2), interleaved, while
    alpha, beta and gamma are under load: every PUT is acknowledged with the
    next generation, every load request answers 200 from its own tenant's
    backends, no connection breaks, both of gamma's backends served load
    (the swaps took effect under load), delta routes to its latest backend at
    once, and a WebSocket to gamma opened before the updates keeps echoing
    during and after them."""
    bk = {n: backend_factory(n) for n in ("a1", "b1", "s1", "s2", "d1", "d2")}
    tenants = {"alpha": shorthand("alpha.test", bk["a1"]),
               "beta": shorthand("beta.test", bk["b1"]),
               "gamma": shorthand("gamma.test", bk["s1"])}
    p = portier_factory(tenants)
    cc = ControlClient.of(p)
    ca = p.ca_file
    for host in ("alpha.test", "beta.test", "gamma.test"):  # certificates issued up front
        assert https(p.https_port, host, ca, "/warm").status == 200

    targets = []
    for host, allowed in (("alpha.test", {"a1"}), ("beta.test", {"b1"}),
                          ("gamma.test", {"s1", "s2"})):
        targets += [(host, allowed, True), (host, allowed, False)]
    report = {"puts": 0, "spot": 0, "echoes": 0}
    t_start = time.monotonic()

    def updates():
        gen = cc.generation()
        k = 0
        for i in range(DELTA_PUTS + GAMMA_SWAPS):
            if i % 5 == 4:
                j = i // 5
                name, t = "gamma", shorthand("gamma.test", bk["s2" if j % 2 == 0 else "s1"])
                want = 200
            else:
                target = "d1" if k % 2 == 0 else "d2"
                name, t = "delta", shorthand("delta.test", bk[target])
                want = 201 if k == 0 else 200
                k += 1
            r = cc.put(name, t)
            assert r.status == want, f"PUT {name} #{i}: {r!r}"
            assert r.json() == {"generation": gen + 1}, f"PUT {name} #{i}: {r!r}"
            gen += 1
            report["puts"] += 1
            if name == "delta" and k % 25 == 1:
                got = https(p.https_port, "delta.test", ca, f"/spot/{i}")
                assert got.status == 200 and got.header("X-Backend") == target, \
                    f"delta after PUT #{i}: wanted {target}, got {got!r}"
                report["spot"] += 1
            assert time.monotonic() - t_start < BUDGET_S - 15, f"updates too slow ({i} done)"

    async def main():
        sock = socket.create_connection(("127.0.0.1", p.https_port), timeout=10)
        async with websockets.connect(
                "wss://gamma.test/ws", sock=sock, ssl=tls_context(ca),
                server_hostname="gamma.test", compression=None, open_timeout=10,
                close_timeout=5, ping_interval=None) as ws:
            await ws.send("before")
            assert await asyncio.wait_for(ws.recv(), 10) == "before"
            backends_before = bk["s1"].ws_messages
            worker = asyncio.get_running_loop().run_in_executor(None, updates)
            n = 0
            while not worker.done():
                n += 1
                msg = f"during-{n}-" + "x" * (n % 300)
                await ws.send(msg)
                assert await asyncio.wait_for(ws.recv(), 10) == msg, f"echo {n} differs"
                report["echoes"] += 1
                await asyncio.sleep(0.02)
            await worker  # re-raises an update failure
            for m in ("after-1", b"after-2" * 1000):
                await ws.send(m)
                assert await asyncio.wait_for(ws.recv(), 10) == m
            assert bk["s1"].ws_messages > backends_before, "the WebSocket left s1"

    with Load(p.https_port, ca, targets) as load:
        asyncio.run(asyncio.wait_for(main(), BUDGET_S - 10))
        time.sleep(0.2)  # load on the final table too (stopped by __exit__)

    assert report["puts"] == DELTA_PUTS + GAMMA_SWAPS
    assert report["spot"] >= 8, report
    assert report["echoes"] >= 5, report
    assert not load.errors, f"{len(load.errors)} connection errors, first: {load.errors[:5]}"
    assert not load.failures, f"{len(load.failures)} failed requests, first: {load.failures[:5]}"
    for host, _, keepalive in targets:
        assert load.ok.get((host, keepalive), 0) >= 20, f"little load on {host}: {load.ok}"
    assert load.by_backend.get("s1", 0) > 0 and load.by_backend.get("s2", 0) > 0, \
        f"gamma's load did not follow the swaps: {load.by_backend}"

    # the final table: gamma's last swap went to s1, delta's last PUT to d2
    r = https(p.https_port, "gamma.test", ca, "/final")
    assert r.status == 200 and r.header("X-Backend") == "s1", r
    r = https(p.https_port, "delta.test", ca, "/final")
    assert r.status == 200 and r.header("X-Backend") == "d2", r
    table = cc.table()
    assert table["tenants"]["gamma"] == shorthand("gamma.test", bk["s1"])
    assert table["tenants"]["delta"] == shorthand("delta.test", bk["d2"])
    assert time.monotonic() - t_start < BUDGET_S, "over the time budget"
