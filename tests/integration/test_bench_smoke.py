"""`bench/run --smoke`: the bench harness still runs end to end against portier.

One smoke run (portier only, 1 s per scenario, the harness's Python backend) for the
module; every scenario must give a figure: req/s and CPU per request above zero, or
bytes per idle connection above zero, and the results JSON must be written.

Skipped under ASan (its figures mean nothing and 10,000 TLS connections take long),
when not root (the harness mounts a hosts file for wrk in a private namespace), with
fewer than 2 CPUs, or when wrk/h2load are missing (tests/deps.sh installs them; the
test never lets the harness reach for apt-get).
"""

import shutil
from pathlib import Path

import pytest

from harness import bench_smoke

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_RUN = REPO_ROOT / "bench" / "run"
SCENARIOS = ["h1", "h1-tls", "h2-tls", "h1-tls-64k", "handshake", "idle-1k", "idle-10k",
             "idle-h2-1k"]
IDLE = {"idle-1k": 1000, "idle-10k": 10000, "idle-h2-1k": 1000}  # connections held
TIMEOUT = 240  # a smoke run takes 20-70 s on the 2-core dev VM


@pytest.fixture(scope="module")
def smoke(portier_bin, tmp_path_factory):
    """smoke: (results JSON, harness stdout) of one `bench/run --smoke`."""
    missing = [t for t in ("wrk", "h2load", "curl", "openssl", "taskset", "unshare")
               if not shutil.which(t)]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (bash tests/deps.sh test)")
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    return bench_smoke(BENCH_RUN, portier_bin, out, TIMEOUT)


def test_smoke_writes_json(smoke):
    """The JSON has every scenario, medians for portier, and only portier."""
    res, _ = smoke
    assert list(res["scenarios"]) == SCENARIOS
    assert set(res["medians"]) == set(SCENARIOS)
    assert all(list(by_proxy) == ["portier"] for by_proxy in res["medians"].values())
    assert res["args"]["smoke"] is True
    assert len(res["runs"]) == len(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_smoke_scenario_has_figure(smoke, scenario):
    """Each scenario gives portier a figure, HTTP/2 included."""
    res, stdout = smoke
    m = res["medians"][scenario]["portier"]
    if not m["runs"]:
        pytest.fail(f"{scenario} failed for portier: {m.get('error')}\n{stdout}")
    assert m["errors"] == 0, f"{scenario}: {m['errors']} errors\n{stdout}"
    assert m["cpu_us_per_req"] > 0
    if scenario in IDLE:
        assert m["kib_per_conn"] > 0
        assert m["connections"] == IDLE[scenario]
    else:
        assert m["rps"] > 0
        assert m["p99_ms"] > 0
