#!/usr/bin/python3
"""client_idle.py --port P --host H --count N [--concurrency C] [--timeout S]
                 [--h2 [--requests R]]

Opens N TLS keep-alive connections (HTTP/2 with --h2), C at a time, each completing a
full handshake and one GET (R in turn over HTTP/2) so that it is fully established on
the proxy's side, and keeps them all open
and idle. Prints one JSON line when done (opened, failed, seconds, a few errors), then
answers each "check" line on stdin with {"alive": K, "closed": M} and exits, closing
them all, at end of input."""
import argparse
import json
import selectors
import select
import ssl
import sys
import time

import tlsconn


def still_open(conn):
    """False when the server has closed the connection (EOF or reset)."""
    poll = select.poll()  # select() stops at descriptor 1023
    poll.register(conn.sock, select.POLLIN)
    if not poll.poll(0):
        return True
    try:
        return bool(conn.sock.recv(4096))
    except (ssl.SSLWantReadError, BlockingIOError):
        return True  # a non-data record (e.g. a late session ticket)
    except OSError:
        return False


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", required=True)
    p.add_argument("--path", default="/")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--h2", action="store_true", help="HTTP/2 (ALPN h2)")
    p.add_argument("--requests", type=int, default=1, help="GETs per connection (with --h2)")
    a = p.parse_args()

    ctx = tlsconn.context(h2=a.h2)
    sel = selectors.DefaultSelector()
    held, errors = [], []
    started = 0
    t0 = time.monotonic()

    def advance(c, registered):
        try:
            ev = c.step()
        except Exception as e:
            errors.append(f"{type(e).__name__}: {e}")
            if registered:
                sel.unregister(c)
            c.close()
            return
        if ev is None:
            held.append(c)
            if registered:
                sel.unregister(c)
        elif registered:
            sel.modify(c, ev)
        else:
            sel.register(c, ev)

    while (started < a.count or sel.get_map()) and time.monotonic() - t0 < a.timeout:
        while started < a.count and len(sel.get_map()) < a.concurrency:
            started += 1
            try:
                c = tlsconn.Conn(ctx, a.port, a.host, a.path, h2=a.h2, requests=a.requests)
            except Exception as e:
                errors.append(f"{type(e).__name__}: {e}")
                continue
            advance(c, False)
        for key, _ in sel.select(timeout=0.1):
            advance(key.fileobj, True)
    for key in list(sel.get_map().values()):
        errors.append("unfinished at the timeout")
        key.fileobj.close()
    print(json.dumps({"opened": len(held), "failed": len(errors), "seconds": time.monotonic() - t0,
                      "error_samples": errors[:5]}), flush=True)
    for line in sys.stdin:
        if line.strip() == "check":
            alive = sum(1 for c in held if still_open(c))
            print(json.dumps({"alive": alive, "closed": len(held) - alive}), flush=True)
    for c in held:
        c.close()


if __name__ == "__main__":
    main()
