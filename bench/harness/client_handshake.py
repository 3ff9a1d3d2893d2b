#!/usr/bin/python3
"""client_handshake.py --port P --host H [--path /] [--seconds S] [--concurrency C]

Full TLS handshakes: for S seconds, keep C connections in flight, each a new TCP
connection, a full handshake (never resumed: asserted per connection), one GET and the
whole answer, then close. wrk and h2load resume sessions, hence this client. Prints one
JSON object: connections completed, errors (with a few messages), p50/p99 ms from
connect to the end of the answer, TLS versions seen."""
import argparse
import json
import selectors
import statistics
import time

import tlsconn


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", required=True)
    p.add_argument("--path", default="/")
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--concurrency", type=int, default=16)
    a = p.parse_args()

    ctx = tlsconn.context()
    sel = selectors.DefaultSelector()
    lat, errors, versions = [], [], {}
    t0 = time.monotonic()
    deadline = t0 + a.seconds

    def fail(c, e):
        errors.append(f"{type(e).__name__}: {e}")
        if c is not None:
            try:
                sel.unregister(c)
            except (KeyError, ValueError):
                pass
            c.close()

    def advance(c, registered):
        try:
            ev = c.step()
        except Exception as e:  # one failed connection, keep going
            fail(c, e)
            return
        if ev is None:
            lat.append(c.t_done - c.t0)
            v = c.sock.version()
            versions[v] = versions.get(v, 0) + 1
            if registered:
                sel.unregister(c)
            c.close()
        elif registered:
            sel.modify(c, ev)
        else:
            sel.register(c, ev)

    inflight = lambda: len(sel.get_map())
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        while inflight() < a.concurrency:
            try:
                c = tlsconn.Conn(ctx, a.port, a.host, a.path)
            except Exception as e:
                fail(None, e)
                time.sleep(0.01)
                break
            advance(c, False)
        for key, _ in sel.select(timeout=max(0.0, min(0.1, deadline - now))):
            advance(key.fileobj, True)
    wall = time.monotonic() - t0
    for key in list(sel.get_map().values()):  # unfinished at the deadline: not counted
        key.fileobj.close()
    lat.sort()
    print(json.dumps({
        "connections": len(lat), "seconds": wall, "errors": len(errors),
        "error_samples": errors[:5], "versions": versions,
        "p50_ms": statistics.median(lat) * 1e3 if lat else None,
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3 if lat else None,
    }))


if __name__ == "__main__":
    main()
