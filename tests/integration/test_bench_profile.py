"""`bench/run --profile`: the split of a proxy's CPU into what all proxies share
(kernel, system call wrappers, OpenSSL) and the rest.

The classifier is checked on lines in perf's own format; then one smoke run with
--profile must give every load scenario a split whose parts add up to its CPU per
request. Skipped where the smoke run is (see test_bench_smoke.py) or perf cannot
sample here.
"""

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import bench_smoke

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_RUN = REPO_ROOT / "bench" / "run"
SCENARIOS = ["h1-tls", "handshake"]
TIMEOUT = 240


def load_profile_module():
    spec = importlib.util.spec_from_file_location(
        "bench_profile", REPO_ROOT / "bench" / "harness" / "profile.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


REPORT = """\
# Overhead  Shared Object        Symbol
# ........  ...................  ......
#
    50.00%  [kernel.kallsyms]    [k] tcp_sendmsg_locked
    10.00%  libc.so.6            [.] __GI___libc_write
     5.00%  libc.so.6            [.] __GI___readv
     5.00%  libc.so.6            [.] epoll_wait
     4.00%  libc.so.6            [.] _int_malloc
     1.00%  libc.so.6            [.] pthread_rwlock_rdlock@GLIBC_2.2.5
    10.00%  libcrypto.so.3       [.] 0x00000000001dc56a
     5.00%  libssl.so.3          [.] SSL_read
     6.00%  portier              [.] h1_read_head
     4.00%  libevent_core-2.1.so.7.0.1  [.] evbuffer_drain
"""


def test_split_sorts_samples_into_parts():
    prof = load_profile_module()
    parts = prof.split(REPORT)
    assert parts == pytest.approx({"kernel": 50, "syscall": 20, "openssl": 15,
                                   "libc": 5, "libs": 4, "own": 6})


def test_split_scales_to_the_lines_read():
    prof = load_profile_module()
    parts = prof.split("    30.00%  [kernel.kallsyms]  [k] x\n    10.00%  nginx  [.] y\n")
    assert parts == pytest.approx({"kernel": 75, "syscall": 0, "openssl": 0,
                                   "libc": 0, "libs": 0, "own": 25})
    assert prof.split("no samples\n") == {}


@pytest.fixture(scope="module")
def profiled(portier_bin, tmp_path_factory):
    missing = [t for t in ("wrk", "h2load", "curl", "openssl", "taskset", "unshare", "perf")
               if not shutil.which(t)]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (bash tests/deps.sh test)")
    probe = subprocess.run(["perf", "record", "-q", "-F", "99", "-o", "/dev/null", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"perf cannot sample here: {probe.stderr.strip()[-200:]}")
    out = tmp_path_factory.mktemp("bench") / "profile.json"
    return bench_smoke(BENCH_RUN, portier_bin, out, TIMEOUT,
                       extra=("--scenarios", ",".join(SCENARIOS), "--profile"))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_profile_parts_add_up(profiled, scenario):
    res, stdout = profiled
    run = next(r for r in res["runs"] if r["scenario"] == scenario)
    assert "error" not in run, run.get("error")
    assert "error" not in run["profile"], run["profile"]
    assert sum(run["profile"].values()) == pytest.approx(100)
    assert run["profile"]["kernel"] > 0 and run["profile"]["own"] > 0
    assert run["profile"]["libs"] > 0  # portier's libevent at least
    parts = sum(run[f"cpu_us_{p}"] for p in ("kernel", "syscall", "openssl", "libc", "libs",
                                             "own"))
    assert parts == pytest.approx(run["cpu_us_per_req"])
    assert "where the CPU goes" in stdout
