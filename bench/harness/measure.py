"""One measurement: a fresh proxy, a check request, its idle memory, then the
scenario's load while its CPU time (/proc/PID/stat) and memory are read; the proxy is
stopped whatever happens. Returns one run record (see the README for the fields)."""
import dataclasses
import os
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


def _load(sc, st, proxy, port, perf_data):
    gen = _generator(sc, st, port)
    warm_errors = 0
    if st.warmup:
        w = gen(st.warmup, None)
        warm_errors = w["non_2xx"] + w["socket_errors"]
    cpu0, bcpu0 = procs.cpu_seconds(proxy.pgid), procs.cpu_seconds(st.backend.pgid)
    rec = profile.Recorder(perf_data, procs.group_pids(proxy.pgid), st.load_cpu) \
        if st.profile else None
    if rec:
        rec.start()
    busy0, t0 = procs.cpu_busy_seconds(st.proxy_cpu), time.monotonic()
    try:
        res = gen(st.duration, proxy.pgid)
    finally:
        parts = rec.stop() if rec else None
    wall = time.monotonic() - t0
    cpu = procs.cpu_seconds(proxy.pgid) - cpu0
    bcpu = procs.cpu_seconds(st.backend.pgid) - bcpu0
    busy = procs.cpu_busy_seconds(st.proxy_cpu) - busy0
    n = max(res["requests"], 1)
    errors = res["non_2xx"] + res["socket_errors"]
    if not res["requests"]:
        raise RuntimeError(f"no successful request; {res['socket_errors_detail'] or ''}\n"
                           f"{res['raw'][-1500:]}")
    out = {"profile": parts} if parts else {}
    for part, share in (parts or {}).items():
        if part != "error":
            out[f"cpu_us_{part}"] = share / 100 * cpu * 1e6 / n
    return out | {
        "rps": res["rps"], "requests": res["requests"],
        "p50_ms": res["p50_ms"], "p99_ms": res["p99_ms"],
        "cpu_s": cpu, "cpu_us_per_req": cpu * 1e6 / (n * sc.idle_requests),
        "backend_cpu_us_per_req": bcpu * 1e6 / n,
        "rss_load_mib": res["rss_load_kib"] / 1024, "pss_load_mib": res["pss_load_kib"] / 1024,
        "gen_cpu_pct": 100 * res["gen_cpu_s"] / wall,
        # CPU 0 busy with anything but the proxy and the backend: other tenants of
        # the machine (and kernel work not charged to either); high means noisy.
        "other_cpu0_pct": max(0.0, 100 * (busy - cpu - bcpu) / wall),
        "errors": errors, "non_2xx": res["non_2xx"],
        "socket_errors": res["socket_errors_detail"], "warmup_errors": warm_errors,
        "tls_versions": res.get("tls_versions"),
        "generator_output": res["raw"][-4000:],
    }


def _idle(sc, st, proxy, port, rss_idle, pss_idle):
    cpu0, t0 = procs.cpu_seconds(proxy.pgid), time.monotonic()
    timeout = max(60, sc.idle // 100)
    with pyclients.IdleClients(port, sc.idle, sc.conns, st.load_cpu, timeout, sc.path,
                               h2=sc.h2, requests=sc.idle_requests) as cl:
        opened = cl.opened()
        open_s = time.monotonic() - t0
        cpu = procs.cpu_seconds(proxy.pgid) - cpu0
        time.sleep(1.0)  # let the proxy finish with the last requests' buffers
        rss, pss = procs.memory_kib(proxy.pgid)
        alive = cl.check()
    n = opened["opened"]
    if not n:
        raise RuntimeError(f"no connection opened: {'; '.join(opened['error_samples'])}")
    return {
        "connections": n, "open_seconds": open_s, "alive": alive["alive"],
        "cpu_s": cpu, "cpu_us_per_req": cpu * 1e6 / (n * sc.idle_requests),
        "rss_load_mib": rss / 1024, "pss_load_mib": pss / 1024,
        "kib_per_conn": (rss - rss_idle) / n, "pss_kib_per_conn": (pss - pss_idle) / n,
        "errors": opened["failed"] + alive["closed"],
        "socket_errors": "; ".join(opened["error_samples"]) or None,
    }


def measure(sc, name, rnd, st):
    """Run scenario `sc` once against a fresh proxy `name`; raises on failure."""
    ports = proxies.Ports(workdir.free_port(), workdir.free_port())
    proxy = proxies.make(name, st.wd, st.proxy_cpu, ports, st.backend.port, st.nofile,
                         st.max_conns, st.portier)
    rec = {"proxy": name, "scenario": sc.name, "round": rnd}
    try:
        proxy.start()
        port = ports.tls if sc.tls else ports.plain
        rec["tls"] = load.check(port, sc.path, sc.body, tls=sc.tls, h2=sc.h2)
        time.sleep(0.5)
        rss_idle, pss_idle = procs.memory_kib(proxy.pgid)
        rec.update(rss_idle_mib=rss_idle / 1024, pss_idle_mib=pss_idle / 1024)
        if sc.kind == "idle":
            rec.update(_idle(sc, st, proxy, port, rss_idle, pss_idle))
        else:
            rec.update(_load(sc, st, proxy, port,
                             st.wd.path(f"perf-{name}-{sc.name}-round{rnd}.data")))
        if not proxy.alive():
            raise RuntimeError(f"{name} died during the run:\n{proxy.log_tail()}")
        rec["loadavg"] = procs.loadavg()
        rec["proxy_log"] = proxy.log_tail(40) if rec["errors"] else None
        return rec
    except Exception as e:
        e.proxy_log = proxy.log_tail(40)
        raise
    finally:
        proxy.stop()
        if os.path.exists(proxy.log):
            os.replace(proxy.log, st.wd.path(f"{name}-{sc.name}-round{rnd}.log"))
