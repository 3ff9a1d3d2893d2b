"""`portier --check -c FILE`: exit 0 on a valid configuration, non-zero with a
message naming the bad field otherwise. Covers tests/configs/bad/ (listed in
its EXPECT file as "FILE<TAB>field") and configurations generated here. The
tenants file a configuration names is checked too.
"""

import json
import re
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BAD_DIR = REPO_ROOT / "tests" / "configs" / "bad"


def run_check(binary, config, cwd):
    return subprocess.run([str(binary), "--check", "-c", str(config)], cwd=cwd,
                          capture_output=True, text=True, timeout=30)


def expect_entries():
    """expect_entries: (file, field) pairs from tests/configs/bad/EXPECT."""
    expect = BAD_DIR / "EXPECT"
    if not expect.is_file():
        return [pytest.param(None, None, id="no-EXPECT", marks=pytest.mark.skip(
            reason=f"{expect} is missing: no bad-config corpus to check"))]
    out = []
    for line in expect.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, field = line.partition("\t")
        out.append(pytest.param(name.strip(), field.strip(), id=name.strip()))
    return out


@pytest.mark.parametrize("name,field", expect_entries())
def test_bad_corpus(portier_bin, name, field):
    """Each file of tests/configs/bad/ is rejected, naming its field."""
    path = BAD_DIR / name
    assert path.is_file(), f"EXPECT lists {name}, which does not exist"
    res = run_check(portier_bin, path, REPO_ROOT)  # its paths are relative to the root
    assert res.returncode != 0, f"{name} accepted; stderr: {res.stderr}"
    assert field in res.stderr, f"{name}: field {field!r} not named in: {res.stderr!r}"


def base_static(tmp):
    return {
        "listen": {"http": "127.0.0.1:0", "https": "127.0.0.1:0"},
        "workers": 2,
        "state_dir": str(tmp / "state"),
        "tenants_file": str(tmp / "tenants.json"),
        "control": {"socket": str(tmp / "control.sock")},
        "access_log": "off",
    }


def web_tenant(**extra):
    t = {"routes": [{"rule": "Host(`a.test`)", "service": "web"}],
         "services": {"web": {"backends": ["127.0.0.1:8080"]}}}
    t.update(extra)
    return t


def write_pair(tmp, static_extra=None, tenants=None):
    static = base_static(tmp)
    for k, v in (static_extra or {}).items():
        if isinstance(v, dict) and isinstance(static.get(k), dict):
            static[k].update(v)
        else:
            static[k] = v
    (tmp / "tenants.json").write_text(json.dumps({"tenants": tenants or {}}))
    cfg = tmp / "portier.json"
    cfg.write_text(json.dumps(static))
    return cfg


# (id, static overrides, tenants, substrings the message must contain)
GENERATED = [
    ("bad_duration", {"timeouts": {"client_header": "10 parsecs"}}, None,
     ["timeouts.client_header"]),
    ("unknown_key", {"colour": "blue"}, None, ["colour"]),
    ("bad_listen_port", {"listen": {"https": "127.0.0.1:99999"}}, None, ["listen.https"]),
    ("bad_tls_min_version", {"tls": {"min_version": "1.1"}}, None, ["tls.min_version"]),
    ("bad_size", {"limits": {"header_size": "sixteen"}}, None, ["limits.header_size"]),
    ("bad_workers", {"workers": "many"}, None, ["workers"]),
    ("bad_tenant_name", None, {"Bad_Name": web_tenant()}, ["Bad_Name"]),
    ("bad_rule", None,
     {"t1": web_tenant(routes=[{"rule": "Host(`a.test`", "service": "web"}])},
     ["t1", "routes[0].rule"]),
    ("service_missing", None,
     {"t1": web_tenant(routes=[{"rule": "Host(`a.test`)", "service": "nope"}])},
     ["t1", "routes[0].service"]),
    ("backend_without_port", None,
     {"t1": web_tenant(services={"web": {"backends": ["10.0.0.1"]}})},
     ["t1", "services.web.backends[0]"]),
    ("bad_balance", None,
     {"t1": web_tenant(services={"web": {"backends": ["10.0.0.1:80"], "balance": "random"}})},
     ["t1", "services.web.balance"]),
    ("respond_status_out_of_range", None,
     {"t1": web_tenant(routes=[{"rule": "Host(`a.test`)", "service": "m"}],
                       services={"m": {"respond": {"status": 700, "body": "x"}}})},
     ["t1", "services.m.respond.status"]),
    ("bad_tenant_tls", None, {"t1": web_tenant(tls="bogus")}, ["t1", "tls"]),
    ("host_claimed_by_two_tenants", None,
     {"t1": {"hosts": ["same.test"], "backends": ["127.0.0.1:8080"]},
      "t2": {"hosts": ["same.test"], "backends": ["127.0.0.1:8081"]}},
     ["t1", "t2", "same.test"]),
]


@pytest.mark.parametrize("static_extra,tenants,needles",
                         [pytest.param(s, t, n, id=i) for i, s, t, n in GENERATED])
def test_generated_bad_config(portier_bin, tmp_path, static_extra, tenants, needles):
    """A generated bad configuration is rejected, naming the culprit field
    (and, for a host conflict, both tenants)."""
    cfg = write_pair(tmp_path, static_extra, tenants)
    res = run_check(portier_bin, cfg, tmp_path)
    assert res.returncode != 0, f"accepted; stderr: {res.stderr!r}"
    missing = [n for n in needles if n not in res.stderr]
    assert not missing, f"{missing} not named in: {res.stderr!r}"


def test_good_config_passes(portier_bin, tmp_path):
    """Every documented key, a full tenant and a shorthand tenant: exit 0."""
    static = {
        "tls": {"default": "internal", "min_version": "1.2", "unknown_sni": "reject"},
        "acme": {"directory": "https://127.0.0.1:14000/dir", "email": None,
                 "ca_bundle": None, "challenges": ["tls-alpn-01", "http-01"],
                 "on_demand": True, "on_demand_timeout": "30s",
                 "max_concurrent_orders": 4, "max_orders_per_minute": 20},
        "trusted_proxies": ["10.0.0.0/8", "::1/128"],
        "timeouts": {"client_header": "10s", "client_idle": "75s", "backend_connect": "5s",
                     "backend_response": "60s", "backend_idle": "60s", "shutdown": "30s"},
        "limits": {"header_size": "16k", "header_count": 100, "max_body": "0"},
        "metrics": {"listen": None},
        "control": {"mode": "0600"},
    }
    tenants = {
        "demo": {
            "routes": [
                {"rule": "Host(`demo.test`)", "service": "chat"},
                {"rule": "Host(`api-demo.test`)", "service": "api"},
                {"rule": "Host(`demo.test`) && PathPrefix(`/api`)", "service": "api",
                 "strip_prefix": "/api", "priority": 0},
                {"rule": "Host(`demo.test`) && Path(`/maint`)", "service": "maint"},
            ],
            "services": {
                "chat": {"backends": ["demo-chat:8080"]},
                "api": {"backends": ["demo-api:4000", "10.0.0.7:4000"],
                        "balance": "least_conn",
                        "health": {"path": "/health", "interval": "10s"}},
                "maint": {"respond": {"status": 503, "body": "down for maintenance\n"}},
            },
            "rate_limit": {"average": 100, "period": "1s", "burst": 200, "per": "tenant"},
            "tls": "internal",
            "https_redirect": True,
            "hsts": False,
            "max_body": "100m",
        },
        "short": {"hosts": ["short.test", "www.short.test"], "backends": ["short-web:80"]},
        "wild": {"routes": [{"rule": "Host(`*.wild.test`) || HostRegexp(`^w[0-9]+\\.test$`)",
                             "service": "s"}],
                 "services": {"s": {"backends": ["[::1]:9000"]}}},
    }
    cfg = write_pair(tmp_path, static, tenants)
    res = run_check(portier_bin, cfg, tmp_path)
    assert res.returncode == 0, f"rejected: {res.stderr!r}"


def test_missing_config_file(portier_bin, tmp_path):
    """A configuration file that does not exist: non-zero, naming the path."""
    missing = tmp_path / "nope.json"
    res = run_check(portier_bin, missing, tmp_path)
    assert res.returncode != 0
    assert str(missing) in res.stderr or "nope.json" in res.stderr, res.stderr


def test_version(portier_bin):
    """`portier --version` prints a version number and exits 0."""
    res = subprocess.run([str(portier_bin), "--version"], capture_output=True, text=True,
                         timeout=10)
    assert res.returncode == 0, res.stderr
    assert re.search(r"\d+\.\d+\.\d+", res.stdout + res.stderr), (res.stdout, res.stderr)
