"""Traffic: a one-request check of a proxy, and load generators run while the proxy's
memory is sampled from /proc.

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


class CheckError(RuntimeError):
    """The proxy did not answer the check request as the scenario needs."""
    kind = "check"


class NoH2(CheckError):
    """The proxy did not pick h2 over ALPN."""
    kind = "no_h2_alpn"


def check(port, path, expect_bytes, tls=True, h2=False):
    """One request through the proxy with curl; for TLS also the version and cipher an
    OpenSSL client negotiates. Raises CheckError unless the answer is 200 with the full
    body (over HTTP/2 when `h2`)."""
    scheme = "https" if tls else "http"
    r = subprocess.run(["curl", "-sSk", "--max-time", "5", "-o", "/dev/null",
                        "-w", "%{http_code} %{size_download} %{http_version}",
                        *(["--http2"] if h2 else ["--http1.1"]),
                        "--resolve", f"{HOST}:{port}:127.0.0.1", f"{scheme}://{HOST}:{port}{path}"],
                       capture_output=True, text=True, errors="replace")
    got = r.stdout.strip().split()
    if h2 and r.returncode == 0 and len(got) == 3 and got[2] != "2":
        raise NoH2(f"no h2 over ALPN (curl --http2 got HTTP/{got[2]})")
    if got[:2] != ["200", str(expect_bytes)]:
        raise CheckError(f"GET {path}: status {got[0] if got else '?'}, "
                         f"{got[1] if len(got) > 1 else '?'} bytes (want 200, {expect_bytes})"
                         + (f"; {r.stderr.strip()}" if r.returncode else ""))
    if not tls:
        return "plain"
    r = subprocess.run(["openssl", "s_client", "-brief", "-connect", f"127.0.0.1:{port}",
                        "-servername", HOST, *(["-alpn", "h2"] if h2 else [])],
                       # an h2 server's first frames may land in the output: binary
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       errors="replace", timeout=10)
    out = r.stdout + r.stderr
    proto = re.search(r"Protocol version: (\S+)", out)
    cipher = re.search(r"Ciphersuite: (\S+)", out)
    return f"{proto and proto.group(1)} {cipher and cipher.group(1)}"


def run_tool(argv, out_path, seconds, watch=None, sample_every=0.25, grace=20, stdin=None):
    """Run a load generator (its own session) with output to `out_path`, sampling the
    memory of group `watch` meanwhile; killed `grace` s after `seconds`. Returns
    (exit code, output text, the tool's CPU seconds, max RSS KiB, max PSS KiB)."""
    rss_max = pss_max = 0
    with open(out_path, "wb") as out:
        p = subprocess.Popen(argv, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                             stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + seconds + grace
    usage = None
    try:
        while True:
            # wait4 rather than poll(): its rusage is the tool's own CPU time.
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                p.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{os.path.basename(argv[0])} still running "
                                   f"{seconds + grace}s after start")
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
    return p.returncode, text, usage.ru_utime + usage.ru_stime, rss_max, pss_max


def wrk(wd, port, seconds, conns, cpu, watch=None, path="/", tls=True):
    """Run wrk for `seconds` against the proxy; while it runs, sample the memory of
    group `watch`. Returns wrk's parsed figures plus wrk's own CPU seconds and the
    samples' maximum RSS/PSS."""
    scheme = "https" if tls else "http"
    inner = (f"mount --bind {shlex.quote(wd.hosts)} /etc/hosts && "
             f"exec taskset -c {cpu} wrk -t1 -c{conns} -d{seconds}s --timeout 5s --latency "
             f"{scheme}://{HOST}:{port}{path}")
    rc, text, cpu_s, rss_max, pss_max = run_tool(["unshare", "-m", "sh", "-c", inner],
                                                 wd.path("wrk.out"), seconds, watch)
    if rc != 0:
        raise RuntimeError(f"wrk exited {rc}:\n{text}")
    res = parse(text)
    res.update(gen_cpu_s=cpu_s, rss_load_kib=rss_max, pss_load_kib=pss_max, raw=text)
    res["wrk_cpu_s"] = cpu_s  # bench/ratelimit's name for it
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
