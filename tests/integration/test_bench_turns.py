"""bench/run's load scenarios: the proxies take turns in slices, and each proxy's
figures are summed over its turns (bench/harness/measure.py)."""

import importlib.util
import os
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parents[2] / "bench" / "harness"


@pytest.fixture(scope="module")
def measure():
    # The bench's harness package, under a name of its own: this directory has a
    # harness.py too.
    spec = importlib.util.spec_from_file_location(
        "bench_harness", HARNESS / "__init__.py", submodule_search_locations=[str(HARNESS)])
    pkg = importlib.util.module_from_spec(spec)
    sys.modules["bench_harness"] = pkg
    spec.loader.exec_module(pkg)
    try:
        yield importlib.import_module("bench_harness.measure")
    finally:
        for name in [n for n in sys.modules if n.split(".")[0] == "bench_harness"]:
            del sys.modules[name]


@pytest.mark.parametrize("duration, slice_s, want", [
    (5, 1, [1, 1, 1, 1, 1]),
    (5, 2, [2, 2, 1]),
    (1, 1, [1]),
    (3, 10, [3]),
])
def test_slice_lengths_add_up_to_the_duration(measure, duration, slice_s, want):
    assert measure.slice_lengths(duration, slice_s) == want


def test_turns_rotate_the_first_proxy(measure):
    assert measure.turns(["a", "b", "c"], 4) == [
        ["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]
    assert measure.turns(["a"], 2) == [["a"], ["a"]]


def res(requests, rps, p99, errors=0, versions=None):
    return {"requests": requests, "rps": rps, "p50_ms": p99 / 2, "p99_ms": p99,
            "gen_cpu_s": 0.5, "non_2xx": errors, "socket_errors": 0,
            "socket_errors_detail": None, "rss_load_kib": 1000 + requests,
            "pss_load_kib": 900, "tls_versions": versions, "raw": f"out {requests}"}


def test_slices_sum_the_turns(measure):
    s = measure.Slices()
    # a fast turn and a slow one: req/s is the requests over the generators' time
    s.add(res(1000, 1000.0, 2.0, versions={"TLSv1.3": 1000}), cpu=0.5, backend_cpu=0.1,
          busy=0.7, wall=1.2)
    s.add(res(500, 500.0, 4.0, errors=3, versions={"TLSv1.3": 499, "TLSv1.2": 1}),
          cpu=0.4, backend_cpu=0.05, busy=0.5, wall=1.3)
    s.add(res(1500, 1500.0, 3.0), cpu=0.6, backend_cpu=0.15, busy=0.8, wall=1.1)
    f = s.figures()
    assert f["requests"] == 3000 and f["slices"] == 3
    assert f["rps"] == pytest.approx(3000 / 3.0)
    assert f["cpu_us_per_req"] == pytest.approx(1.5e6 / 3000)
    assert f["backend_cpu_us_per_req"] == pytest.approx(0.3e6 / 3000)
    assert f["p99_ms"] == 3.0 and f["p50_ms"] == 1.5  # the median turn's
    assert f["errors"] == 3
    assert f["rss_load_mib"] == pytest.approx(2500 / 1024)  # the largest sample
    assert f["gen_cpu_pct"] == pytest.approx(100 * 1.5 / 3.6)
    assert f["other_cpu0_pct"] == pytest.approx(100 * (2.0 - 1.5 - 0.3) / 3.6)
    assert f["tls_versions"] == {"TLSv1.3": 1499, "TLSv1.2": 1}
    assert f["generator_output"] == "out 1500"
    assert measure.Slices().figures()["rps"] == 0.0


def test_a_turn_without_percentiles_gives_none(measure):
    s = measure.Slices()
    s.add(res(10, 10.0, 1.0), cpu=0.1, backend_cpu=0, busy=0.1, wall=1)
    s.add(res(10, 10.0, 1.0) | {"p99_ms": None}, cpu=0.1, backend_cpu=0, busy=0.1, wall=1)
    assert s.figures()["p99_ms"] is None


class FakeServer:
    """Stands for a started proxy: this test's own process group is its 'processes'."""

    def __init__(self):
        self.pgid = os.getpgid(0)

    def alive(self):
        return True

    def log_tail(self, lines=20):
        return "log"


def fake_proxy(measure, name, st):
    p = object.__new__(measure._Proxy)
    p.name, p.sc, p.rnd, p.st = name, FakeScenario(), 1, st
    p.server, p.port, p.rec, p.error = FakeServer(), 0, {"proxy": name}, None
    p.totals, p.warm_errors, p.recorder = measure.Slices(), 0, None
    return p


class FakeScenario:
    name, kind, idle_requests = "h1-tls", "wrk", 1


class FakeSetup:
    warmup, duration, slice, profile, proxy_cpu, load_cpu = 1, 3, 1, False, 0, 0
    backend = FakeServer()


def test_load_takes_turns_and_a_failing_proxy_drops_out(measure, monkeypatch):
    calls = []

    def generator(sc, st, port):
        def run(seconds, watch):
            name = generator.names[port]
            calls.append((name, seconds, watch is not None))
            if name == "c" and watch is not None and len(calls) > 6:
                raise RuntimeError("c broke")
            return res(100, 100.0, 1.0)
        return run

    st = FakeSetup()
    live = [fake_proxy(measure, n, st) for n in "abc"]
    for i, p in enumerate(live):
        p.port = i
    generator.names = {0: "a", 1: "b", 2: "c"}
    monkeypatch.setattr(measure, "_generator", generator)
    measure._load(live, st)
    # warm-ups (no memory watch), then 3 one-second turns, the first proxy rotating;
    # c fails in its second turn and gets no third
    assert calls == [("a", 1, False), ("b", 1, False), ("c", 1, False),
                     ("a", 1, True), ("b", 1, True), ("c", 1, True),
                     ("b", 1, True), ("c", 1, True), ("a", 1, True),
                     ("a", 1, True), ("b", 1, True)]
    a, b, c = live
    assert a.rec["requests"] == b.rec["requests"] == 300 and a.rec["slices"] == 3
    assert "requests" not in c.rec and "c broke" in str(c.error)
    assert measure.failed(FakeScenario(), "c", 1, c.error)["error"] == "RuntimeError: c broke"


def test_ratios_pair_each_turn_with_the_peer_turn_of_its_cycle(measure):
    report = importlib.import_module("bench_harness.report")

    def run(proxy, rnd, cpus):
        turns = [{"requests": 1000, "seconds": 1.0, "cpu": c} for c in cpus]
        return {"proxy": proxy, "scenario": "h1-tls", "round": rnd, "rps": 1000.0,
                "cpu_us_per_req": sum(cpus) * 1e6 / 1000 / len(cpus), "turns": turns}

    # the machine slows down by half in round 2's last turn, for both alike
    runs = [run("portier", 1, [0.04, 0.04]), run("nginx", 1, [0.05, 0.05]),
            run("portier", 2, [0.04, 0.06]), run("nginx", 2, [0.05, 0.075]),
            run("haproxy", 1, [0.09, 0.09]), run("haproxy", 2, [0.09, 0.09])]
    rat = report.ratios(runs, report.medians(runs, ["portier", "nginx", "haproxy"]))
    cpu = rat["h1-tls"]["cpu_us_per_req"]
    assert cpu["best"] == "nginx"
    assert cpu["per_turn"] == pytest.approx([0.8, 0.8, 0.8, 0.8])
    assert cpu["per_round"] == pytest.approx([0.8, 0.8])
    assert "per turn 0.80 of 4" in report.notes(rat, [])
