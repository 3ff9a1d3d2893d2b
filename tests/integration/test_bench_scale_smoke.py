"""`bench/scale --smoke`: the scale bench still runs end to end against portier.

One smoke run (200 tenants, 100 stored certificates, 20,000 rate-limit keys; about 15 s)
for the module; every part must give its figures in the results JSON: RSS and latencies
above zero, req/s with and without updates, and no failed request while the tenant
table was being updated.

Skipped under ASan (its figures mean nothing), when not root (bench/acme and
bench/ratelimit need it), with fewer than 2 CPUs, or when wrk, taskset, curl, openssl,
a C compiler, libssl-dev or python3-cryptography are missing (the test never lets the
tools reach for apt-get).
"""

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from harness import bench_smoke

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_SCALE = REPO_ROOT / "bench" / "scale"
TIMEOUT = 120  # a smoke run takes 10-20 s on the 2-core dev VM
# what bench/scale's tools need (bench/acme checks for a C compiler even for part 2)
TOOLS = {"wrk": "wrk", "taskset": "util-linux", "curl": "curl", "openssl": "openssl",
         "cc": "gcc"}


@pytest.fixture(scope="module")
def smoke(portier_bin, tmp_path_factory):
    """smoke: (results JSON, stdout) of one `bench/scale --smoke`."""
    missing = sorted({pkg for tool, pkg in TOOLS.items() if not shutil.which(tool)})
    if not os.path.exists("/usr/include/openssl/ssl.h"):
        missing.append("libssl-dev")
    if importlib.util.find_spec("cryptography") is None:
        missing.append("python3-cryptography")
    if missing:
        pytest.skip(f"missing packages: {' '.join(missing)}")
    out = tmp_path_factory.mktemp("bench-scale") / "smoke.json"
    return bench_smoke(BENCH_SCALE, portier_bin, out, TIMEOUT)


def figures(smoke, part):
    res, stdout = smoke
    p = res["parts"][part]
    assert p["exit"] == 0 and p["figures"], f"{part} failed: {p['tail']}\n{stdout}"
    return p["figures"], stdout


def test_smoke_writes_json(smoke):
    """All three parts ran, with the smoke sizes, and the table was printed."""
    res, stdout = smoke
    assert list(res["parts"]) == ["tenants", "certs", "keys"]
    assert res["args"]["smoke"] is True
    assert res["portier_binary"]["sha256"]
    assert res["table"] in stdout
    assert "FAILED" not in res["table"]


def test_smoke_tenants(smoke):
    """Per size: start-up, RSS, PUT latency, req/s with and without updates, and not one
    failed request while the PUTs ran."""
    fig, stdout = figures(smoke, "tenants")
    assert [s["tenants"] for s in fig["sizes"]] == [200]
    s = fig["sizes"][0]
    assert s["startup_s"] > 0
    assert s["rss_start_mib"] > 0 and s["rss_after_updates_mib"] > 0
    assert 0 < s["put_median_ms"] <= s["put_p95_ms"] <= s["put_max_ms"]
    assert s["rps_quiet"] > 0 and s["rps_updating"] > 0 and s["rps_ratio"] > 0
    assert s["puts_under_load"] > 0, f"no PUT ran under load\n{stdout}"
    assert s["errors_updating"] == 0, f"requests failed while updating\n{stdout}"
    assert s["errors_quiet"] == 0
    assert s["check"] == "ok"


def test_smoke_certs(smoke):
    """Start-up with the stored certificates, RSS, and the first handshakes from disk."""
    fig, _ = figures(smoke, "certs")
    assert fig["stored"] == 100 and fig["on_record"] == 100
    assert fig["orders_started"] == 0
    assert fig["ready_ms"] > 0 and fig["sweep_ms"] >= fig["ready_ms"]
    assert fig["rss_ready_mib"] > 0 and fig["rss_sweep_mib"] > 0
    assert fig["lazy_hosts"] > 0
    assert fig["first_hs_median_ms"] > 0 and fig["rss_after_first_hs_mib"] > 0


def test_smoke_keys(smoke):
    """RSS after the distinct keys, one bucket per key, and the growth per 100k."""
    fig, _ = figures(smoke, "keys")
    assert fig["keys"] == 20000
    assert fig["limited_clients"] >= 20000
    assert fig["rss_start_mib"] > 0 and fig["rss_end_mib"] > fig["rss_start_mib"]
    assert fig["mib_per_100k"] > 0 and fig["bytes_per_key"] > 0
    assert fig["cap_65536_clients_max"] <= 65536
