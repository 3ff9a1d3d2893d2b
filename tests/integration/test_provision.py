"""portierctl tenant provision / deprovision (DESIGN.md section 5).

provision renders the tenant template (docker/tenant) into OUT/NAME, writes
OUT/NAME/.env (mode 0600, four 64-hex secrets, never rewritten), registers
NAME.DOMAIN -> NAME-web:8080 and api-NAME.DOMAIN -> NAME-api:4000 with the
running edge, and with --up runs `docker compose ... up -d`. deprovision
undoes it: --down, the routes, --purge.

The binary is PORTIERCTL_BIN (default build/config/portierctl/portierctl).
"""

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from controlclient import ControlClient, socket_of

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "docker" / "tenant"
SECRETS = ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "API_MASTER_KEY", "WEB_SECRET_KEY")
HEX64 = re.compile(r"[0-9a-f]{64}")




def run_ctl(binary, *args, sock, env=None, cwd=None, timeout=60):
    """run_ctl: portierctl -s SOCK ARGS; env entries are added to (or, when
    None, removed from) a copy of the environment without PORTIER_*."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PORTIER_")}
    for k, v in (env or {}).items():
        if v is None:
            full_env.pop(k, None)
        else:
            full_env[k] = v
    argv = [str(binary), "-s", str(sock)] + [str(a) for a in args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=cwd)


def explain(res):
    return f"rc={res.returncode}\nstdout: {res.stdout!r}\nstderr: {res.stderr!r}"


def assert_rc(res, rc):
    assert res.returncode == rc, explain(res)


def read_env(path):
    """read_env: KEY=VALUE lines of a .env file (comments skipped)."""
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


def expected_tenant(name, domain):
    return {
        "routes": [{"rule": f"Host(`{name}.{domain}`)", "service": "web"},
                   {"rule": f"Host(`api-{name}.{domain}`)", "service": "api"}],
        "services": {"web": {"backends": [f"{name}-web:8080"]},
                     "api": {"backends": [f"{name}-api:4000"]}},
        "tls": "acme",
    }


def fake_docker(bindir, rc, record):
    """fake_docker: an executable `docker` in bindir that writes its arguments,
    one a line, to record and exits with rc."""
    bindir.mkdir(parents=True, exist_ok=True)
    script = bindir / "docker"
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > '{record}'\nexit {rc}\n")
    script.chmod(0o755)
    return bindir


@pytest.fixture
def edge(portier_factory, ctl_bin, tmp_path):
    """edge: a running portier with its control API; ctl(*args, **kw) runs
    portierctl on its socket; out is an empty OUT directory."""
    p = portier_factory({})
    cc = ControlClient.of(p)
    r = cc.request("GET", "/v1/tenants")
    assert r.status == 200, f"GET /v1/tenants: {r.status} {r.body[:300]!r}"
    sock = socket_of(p)

    def ctl(*args, **kw):
        return run_ctl(ctl_bin, *args, sock=sock, **kw)

    return SimpleNamespace(p=p, cc=cc, sock=sock, ctl=ctl, out=tmp_path / "tenants")


def provision(edge, name, *extra, domain="example.com", **kw):
    return edge.ctl("tenant", "provision", name, "--domain", domain, "--template", TEMPLATE,
                    "--out", edge.out, *extra, **kw)


def test_provision_renders_and_registers(edge):
    res = provision(edge, "demo")
    assert_rc(res, 0)
    d = edge.out / "demo"
    compose = d / "compose.yml"
    assert compose.is_file() and (d / "postgres-init.sql").is_file()
    assert not (d / "README.md").exists()
    text = compose.read_text()
    assert "${TENANT}" not in text and "${DOMAIN}" not in text
    assert "container_name: demo-web" in text and "https://demo.example.com" in text
    # secrets stay references for compose, never copied into the compose file
    assert "${POSTGRES_PASSWORD:?" in text

    env_file = d / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    env = read_env(env_file)
    assert env["TENANT"] == "demo" and env["DOMAIN"] == "example.com"
    for k in SECRETS:
        assert HEX64.fullmatch(env[k]), f"{k}={env[k]!r}"
    assert len({env[k] for k in SECRETS}) == 4
    for k in SECRETS:
        assert env[k] not in text

    status, got = edge.cc.call("GET", "/v1/tenants/demo", expect=200)
    assert got["tenant"] == expected_tenant("demo", "example.com")

    ls = edge.ctl("tenant", "ls")
    assert_rc(ls, 0)
    assert "demo" in ls.stdout and "demo.example.com" in ls.stdout
    assert "api-demo.example.com" in ls.stdout


def test_rendered_compose_is_valid(edge):
    if not shutil.which("docker-compose"):
        pytest.skip("docker-compose is not installed")
    assert_rc(provision(edge, "cfgcheck", domain="Tenants.Example.NET."), 0)
    d = edge.out / "cfgcheck"
    argv = ["docker-compose", "-f", str(d / "compose.yml"), "--env-file", str(d / ".env")]
    res = subprocess.run(argv + ["config", "-q"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "not set" not in res.stderr, res.stderr
    res = subprocess.run(argv + ["config", "--services"], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert set(res.stdout.split()) == {"web", "api", "postgres", "redis"}
    res = subprocess.run(argv + ["config"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    conf = res.stdout
    assert "ports:" not in conf  # nothing published on the host
    assert "name: portier-edge" in conf and "external: true" in conf
    assert "name: cfgcheck-private" in conf and "internal: true" in conf
    for c in ("cfgcheck-web", "cfgcheck-api", "cfgcheck-postgres", "cfgcheck-redis"):
        assert f"container_name: {c}" in conf
    # the domain was lowercased and its trailing dot dropped
    assert "https://cfgcheck.tenants.example.net" in conf
    # without the .env, compose refuses to run with blank secrets
    os.rename(d / ".env", d.parent / "cfgcheck.env")
    res = subprocess.run(["docker-compose", "-f", str(d / "compose.yml"), "config", "-q"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0


def test_reprovision_needs_force_and_keeps_secrets(edge):
    assert_rc(provision(edge, "keep"), 0)
    d = edge.out / "keep"
    before = (d / ".env").read_bytes()

    res = provision(edge, "keep")
    assert_rc(res, 1)
    assert "--force" in res.stderr
    assert (d / ".env").read_bytes() == before

    (d / "compose.yml").write_text("edited by hand\n")
    res = provision(edge, "keep", "--force")
    assert_rc(res, 0)
    assert (d / ".env").read_bytes() == before
    assert stat.S_IMODE((d / ".env").stat().st_mode) == 0o600
    assert "container_name: keep-web" in (d / "compose.yml").read_text()
    edge.cc.call("GET", "/v1/tenants/keep", expect=200)


def test_template_from_environment(edge, tmp_path):
    tmpl = tmp_path / "tmpl"
    tmpl.mkdir()
    (tmpl / "compose.yml").write_text(
        "services:\n  web:\n    image: x\n    container_name: ${TENANT}-web\n"
        "    environment:\n      URL: https://${TENANT}.${DOMAIN}\n      KEY: ${WEB_SECRET_KEY}\n"
        "      COST: $$5\n")
    (tmpl / "README.md").write_text("not copied\n")
    (tmpl / "sub").mkdir()
    res = edge.ctl("tenant", "provision", "envtmpl", "--domain", "example.org", "--out", edge.out,
                   env={"PORTIER_TEMPLATE": str(tmpl)})
    assert_rc(res, 0)
    d = edge.out / "envtmpl"
    assert sorted(p.name for p in d.iterdir()) == [".env", "compose.yml"]
    assert (d / "compose.yml").read_text() == (
        "services:\n  web:\n    image: x\n    container_name: envtmpl-web\n"
        "    environment:\n      URL: https://envtmpl.example.org\n      KEY: ${WEB_SECRET_KEY}\n"
        "      COST: $$5\n")


def test_up_without_docker(edge, tmp_path):
    empty = tmp_path / "nobin"
    empty.mkdir()
    res = provision(edge, "nodock", "--up", env={"PATH": str(empty)})
    assert_rc(res, 1)
    assert "docker is not installed" in res.stderr
    assert "routes are registered" in res.stderr
    d = edge.out / "nodock"
    assert f"docker compose -p nodock -f {d}/compose.yml --env-file {d}/.env up -d" in res.stderr
    assert (d / "compose.yml").is_file() and (d / ".env").is_file()
    status, got = edge.cc.call("GET", "/v1/tenants/nodock", expect=200)
    assert got["tenant"] == expected_tenant("nodock", "example.com")


def test_up_runs_docker_compose_without_shell(edge, tmp_path):
    record = tmp_path / "argv.txt"
    ok = fake_docker(tmp_path / "okbin", 0, record)
    res = provision(edge, "dock", "--up", env={"PATH": str(ok)})
    assert_rc(res, 0)
    d = edge.out / "dock"
    assert record.read_text().splitlines() == [
        "compose", "-p", "dock", "-f", f"{d}/compose.yml", "--env-file", f"{d}/.env", "up", "-d"]

    bad = fake_docker(tmp_path / "badbin", 3, tmp_path / "argv2.txt")
    res = provision(edge, "dock", "--force", "--up", env={"PATH": str(bad)})
    assert_rc(res, 1)
    assert "docker compose up failed" in res.stderr and "routes are registered" in res.stderr
    edge.cc.call("GET", "/v1/tenants/dock", expect=200)


def test_edge_rejection_leaves_files(edge):
    # another tenant already routes the host provision would claim
    other = {"routes": [{"rule": "Host(`taken.example.com`)", "service": "web"}],
             "services": {"web": {"backends": ["127.0.0.1:9"]}}}
    edge.cc.call("PUT", "/v1/tenants/squatter", other, expect=(200, 201))
    res = provision(edge, "taken")
    assert_rc(res, 1)
    assert "routes not registered" in res.stderr
    assert f"files rendered in {edge.out}/taken" in res.stderr
    assert (edge.out / "taken" / "compose.yml").is_file()
    edge.cc.call("GET", "/v1/tenants/taken", expect=404)


def test_unreachable_edge_leaves_files(ctl_bin, tmp_path):
    out = tmp_path / "tenants"
    res = run_ctl(ctl_bin, "tenant", "provision", "lonely", "--domain", "example.com",
                  "--template", TEMPLATE, "--out", out, sock=tmp_path / "nothing.sock")
    assert_rc(res, 3)
    assert "routes not registered" in res.stderr
    assert (out / "lonely" / "compose.yml").is_file()
    assert stat.S_IMODE((out / "lonely" / ".env").stat().st_mode) == 0o600


@pytest.mark.parametrize("args", [
    ["Demo", "--domain", "example.com"],            # uppercase name
    ["-demo", "--domain", "example.com"],           # leading dash reads as an option
    ["de_mo", "--domain", "example.com"],
    ["a" * 64, "--domain", "example.com"],          # name too long
    ["a" * 60, "--domain", "example.com"],          # api-NAME label over 63
    ["demo", "--domain", "exa mple.com"],
    ["demo", "--domain", "exa_mple.com"],
    ["demo", "--domain", "-example.com"],
    ["demo", "--domain", "1.2.3.4"],                # an address, not a DNS name
    ["demo"],                                       # no --domain
    ["demo", "--domain"],
    ["demo", "--domain", "example.com", "--bogus"],
])
def test_provision_usage_errors(ctl_bin, tmp_path, args):
    out = tmp_path / "tenants"
    res = run_ctl(ctl_bin, "tenant", "provision", *args, "--template", TEMPLATE, "--out", out,
                  sock=tmp_path / "nothing.sock")
    assert_rc(res, 2)
    assert not out.exists() or not any(out.iterdir())


def test_deprovision(edge):
    assert_rc(provision(edge, "gone"), 0)
    d = edge.out / "gone"
    res = edge.ctl("tenant", "deprovision", "gone", "--purge", "--out", edge.out)
    assert_rc(res, 0)
    edge.cc.call("GET", "/v1/tenants/gone", expect=404)
    assert not d.exists() and edge.out.is_dir()
    ls = edge.ctl("tenant", "ls")
    assert "gone" not in ls.stdout

    res = edge.ctl("tenant", "deprovision", "gone", "--purge", "--out", edge.out)
    assert_rc(res, 0)
    assert "not registered" in res.stdout


def test_deprovision_down_without_docker(edge, tmp_path):
    assert_rc(provision(edge, "stay"), 0)
    empty = tmp_path / "nobin"
    empty.mkdir()
    res = edge.ctl("tenant", "deprovision", "stay", "--down", "--out", edge.out,
                   env={"PATH": str(empty)})
    assert_rc(res, 1)
    assert "docker is not installed" in res.stderr
    assert "compose -p stay" in res.stderr and " down" in res.stderr
    edge.cc.call("GET", "/v1/tenants/stay", expect=200)
    assert (edge.out / "stay" / ".env").is_file()

    record = tmp_path / "argv.txt"
    ok = fake_docker(tmp_path / "okbin", 0, record)
    res = edge.ctl("tenant", "deprovision", "stay", "--down", "--out", edge.out,
                   env={"PATH": str(ok)})
    assert_rc(res, 0)
    d = edge.out / "stay"
    assert record.read_text().splitlines() == [
        "compose", "-p", "stay", "-f", f"{d}/compose.yml", "--env-file", f"{d}/.env", "down"]
    edge.cc.call("GET", "/v1/tenants/stay", expect=404)


def test_purge_refuses_symlinks_and_stays_inside(edge, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me\n")
    edge.out.mkdir(parents=True)
    (edge.out / "evil").symlink_to(victim)
    res = edge.ctl("tenant", "deprovision", "evil", "--purge", "--out", edge.out)
    assert_rc(res, 1)
    assert "symbolic link" in res.stderr
    assert (victim / "precious").read_text() == "keep me\n"

    # links below the tenant's directory are removed, never followed
    assert_rc(provision(edge, "linked"), 0)
    sub = edge.out / "linked" / "data" / "deeper"
    sub.mkdir(parents=True)
    (sub / "file").write_text("x")
    (edge.out / "linked" / "escape").symlink_to(victim)
    (sub / "escape-file").symlink_to(victim / "precious")
    res = edge.ctl("tenant", "deprovision", "linked", "--purge", "--out", edge.out)
    assert_rc(res, 0)
    assert not (edge.out / "linked").exists()
    assert (victim / "precious").read_text() == "keep me\n"
