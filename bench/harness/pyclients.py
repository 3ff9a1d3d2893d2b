"""Drivers of the two Python TLS clients (client_handshake.py, client_idle.py), each
run as its own process pinned to the load generator's CPU."""
import json
import os
import selectors
import subprocess
import sys
import time

from . import load
from .workdir import HOST

HERE = os.path.dirname(os.path.abspath(__file__))


def _argv(cpu, script, port, path, *more):
    return ["taskset", "-c", str(cpu), sys.executable, "-B", os.path.join(HERE, script),
            "--port", str(port), "--host", HOST, "--path", path, *more]


def handshakes(wd, port, seconds, inflight, cpu, watch=None, path="/"):
    """Full handshakes (one request each) for `seconds`: the figures of a load run."""
    argv = _argv(cpu, "client_handshake.py", port, path, "--seconds", str(seconds),
                 "--concurrency", str(inflight))
    rc, text, cpu_s, rss_max, pss_max = load.run_tool(argv, wd.path("handshake.out"), seconds,
                                                      watch)
    try:
        out = json.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError(f"client_handshake.py exited {rc}:\n{text[-2000:]}") from None
    n = out["connections"]
    return {
        "requests": n, "rps": n / out["seconds"] if out["seconds"] else 0.0,
        "p50_ms": out["p50_ms"], "p99_ms": out["p99_ms"],
        "non_2xx": 0, "socket_errors": out["errors"],
        "socket_errors_detail": "; ".join(out["error_samples"]) or None,
        "tls_versions": out["versions"],
        "gen_cpu_s": cpu_s, "rss_load_kib": rss_max, "pss_load_kib": pss_max, "raw": text,
    }


class IdleClients:
    """client_idle.py holding `count` connections open; a context manager that kills
    the client (and so closes them all) on the way out, errors included."""

    def __init__(self, port, count, inflight, cpu, timeout, path="/", h2=False, requests=1):
        self.timeout = timeout
        self.proc = subprocess.Popen(
            _argv(cpu, "client_idle.py", port, path, "--count", str(count),
                  "--concurrency", str(inflight), "--timeout", str(timeout),
                  *(["--h2", "--requests", str(requests)] if h2 else [])),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is None:  # done: let it close its connections and exit
            try:
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.sel.close()

    def _line(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sel.select(max(0.0, deadline - time.monotonic())):
                line = self.proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"client_idle.py exited {self.proc.wait()}")
                try:
                    return json.loads(line)
                except ValueError:
                    raise RuntimeError(f"client_idle.py: {line.strip()}{self.proc.stdout.read()}")
        raise RuntimeError(f"client_idle.py silent for {timeout} s")

    def opened(self):
        """Blocks until every connection is open (or failed): the client's report."""
        return self._line(self.timeout + 10)

    def check(self):
        """How many of the held connections the proxy has not closed."""
        self.proc.stdin.write("check\n")
        self.proc.stdin.flush()
        return self._line(60)
