"""Traffic: a one-request check of each proxy, and wrk runs during which the proxy's
CPU time and memory are read from /proc.

wrk takes SNI from the URL's host, so it runs in a private mount namespace in which
the bench's hosts file (test host -> 127.0.0.1) is bind-mounted over /etc/hosts.
"""
import os
import re
import shlex
import subprocess
import time

from . import procs
from .workdir import HOST


def check(port, expect_bytes):
    """One request through the proxy with curl, and the TLS version and cipher an
    OpenSSL client negotiates. Raises if the answer is not 200 with the full body."""
    r = subprocess.run(["curl", "-sk", "--max-time", "5", "-o", "/dev/null",
                        "-w", "%{http_code} %{size_download}",
                        "--resolve", f"{HOST}:{port}:127.0.0.1", f"https://{HOST}:{port}/"],
                       capture_output=True, text=True)
    if r.stdout.strip() != f"200 {expect_bytes}":
        raise RuntimeError(f"check of 127.0.0.1:{port}: curl got '{r.stdout.strip()}' "
                           f"(want '200 {expect_bytes}') {r.stderr.strip()}")
    r = subprocess.run(["openssl", "s_client", "-brief", "-connect", f"127.0.0.1:{port}",
                        "-servername", HOST], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=10)
    out = r.stdout + r.stderr
    proto = re.search(r"Protocol version: (\S+)", out)
    cipher = re.search(r"Ciphersuite: (\S+)", out)
    return f"{proto and proto.group(1)} {cipher and cipher.group(1)}"


def wrk(wd, port, seconds, conns, cpu, watch=None, sample_every=0.25):
    """Run wrk for `seconds` against the proxy; while it runs, sample the memory of
    group `watch`. Returns wrk's parsed figures plus wrk's own CPU seconds and the
    samples' maximum RSS/PSS."""
    out_path = wd.path("wrk.out")
    inner = (f"mount --bind {shlex.quote(wd.hosts)} /etc/hosts && "
             f"exec taskset -c {cpu} wrk -t1 -c{conns} -d{seconds}s --timeout 5s --latency "
             f"https://{HOST}:{port}/")
    rss_max = pss_max = 0
    with open(out_path, "wb") as out:
        p = subprocess.Popen(["unshare", "-m", "sh", "-c", inner], stdin=subprocess.DEVNULL,
                             stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + seconds + 20
    try:
        while True:
            # wait4 rather than poll(): its rusage is wrk's own CPU time.
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                p.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"wrk still running {seconds + 20}s after start")
            if watch is not None:
                rss, pss = procs.memory_kib(watch)
                rss_max, pss_max = max(rss_max, rss), max(pss_max, pss)
            time.sleep(sample_every)
    finally:
        if p.returncode is None:
            try:
                os.killpg(p.pid, 9)
            except ProcessLookupError:
                pass
            p.wait()
    with open(out_path, errors="replace") as f:
        text = f.read()
    if p.returncode != 0:
        raise RuntimeError(f"wrk exited {p.returncode}:\n{text}")
    res = parse(text)
    res.update(wrk_cpu_s=usage.ru_utime + usage.ru_stime, rss_load_kib=rss_max,
               pss_load_kib=pss_max, raw=text)
    return res


_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    return float(m.group(1)) * _MS[m.group(2)]


def parse(text):
    """wrk --latency output -> requests, req/s, p50/p99 (ms), errors."""
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not (total and rps):
        raise RuntimeError(f"cannot read wrk output:\n{text}")
    pct = {p: _ms(v) for p, v in re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", text, re.M)}
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    return {
        "requests": int(total.group(1)),
        "rps": float(rps.group(1)),
        "p50_ms": pct.get("50"),
        "p99_ms": pct.get("99"),
        "socket_errors": sum(map(int, sock.groups())) if sock else 0,
        "socket_errors_detail": sock.group(0) if sock else None,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }
