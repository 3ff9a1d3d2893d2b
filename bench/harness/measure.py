"""One round of one scenario: every proxy started fresh, checked with one request, its
idle memory read, then the scenario's load while its CPU time (/proc/PID/stat) and
memory are read; every proxy is stopped whatever happens. Returns one run record per
proxy (see the README for the fields).

Load scenarios run all the proxies at once and take turns in slices (two seconds by
default): the load generator hits one proxy for a slice, then the next, the order
rotating each slice. This VM's speed drifts by up to 1.5x over tens of seconds; proxies
measured one after the other in 5 s runs each caught a different phase, and the
ratios between them swung with it. Sliced, every proxy sees the same phases. Each
slice opens its connections anew (as wrk and h2load do at start), which all proxies
pay alike. Idle scenarios measure memory and run one proxy at a time."""
import dataclasses
import math
import os
import statistics
import time

from . import h2load, load, procs, profile, proxies, pyclients, workdir


@dataclasses.dataclass
class Setup:
    """What every measurement of a run shares."""
    wd: workdir.Workdir
    backend: procs.Server
    duration: int
    warmup: int
    connections: int | None   # overrides the scenario's wrk/h2load connections
    proxy_cpu: int
    load_cpu: int
    nofile: int
    max_conns: int
    portier: str
    profile: bool = False     # perf record each measured run (harness/profile.py)
    slice: int = 2            # seconds of load per turn (load scenarios)


def failed(sc, name, rnd, e):
    """The run record of a proxy that failed scenario `sc` in round `rnd`."""
    kind = getattr(e, "kind", type(e).__name__)
    return {"proxy": name, "scenario": sc.name, "round": rnd,
            "error": str(e) if hasattr(e, "kind") else f"{kind}: {e}",
            "error_kind": kind, "proxy_log": getattr(e, "proxy_log", None)}


def slice_lengths(duration, slice_s):
    """Whole seconds of each turn: `duration` cut into turns of at most `slice_s`."""
    n = max(1, math.ceil(duration / max(1, slice_s)))
    base, extra = divmod(duration, n)
    return [base + (1 if i < extra else 0) for i in range(n)]


def turns(names, n):
    """The order of the turns: n slices, each visiting every name once, the first name
    moving on by one each slice so none always goes first."""
    out = []
    for i in range(n):
        k = i % len(names) if names else 0
        out.append(names[k:] + names[:k])
    return out


@dataclasses.dataclass
class Slices:
    """One proxy's figures summed over its turns."""
    requests: int = 0
    seconds: float = 0.0      # the generators' own measured time (requests / their req/s)
    cpu: float = 0.0          # the proxy's CPU seconds
    backend_cpu: float = 0.0
    busy: float = 0.0         # CPU 0 busy seconds, anything on it
    wall: float = 0.0
    gen_cpu: float = 0.0
    non_2xx: int = 0
    socket_errors: int = 0
    socket_errors_detail: str | None = None
    rss_kib: int = 0
    pss_kib: int = 0
    p50: list = dataclasses.field(default_factory=list)
    p99: list = dataclasses.field(default_factory=list)
    tls_versions: dict | None = None
    raw: str = ""
    turns: list = dataclasses.field(default_factory=list)  # each turn's own figures

    def add(self, res, cpu, backend_cpu, busy, wall):
        seconds = res["requests"] / res["rps"] if res["rps"] else wall
        self.turns.append({"requests": res["requests"], "seconds": seconds, "cpu": cpu})
        self.requests += res["requests"]
        self.seconds += seconds
        self.cpu, self.backend_cpu = self.cpu + cpu, self.backend_cpu + backend_cpu
        self.busy, self.wall = self.busy + busy, self.wall + wall
        self.gen_cpu += res["gen_cpu_s"]
        self.non_2xx += res["non_2xx"]
        self.socket_errors += res["socket_errors"]
        self.socket_errors_detail = self.socket_errors_detail or res["socket_errors_detail"]
        self.rss_kib, self.pss_kib = (max(self.rss_kib, res["rss_load_kib"]),
                                      max(self.pss_kib, res["pss_load_kib"]))
        self.p50.append(res["p50_ms"])
        self.p99.append(res["p99_ms"])
        if res.get("tls_versions") is not None:
            self.tls_versions = self.tls_versions or {}
            for v, n in res["tls_versions"].items():
                self.tls_versions[v] = self.tls_versions.get(v, 0) + n
        self.raw = res["raw"]

    def figures(self, per_request=1):
        """The run record's load figures. Latency percentiles are the median of the
        turns' (the turns' requests are not kept to pool them)."""
        n = max(self.requests, 1)
        pct = lambda xs: statistics.median(xs) if xs and None not in xs else None
        errors = self.non_2xx + self.socket_errors
        return {
            "rps": self.requests / self.seconds if self.seconds else 0.0,
            "requests": self.requests, "slices": len(self.p99),
            "p50_ms": pct(self.p50), "p99_ms": pct(self.p99),
            "cpu_s": self.cpu, "cpu_us_per_req": self.cpu * 1e6 / (n * per_request),
            "backend_cpu_us_per_req": self.backend_cpu * 1e6 / n,
            "rss_load_mib": self.rss_kib / 1024, "pss_load_mib": self.pss_kib / 1024,
            # over the generators' lives, start-up included: near 100, it set the pace
            "gen_cpu_pct": 100 * self.gen_cpu / self.wall if self.wall else 0.0,
            # CPU 0 busy with anything but the proxy and the backend: other tenants of
            # the machine (and kernel work not charged to either); high means noisy.
            "other_cpu0_pct": (max(0.0, 100 * (self.busy - self.cpu - self.backend_cpu)
                                   / self.wall) if self.wall else 0.0),
            "errors": errors, "non_2xx": self.non_2xx,
            "socket_errors": self.socket_errors_detail,
            "tls_versions": self.tls_versions,
            "generator_output": self.raw[-4000:],
            "turns": self.turns,
        }


def _generator(sc, st, port):
    """f(seconds, watch) running the scenario's load generator once."""
    conns = st.connections or sc.conns
    if sc.kind == "wrk":
        return lambda s, w: load.wrk(st.wd, port, s, conns, st.load_cpu, watch=w, path=sc.path,
                                     tls=sc.tls)
    if sc.kind == "h2load":
        return lambda s, w: h2load.run(st.wd, port, s, conns, sc.streams, st.load_cpu,
                                       watch=w, path=sc.path)
    if sc.kind == "handshake":
        return lambda s, w: pyclients.handshakes(st.wd, port, s, sc.conns, st.load_cpu,
                                                 watch=w, path=sc.path)
    raise ValueError(sc.kind)


class _Proxy:
    """A proxy under test in one round: started, checked, its idle memory read."""

    def __init__(self, sc, name, rnd, st):
        self.name, self.sc, self.rnd, self.st = name, sc, rnd, st
        ports = proxies.Ports(workdir.free_port(), workdir.free_port())
        self.server = proxies.make(name, st.wd, st.proxy_cpu, ports, st.backend.port,
                                   st.nofile, st.max_conns, st.portier)
        self.port = ports.tls if sc.tls else ports.plain
        self.rec = {"proxy": name, "scenario": sc.name, "round": rnd}
        self.error = None
        self.totals = Slices()
        self.warm_errors = 0
        self.recorder = None

    def start(self):
        self.server.start()
        self.rec["tls"] = load.check(self.port, self.sc.path, self.sc.body, tls=self.sc.tls,
                                     h2=self.sc.h2)

    def read_idle_memory(self):
        self.rss_idle, self.pss_idle = procs.memory_kib(self.server.pgid)
        self.rec.update(rss_idle_mib=self.rss_idle / 1024, pss_idle_mib=self.pss_idle / 1024)

    def fail(self, e):
        e.proxy_log = self.server.log_tail(40)
        self.error = e

    def result(self):
        if self.error is not None:
            return failed(self.sc, self.name, self.rnd, self.error)
        if not self.server.alive():
            return failed(self.sc, self.name, self.rnd, RuntimeError(
                f"{self.name} died during the run:\n{self.server.log_tail()}"))
        rec = self.rec
        rec["loadavg"] = procs.loadavg()
        rec["proxy_log"] = self.server.log_tail(40) if rec["errors"] else None
        return rec

    def stop(self):
        self.server.stop()
        if os.path.exists(self.server.log):
            os.replace(self.server.log, self.st.wd.path(
                f"{self.name}-{self.sc.name}-round{self.rnd}.log"))


def _turn(p, gen, seconds, st):
    """One slice of load on proxy p; its figures go to p.totals."""
    cpu0, bcpu0 = procs.cpu_seconds(p.server.pgid), procs.cpu_seconds(st.backend.pgid)
    busy0, t0 = procs.cpu_busy_seconds(st.proxy_cpu), time.monotonic()
    res = gen(seconds, p.server.pgid)
    wall = time.monotonic() - t0
    cpu = procs.cpu_seconds(p.server.pgid) - cpu0
    bcpu = procs.cpu_seconds(st.backend.pgid) - bcpu0
    busy = procs.cpu_busy_seconds(st.proxy_cpu) - busy0
    if not res["requests"]:
        raise RuntimeError(f"no successful request; {res['socket_errors_detail'] or ''}\n"
                           f"{res['raw'][-1500:]}")
    p.totals.add(res, cpu, bcpu, busy, wall)
    if not p.server.alive():
        raise RuntimeError(f"{p.name} died during the run:\n{p.server.log_tail()}")


def _load(live, st):
    """The load scenario on every live proxy, in turns; failures stay with their proxy."""
    gens = {p.name: _generator(p.sc, st, p.port) for p in live}
    for p in live:
        if st.warmup:
            try:
                w = gens[p.name](st.warmup, None)
                p.warm_errors = w["non_2xx"] + w["socket_errors"]
            except Exception as e:
                p.fail(e)
    if st.profile:
        for p in live:
            p.recorder = profile.Recorder(
                st.wd.path(f"perf-{p.name}-{p.sc.name}-round{p.rnd}.data"),
                procs.group_pids(p.server.pgid), st.load_cpu)
            p.recorder.start()
    by_name = {p.name: p for p in live}
    lengths = slice_lengths(st.duration, st.slice)
    try:
        for seconds, order in zip(lengths, turns([p.name for p in live], len(lengths))):
            for name in order:
                p = by_name[name]
                if p.error is None:
                    try:
                        _turn(p, gens[name], seconds, st)
                    except Exception as e:
                        p.fail(e)
    finally:
        for p in live:
            parts = p.recorder.stop() if p.recorder else None
            if parts:
                p.rec["profile"] = parts
    for p in live:
        if p.error is None:
            p.rec.update(p.totals.figures(p.sc.idle_requests), warmup_errors=p.warm_errors)
            n = max(p.totals.requests, 1)
            for part, share in (p.rec.get("profile") or {}).items():
                if part != "error":
                    p.rec[f"cpu_us_{part}"] = share / 100 * p.totals.cpu * 1e6 / n


def _idle(p, st):
    sc = p.sc
    if st.nofile < sc.idle + 256:
        raise RuntimeError(f"open-file limit {st.nofile} too low for {sc.idle} connections")
    cpu0, t0 = procs.cpu_seconds(p.server.pgid), time.monotonic()
    timeout = max(60, sc.idle // 100)
    with pyclients.IdleClients(p.port, sc.idle, sc.conns, st.load_cpu, timeout, sc.path,
                               h2=sc.h2, requests=sc.idle_requests) as cl:
        opened = cl.opened()
        open_s = time.monotonic() - t0
        cpu = procs.cpu_seconds(p.server.pgid) - cpu0
        time.sleep(1.0)  # let the proxy finish with the last requests' buffers
        rss, pss = procs.memory_kib(p.server.pgid)
        alive = cl.check()
    n = opened["opened"]
    if not n:
        raise RuntimeError(f"no connection opened: {'; '.join(opened['error_samples'])}")
    p.rec.update({
        "connections": n, "open_seconds": open_s, "alive": alive["alive"],
        "cpu_s": cpu, "cpu_us_per_req": cpu * 1e6 / (n * sc.idle_requests),
        "rss_load_mib": rss / 1024, "pss_load_mib": pss / 1024,
        "kib_per_conn": (rss - p.rss_idle) / n, "pss_kib_per_conn": (pss - p.pss_idle) / n,
        "errors": opened["failed"] + alive["closed"],
        "socket_errors": "; ".join(opened["error_samples"]) or None,
    })


def _started(sc, name, rnd, st):
    p = _Proxy(sc, name, rnd, st)
    try:
        p.start()
    except Exception as e:
        p.fail(e)
    return p


def measure_round(sc, names, rnd, st):
    """Scenario `sc` in round `rnd` for the proxies `names`, each started fresh: their
    run records, in the order of `names`."""
    if sc.kind == "idle":  # memory: one proxy at a time, alone on the machine
        out = []
        for name in names:
            p = _started(sc, name, rnd, st)
            try:
                try:
                    if p.error is None:
                        time.sleep(0.5)
                        p.read_idle_memory()
                        _idle(p, st)
                except Exception as e:
                    p.fail(e)
                out.append(p.result())
            finally:
                p.stop()
        return out
    live = []
    try:
        for name in names:
            live.append(_started(sc, name, rnd, st))
        time.sleep(0.5)
        for p in live:
            if p.error is None:
                p.read_idle_memory()
        _load([p for p in live if p.error is None], st)
        return [p.result() for p in live]
    finally:
        for p in live:
            p.stop()
