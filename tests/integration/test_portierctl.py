"""portierctl against a running portier (DESIGN.md section 5).

Each command is run as the real binary (PORTIERCTL_BIN, default
build/config/portierctl/portierctl) on a real edge, and its effect is checked
through the control API and through the proxy. Exit codes: 0 success,
1 rejected by the edge (its message printed), 2 usage, 3 edge unreachable.
The socket comes from -s, else PORTIER_SOCKET.
"""

import json
import os
import socket
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from controlclient import ControlClient, shorthand, socket_of
from harness import wait_until
from httpclient import http, https

REPO_ROOT = Path(__file__).resolve().parents[2]
FAKE = "127.0.0.1:9"




def run_ctl(binary, *args, sock=None, env_sock=None, json_out=False, timeout=20):
    """run_ctl: portierctl [-s SOCK] [--json] ARGS with PORTIER_SOCKET set only
    when env_sock is given; a CompletedProcess with text output."""
    argv = [str(binary)]
    if sock is not None:
        argv += ["-s", str(sock)]
    if json_out:
        argv.append("--json")
    argv += [str(a) for a in args]
    env = {k: v for k, v in os.environ.items() if k != "PORTIER_SOCKET"}
    if env_sock is not None:
        env["PORTIER_SOCKET"] = str(env_sock)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


def out(res):
    return res.stdout + res.stderr


def explain(res):
    return f"rc={res.returncode}\nstdout: {res.stdout!r}\nstderr: {res.stderr!r}"


def assert_rc(res, rc):
    assert res.returncode == rc, explain(res)


@pytest.fixture
def edge(portier_factory, backend_factory, ctl_bin):
    """edge: portier with tenant beta (beta.test → b1); w1, w2 spare backends;
    ctl(*args, json_out=False) runs portierctl -s SOCKET."""
    bk = {n: backend_factory(n) for n in ("b1", "w1", "w2")}
    tenants = {"beta": shorthand("beta.test", bk["b1"])}
    p = portier_factory(tenants)
    cc = ControlClient.of(p)
    sock = socket_of(p)

    def ctl(*args, **kw):
        return run_ctl(ctl_bin, *args, sock=sock, **kw)

    return SimpleNamespace(p=p, cc=cc, bk=bk, sock=sock, ctl=ctl, tenants=tenants)


# -- tenant ---------------------------------------------------------------------------

def test_tenant_add_routes(edge):
    """`tenant add web --host H1 --host H2 --backend B1 --backend B2`: exit 0;
    the edge holds the shorthand form; both hosts route to those backends."""
    res = edge.ctl("tenant", "add", "web", "--host", "web.test", "--host", "www.web.test",
                   "--backend", edge.bk["w1"].address, "--backend", edge.bk["w2"].address)
    assert_rc(res, 0)
    t = edge.cc.get("web").json()["tenant"]
    assert t["hosts"] == ["web.test", "www.web.test"], t
    assert t["backends"] == [edge.bk["w1"].address, edge.bk["w2"].address], t
    p = edge.p
    for host in ("web.test", "www.web.test"):
        r = https(p.https_port, host, p.ca_file, "/via-ctl")
        assert r.status == 200 and r.header("X-Backend") in ("w1", "w2"), (host, r)


def test_tenant_add_options(edge):
    """--rate 100/1s --burst 200 --per client_ip --tls internal end up in the
    tenant as rate_limit {average 100, period 1s, burst 200, per client_ip}
    and tls internal; --tls off gives a plain-HTTP tenant that routes."""
    res = edge.ctl("tenant", "add", "lim", "--host", "lim.test", "--backend",
                   edge.bk["w1"].address, "--rate", "100/1s", "--burst", "200",
                   "--per", "client_ip", "--tls", "internal")
    assert_rc(res, 0)
    t = edge.cc.get("lim").json()["tenant"]
    rl = t["rate_limit"]
    assert (rl["average"], rl["period"], rl["burst"], rl["per"]) == \
        (100, "1s", 200, "client_ip"), t
    assert t["tls"] == "internal", t

    res = edge.ctl("tenant", "add", "plain", "--host", "plain.test", "--backend",
                   edge.bk["w2"].address, "--tls", "off")
    assert_rc(res, 0)
    assert edge.cc.get("plain").json()["tenant"]["tls"] == "off"
    r = http(edge.p.http_port, "plain.test", "/plain")
    assert r.status == 200 and r.header("X-Backend") == "w2", r


def test_tenant_ls_and_show(edge):
    """`tenant ls` lists every tenant by name; `tenant show NAME` prints its
    hosts and backends; `tenant show` of an unknown name exits 1 saying so."""
    assert_rc(edge.ctl("tenant", "add", "web", "--host", "web.test", "--backend",
                       edge.bk["w1"].address), 0)
    res = edge.ctl("tenant", "ls")
    assert_rc(res, 0)
    assert "beta" in res.stdout and "web" in res.stdout, explain(res)
    res = edge.ctl("tenant", "show", "web")
    assert_rc(res, 0)
    assert "web.test" in res.stdout and edge.bk["w1"].address in res.stdout, explain(res)
    res = edge.ctl("tenant", "show", "nobody")
    assert_rc(res, 1)
    assert "nobody" in out(res) or "not found" in out(res).lower() or \
        "no tenant" in out(res).lower(), explain(res)


def test_tenant_rm(edge):
    """`tenant rm NAME`: exit 0; the tenant is gone from the API and its host
    no longer routes; removing it again exits 1."""
    assert_rc(edge.ctl("tenant", "add", "gone", "--host", "gone.test", "--backend",
                       edge.bk["w1"].address, "--tls", "off"), 0)
    assert http(edge.p.http_port, "gone.test").status == 200
    assert_rc(edge.ctl("tenant", "rm", "gone"), 0)
    assert edge.cc.get("gone").status == 404
    assert http(edge.p.http_port, "gone.test", "/after-rm").status == 404
    res = edge.ctl("tenant", "rm", "gone")
    assert_rc(res, 1)
    assert out(res).strip(), explain(res)


# -- certificates --------------------------------------------------------------------

def test_cert_ls_before_and_after(edge):
    """`cert ls` before any handshake prints "no certificates yet"; after an
    HTTPS request to beta.test it lists beta.test (source internal)."""
    res = edge.ctl("cert", "ls")
    assert_rc(res, 0)
    assert "no certificates yet" in res.stdout, explain(res)
    p = edge.p
    assert https(p.https_port, "beta.test", p.ca_file, "/cert").status == 200
    res = edge.ctl("cert", "ls")
    assert_rc(res, 0)
    assert "beta.test" in res.stdout and "internal" in res.stdout, explain(res)


def test_cert_renew(edge):
    """`cert renew HOST` for a routed host exits 0 (and the host keeps
    serving); for a host no tenant routes it exits 1."""
    p = edge.p
    assert https(p.https_port, "beta.test", p.ca_file, "/cert").status == 200
    assert_rc(edge.ctl("cert", "renew", "beta.test"), 0)
    wait_until(lambda: https(p.https_port, "beta.test", p.ca_file, "/after").status == 200,
               10, what="beta.test serving after renew")
    res = edge.ctl("cert", "renew", "nobody.test")
    assert_rc(res, 1)
    assert out(res).strip(), explain(res)


# -- status, reload, check -------------------------------------------------------------

def test_status(edge):
    """`status` exits 0 and prints a table with the generation and the tenants."""
    res = edge.ctl("status")
    assert_rc(res, 0)
    gen = edge.cc.generation()
    assert "generation" in res.stdout and str(gen) in res.stdout, explain(res)
    assert "beta" in res.stdout, explain(res)


def test_reload(edge):
    """`reload` after a hand edit exits 0 and the new host routes; with a
    broken file it exits 1 naming the field, and the old table stays."""
    p = edge.p
    p.write_tenants({**edge.tenants, "hand": shorthand("hand.test", edge.bk["w1"],
                                                        tls="off")})
    assert_rc(edge.ctl("reload"), 0)
    r = http(p.http_port, "hand.test", "/reloaded")
    assert r.status == 200 and r.header("X-Backend") == "w1", r
    before = edge.cc.table()
    p.write_tenants(raw=json.dumps({"tenants": {"bad": {
        "routes": [{"rule": "Host(`bad.test`", "service": "web"}],
        "services": {"web": {"backends": [FAKE]}}}}}))
    res = edge.ctl("reload")
    assert_rc(res, 1)
    assert "routes[0].rule" in out(res), explain(res)
    assert edge.cc.table() == before


def test_check(edge, tmp_path):
    """`check FILE`: a good tenants document and a good single tenant exit 0;
    a bad one exits 1 naming the field; nothing is applied."""
    before = edge.cc.table()
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"tenants": {"newt": shorthand("newt.test", FAKE)}}))
    assert_rc(edge.ctl("check", good), 0)
    single = tmp_path / "single.json"
    single.write_text(json.dumps(shorthand("single.test", FAKE)))
    assert_rc(edge.ctl("check", single), 0)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"tenants": {"newt": {
        "routes": [{"rule": "Host(`newt.test`) &&", "service": "web"}],
        "services": {"web": {"backends": [FAKE]}}}}}))
    res = edge.ctl("check", bad)
    assert_rc(res, 1)
    assert "routes[0].rule" in out(res), explain(res)
    bad_backend = tmp_path / "bad2.json"
    bad_backend.write_text(json.dumps({"tenants": {"newt": shorthand("newt.test", "10.0.0.1")}}))
    res = edge.ctl("check", bad_backend)
    assert_rc(res, 1)
    assert "backends[0]" in out(res), explain(res)
    assert edge.cc.table() == before


# -- --json ---------------------------------------------------------------------------

def test_json_output_of_every_command(edge, tmp_path):
    """With --json every command prints the API's JSON answer, which parses:
    add/rm/reload {"generation"}, ls {"generation", "tenants"}, show
    {"name", "tenant"}, cert ls {"certs"}, cert renew {"host", "state"},
    status {"version", "generation", ...}, check {"ok": true}."""
    p = edge.p

    def j(*args):
        res = edge.ctl(*args, json_out=True)
        assert_rc(res, 0)
        try:
            return json.loads(res.stdout)
        except ValueError:
            raise AssertionError(f"--json {' '.join(map(str, args))}: not JSON\n{explain(res)}")

    g = edge.cc.generation()
    assert j("tenant", "add", "web", "--host", "web.test", "--backend",
             edge.bk["w1"].address) == {"generation": g + 1}
    ls = j("tenant", "ls")
    assert ls["generation"] == g + 1 and set(ls["tenants"]) == {"beta", "web"}, ls
    show = j("tenant", "show", "web")
    assert show["name"] == "web" and show["tenant"]["hosts"] == ["web.test"], show
    assert j("cert", "ls") == {"certs": []}
    assert https(p.https_port, "web.test", p.ca_file, "/json").status == 200
    certs = j("cert", "ls")["certs"]
    assert [c["host"] for c in certs] == ["web.test"], certs
    assert j("cert", "renew", "web.test") == {"host": "web.test", "state": "renewing"}
    st = j("status")
    assert {"version", "generation", "workers", "connections", "tenants"} <= set(st), st
    assert j("reload")["generation"] >= g + 1
    f = tmp_path / "good.json"
    f.write_text(json.dumps({"tenants": {"newt": shorthand("newt.test", FAKE)}}))
    assert j("check", f) == {"ok": True}
    gen = edge.cc.generation()
    assert j("tenant", "rm", "web") == {"generation": gen + 1}


def test_json_error_answer(edge):
    """With --json a rejected command still exits 1, and what it prints on
    stdout (if anything) is the edge's JSON error."""
    res = edge.ctl("tenant", "add", "thief", "--host", "beta.test", "--backend", FAKE,
                   json_out=True)
    assert_rc(res, 1)
    if res.stdout.strip():
        err = json.loads(res.stdout)
        assert err.get("tenant") == "beta", err


# -- exit codes -------------------------------------------------------------------------

def test_rejected_host_of_another_tenant(edge):
    """`tenant add` with a host another tenant routes: exit 1, the message
    names that tenant, and nothing changes."""
    before = edge.cc.table()
    res = edge.ctl("tenant", "add", "thief", "--host", "beta.test", "--backend", FAKE)
    assert_rc(res, 1)
    assert "beta" in out(res), explain(res)
    assert edge.cc.table() == before


def test_rejected_bad_backend_names_field(edge):
    """`tenant add` with a backend the edge refuses (no port): exit 1 (or 2
    when portierctl refuses it itself), with a message; nothing changes."""
    before = edge.cc.table()
    res = edge.ctl("tenant", "add", "nop", "--host", "nop.test", "--backend", "10.0.0.1")
    assert res.returncode in (1, 2), explain(res)
    assert "backend" in out(res).lower(), explain(res)
    assert edge.cc.table() == before


@pytest.mark.parametrize("args", [
    pytest.param(["tenant", "add", "web", "--host", "web.test"], id="add-without-backend"),
    pytest.param(["tenant", "add", "web", "--backend", FAKE], id="add-without-host"),
    pytest.param(["tenant", "add", "--host", "web.test", "--backend", FAKE], id="add-without-name"),
    pytest.param(["tenant", "add", "web", "--host", "web.test", "--backend", FAKE,
                  "--rate", "lots"], id="add-bad-rate"),
    pytest.param(["tenant", "add", "web", "--host", "web.test", "--backend", FAKE,
                  "--per", "planet", "--rate", "1/1s"], id="add-bad-per"),
    pytest.param(["tenant", "rm"], id="rm-without-name"),
    pytest.param(["tenant", "show"], id="show-without-name"),
    pytest.param(["tenant", "frobnicate"], id="unknown-subcommand"),
    pytest.param(["cert", "renew"], id="renew-without-host"),
    pytest.param(["frobnicate"], id="unknown-command"),
    pytest.param([], id="no-command"),
    pytest.param(["status", "extra"], id="extra-argument"),
])
def test_usage_errors_exit_2(edge, args):
    """Bad command lines exit 2 with a message on stderr and send nothing:
    the table is unchanged."""
    before = edge.cc.table()
    res = edge.ctl(*args)
    assert_rc(res, 2)
    assert res.stderr.strip(), explain(res)
    assert edge.cc.table() == before


def test_unreachable_exit_3(ctl_bin, tmp_path):
    """No portier on the socket: exit 3 with a readable one-line reason that
    names the socket, both for a missing socket file and for a stale one
    nobody listens on."""
    missing = tmp_path / "none.sock"
    res = run_ctl(ctl_bin, "status", sock=missing)
    assert_rc(res, 3)
    assert str(missing) in res.stderr, explain(res)
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) <= 3

    stale = Path(f"/tmp/ptr-stale-{os.getpid()}.sock")  # short: sun_path
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(str(stale))
        s.close()  # the file stays, nobody listens
        res = run_ctl(ctl_bin, "tenant", "ls", sock=stale)
        assert_rc(res, 3)
        assert str(stale) in res.stderr, explain(res)
    finally:
        s.close()
        stale.unlink(missing_ok=True)


def test_socket_from_env_and_flag(edge, ctl_bin, tmp_path):
    """PORTIER_SOCKET alone reaches the edge; -s wins over PORTIER_SOCKET in
    both directions (good flag + bad env → 0, bad flag + good env → 3)."""
    missing = tmp_path / "none.sock"
    res = run_ctl(ctl_bin, "tenant", "ls", env_sock=edge.sock)
    assert_rc(res, 0)
    assert "beta" in res.stdout, explain(res)
    assert_rc(run_ctl(ctl_bin, "status", sock=edge.sock, env_sock=missing), 0)
    assert_rc(run_ctl(ctl_bin, "status", sock=missing, env_sock=edge.sock), 3)
