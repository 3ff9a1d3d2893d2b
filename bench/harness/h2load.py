"""HTTP/2 load: h2load over TLS, ALPN h2 only, `--connect-to` 127.0.0.1 (SNI and
:authority stay the test host). h2load prints no percentiles, so latency comes from its
per-request log (start, status, microseconds to the end of the response)."""
import os
import re
import statistics

from . import load
from .workdir import HOST


def run(wd, port, seconds, conns, streams, cpu, watch=None, path="/", log=True):
    """h2load -c conns -m streams for `seconds`; the memory of group `watch` is sampled.
    Returns parsed figures, h2load's CPU seconds and the samples' max RSS/PSS."""
    log_path = wd.path("h2load.requests")
    argv = ["taskset", "-c", str(cpu), "h2load", "-t1", f"-c{conns}", f"-m{streams}",
            f"-D{seconds}", "--npn-list=h2", f"--connect-to=127.0.0.1:{port}",
            *([f"--log-file={log_path}"] if log else []),
            f"https://{HOST}:{port}{path}"]
    rc, text, cpu_s, rss_max, pss_max = load.run_tool(argv, wd.path("h2load.out"), seconds, watch)
    res = parse(text)
    if rc != 0 and not res["requests"]:
        raise RuntimeError(f"h2load exited {rc}:\n{text[-2000:]}")
    if log:
        res.update(latency(log_path))
        os.unlink(log_path)
    res.update(gen_cpu_s=cpu_s, rss_load_kib=rss_max, pss_load_kib=pss_max, raw=text)
    return res


def parse(text):
    """h2load's summary -> requests (succeeded), req/s, errors."""
    fin = re.search(r"finished in ([\d.]+)(\w+), ([\d.]+) req/s", text)
    req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                    r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if not (fin and req):
        raise RuntimeError(f"cannot read h2load output:\n{text[-2000:]}")
    ok2xx = int(codes.group(1)) if codes else int(req.group(4))
    secs = float(fin.group(1)) * {"s": 1.0, "ms": 1e-3, "us": 1e-6}.get(fin.group(2), 1.0)
    failed = int(req.group(5)) + int(req.group(6)) + int(req.group(7))
    return {
        "requests": ok2xx,
        # req/s of 2xx answers only: h2load's own figure counts failures too
        "rps": ok2xx / secs if secs else 0.0,
        "non_2xx": int(req.group(4)) - ok2xx,
        "socket_errors": failed,
        "socket_errors_detail": f"failed {req.group(5)}, errored {req.group(6)}, "
                                f"timeout {req.group(7)}" if failed else None,
    }


def latency(log_path):
    """p50/p99 in ms from h2load's --log-file (third column: microseconds)."""
    us = []
    try:
        with open(log_path, errors="replace") as f:
            for line in f:
                cols = line.split("\t")
                if len(cols) >= 3 and cols[2].strip().isdigit():  # skip a torn line
                    us.append(int(cols[2]))
    except OSError:
        pass
    us.sort()
    if not us:
        return {"p50_ms": None, "p99_ms": None}
    p99 = us[min(len(us) - 1, int(len(us) * 0.99))]
    return {"p50_ms": statistics.median(us) / 1000, "p99_ms": p99 / 1000}
