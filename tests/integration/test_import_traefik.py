"""portierctl tenant import-traefik (DESIGN.md section 5).

A compose file written here with Traefik labels in both forms (list "k=v" and
map), variables from .env and the environment, a container_name, a
stripprefix middleware and a certresolver; the printed tenants document must
route the same hosts to the same CONTAINER:PORT as a table written by hand.
Labels that cannot be translated are named on stderr and make the exit code 1.
--apply pushes the tenant to a running edge.
"""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from controlclient import ControlClient, socket_of
from httpclient import http

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST_RE = re.compile(r"Host\(`([^`]+)`\)")
PREFIX_RE = re.compile(r"PathPrefix\(`([^`]+)`\)")

COMPOSE = """\
x-restart: &restart
  restart: unless-stopped

services:
  front:
    <<: *restart
    image: example/front
    container_name: ${STACK}-front
    labels:
      - traefik.enable=true
      - "traefik.http.routers.front.rule=Host(`www.${DOMAIN}`)"
      - traefik.http.routers.front.entrypoints=websecure
      - traefik.http.routers.front.tls.certresolver=letsencrypt
      - traefik.http.services.front.loadBalancer.server.port=8080
      - traefik.http.routers.front-http.rule=Host(`www.${DOMAIN}`)
      - traefik.http.routers.front-http.entrypoints=web
      - traefik.http.routers.front-http.middlewares=to-https
      - traefik.http.middlewares.to-https.redirectscheme.scheme=https
  api:
    image: example/api
    labels:
      traefik.enable: "true"
      traefik.http.routers.api.rule: Host(`www.${DOMAIN}`) && PathPrefix(`/api`)
      traefik.http.routers.api.entrypoints: websecure
      traefik.http.routers.api.tls: "true"
      traefik.http.routers.api.middlewares: api-strip@docker
      traefik.http.routers.api.priority: "50"
      traefik.http.middlewares.api-strip.stripprefix.prefixes: /api
      traefik.http.services.api-svc.loadbalancer.server.port: "${API_PORT:-4000}"
      traefik.http.services.api-svc.loadbalancer.healthcheck.path: /health
      traefik.http.services.api-svc.loadbalancer.healthcheck.interval: 10s
      traefik.http.routers.api-direct.rule: Host(`api.${DOMAIN}`)
      traefik.http.routers.api-direct.service: api-svc
      traefik.http.routers.api-direct.tls.certresolver: letsencrypt
  jobs:
    image: example/jobs
    expose:
      - "9000"
    labels:
      - traefik.http.routers.jobs.rule=Host(`jobs.${DOMAIN}`) && PathRegexp(`^/v[0-9]+$$`)
      - traefik.http.routers.jobs.tls.certresolver=letsencrypt
  db:
    image: postgres:16
"""

DOTENV = """\
# variables docker compose would read
DOMAIN=shop.example
STACK=shop
API_PORT=4100
"""

# What the labels mean, written by hand: (host, path prefix, backend, strip_prefix).
EXPECTED = {
    ("www.shop.example", None, "shop-front:8080", None),
    ("www.shop.example", "/api", "api:4100", "/api"),
    ("api.shop.example", None, "api:4100", None),
    ("jobs.shop.example", None, "jobs:9000", None),
}




def run_ctl(binary, *args, sock=None, env=None, timeout=30):
    """run_ctl: portierctl [-s SOCK] ARGS in an environment without the test's
    compose variables (env adds some back)."""
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith("PORTIER_") and k not in ("DOMAIN", "STACK", "API_PORT",
                                                             "COMPOSE_PROJECT_NAME")}
    full_env.update(env or {})
    argv = [str(binary)] + (["-s", str(sock)] if sock else []) + [str(a) for a in args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=full_env)


def explain(res):
    return f"rc={res.returncode}\nstdout: {res.stdout!r}\nstderr: {res.stderr!r}"


def write_project(root, dirname="Shop_Front", compose=COMPOSE, dotenv=DOTENV):
    d = root / dirname
    d.mkdir(parents=True)
    (d / "docker-compose.yml").write_text(compose)
    if dotenv is not None:
        (d / ".env").write_text(dotenv)
    return d / "docker-compose.yml"


def routing_table(tenant):
    """routing_table: {(host, prefix, backend, strip)} read from a tenant."""
    table = set()
    for route in tenant["routes"]:
        prefixes = PREFIX_RE.findall(route["rule"]) or [None]
        for host in HOST_RE.findall(route["rule"]):
            for backend in tenant["services"][route["service"]]["backends"]:
                for prefix in prefixes:
                    table.add((host, prefix, backend, route.get("strip_prefix")))
    return table


def the_tenant(res):
    doc = json.loads(res.stdout)
    assert list(doc) == ["tenants"] and len(doc["tenants"]) == 1, doc
    (name, tenant), = doc["tenants"].items()
    return name, tenant


def test_translates_labels(ctl_bin, tmp_path):
    res = run_ctl(ctl_bin, "tenant", "import-traefik", write_project(tmp_path))
    assert res.returncode == 0, explain(res)
    assert "skipped" not in res.stderr, res.stderr
    name, tenant = the_tenant(res)
    assert name == "shop-front"  # the directory, lowercased and sanitised
    assert routing_table(tenant) == EXPECTED
    assert tenant["tls"] == "acme"
    by_host = {HOST_RE.search(r["rule"]).group(1) + (PREFIX_RE.search(r["rule"]).group(1)
               if PREFIX_RE.search(r["rule"]) else ""): r for r in tenant["routes"]}
    assert by_host["www.shop.example/api"]["priority"] == 50
    assert by_host["www.shop.example"]["rule"] == "Host(`www.shop.example`)"
    # $$ is a literal $, the rule text is otherwise kept as written
    assert by_host["jobs.shop.example"]["rule"] == \
        "Host(`jobs.shop.example`) && PathRegexp(`^/v[0-9]+$`)"
    assert tenant["services"]["api-svc"]["health"] == {"path": "/health", "interval": "10s"}
    # the http router only redirected to https: no route of its own
    assert len(tenant["routes"]) == 4


def test_environment_wins_over_dotenv(ctl_bin, tmp_path):
    res = run_ctl(ctl_bin, "tenant", "import-traefik", write_project(tmp_path), "--tenant", "shop",
                  env={"DOMAIN": "override.example", "STACK": "prod"})
    assert res.returncode == 0, explain(res)
    name, tenant = the_tenant(res)
    assert name == "shop"
    table = routing_table(tenant)
    assert ("www.override.example", None, "prod-front:8080", None) in table
    assert ("api.override.example", None, "api:4100", None) in table


def test_defaults_and_missing_dotenv(ctl_bin, tmp_path):
    compose = COMPOSE.replace("${STACK}-front", "${STACK:-dflt}-front").replace(
        "Host(`api.${DOMAIN}`)", "Host(`api.${APIDOMAIN-fallback.example}`)")
    res = run_ctl(ctl_bin, "tenant", "import-traefik",
                  write_project(tmp_path, "plain", compose, dotenv=None),
                  env={"DOMAIN": "env.example"})
    assert res.returncode == 0, explain(res)
    name, tenant = the_tenant(res)
    assert name == "plain"
    table = routing_table(tenant)
    assert ("www.env.example", None, "dflt-front:8080", None) in table
    assert ("api.fallback.example", None, "api:4000", None) in table  # ${API_PORT:-4000}


def test_untranslatable_label_is_named(ctl_bin, tmp_path):
    compose = COMPOSE + """\
  admin:
    image: example/admin
    container_name: shop-admin
    labels:
      - traefik.http.routers.admin.rule=Host(`admin.${DOMAIN}`)
      - traefik.http.routers.admin.middlewares=auth
      - traefik.http.routers.admin.tls.certresolver=letsencrypt
      - traefik.http.middlewares.auth.basicauth.users=admin:$$apr1$$xyz
      - traefik.http.services.admin.loadbalancer.server.port=3000
"""
    res = run_ctl(ctl_bin, "tenant", "import-traefik", write_project(tmp_path, "shop", compose))
    assert res.returncode == 1, explain(res)
    assert "skipped label traefik.http.middlewares.auth.basicauth.users" in res.stderr
    assert "traefik.http.routers.admin.middlewares" in res.stderr
    # what could be translated is still printed; the protected router is left out
    name, tenant = the_tenant(res)
    assert routing_table(tenant) == EXPECTED
    assert "admin" not in tenant["services"]


def test_web_only_routers_mean_tls_off(ctl_bin, tmp_path):
    compose = """\
services:
  app:
    container_name: app-1
    labels:
      - traefik.http.routers.app.rule=Host(`plain.example`)
      - traefik.http.routers.app.entrypoints=web
      - traefik.http.services.app.loadbalancer.server.port=80
"""
    res = run_ctl(ctl_bin, "tenant", "import-traefik", write_project(tmp_path, "p", compose, None))
    assert res.returncode == 0, explain(res)
    _, tenant = the_tenant(res)
    assert tenant["tls"] == "off"
    assert routing_table(tenant) == {("plain.example", None, "app-1:80", None)}


def test_router_without_port_needs_one_exposed_port(ctl_bin, tmp_path):
    compose = """\
services:
  two:
    ports: ["8080:80", "8443:443"]
    labels:
      - traefik.http.routers.two.rule=Host(`two.example`)
  one:
    ports: ["127.0.0.1:8081:3000/tcp"]
    labels:
      - traefik.http.routers.one.rule=Host(`one.example`)
"""
    res = run_ctl(ctl_bin, "tenant", "import-traefik", write_project(tmp_path, "q", compose, None))
    assert res.returncode == 1, explain(res)
    assert "two" in res.stderr and "exactly one port" in res.stderr
    _, tenant = the_tenant(res)
    assert routing_table(tenant) == {("one.example", None, "one:3000", None)}


@pytest.mark.parametrize("text,message", [
    ("a: " + "[" * 70 + "]" * 70 + "\n", "nested deeper than 64"),
    ("services:\n  s:\n    labels:\n      - traefik.http.routers.r.rule=${REQ:?set REQ}\n",
     "REQ"),
    ("services: [unclosed\n", "line"),
])
def test_bad_compose_files(ctl_bin, tmp_path, text, message):
    res = run_ctl(ctl_bin, "tenant", "import-traefik", write_project(tmp_path, "bad", text, None))
    assert res.returncode == 1, explain(res)
    assert message in res.stderr, res.stderr


def test_large_file_refused(ctl_bin, tmp_path):
    big = "services: {}\n" + "#" * (4 * 1024 * 1024) + "\n"
    res = run_ctl(ctl_bin, "tenant", "import-traefik", write_project(tmp_path, "big", big, None))
    assert res.returncode == 1, explain(res)
    assert "larger than" in res.stderr


def test_usage_errors(ctl_bin, tmp_path):
    f = write_project(tmp_path)
    for args in (["--tenant", "Bad_Name", f], [], [f, "--bogus"], [f, f]):
        res = run_ctl(ctl_bin, "tenant", "import-traefik", *args)
        assert res.returncode == 2, explain(res)


@pytest.fixture
def edge(portier_factory):
    p = portier_factory({})
    cc = ControlClient.of(p)
    r = cc.request("GET", "/v1/tenants")
    assert r.status == 200, f"GET /v1/tenants: {r.status} {r.body[:300]!r}"
    return p, cc


def test_apply(ctl_bin, tmp_path, edge):
    p, cc = edge
    res = run_ctl(ctl_bin, "tenant", "import-traefik", write_project(tmp_path), "--apply",
                  sock=socket_of(p))
    assert res.returncode == 0, explain(res)
    name, tenant = the_tenant(res)
    status, got = cc.call("GET", f"/v1/tenants/{name}", expect=200)
    assert got["tenant"] == tenant
    assert routing_table(got["tenant"]) == EXPECTED

    # a second project claiming the same hosts is refused by the edge
    res = run_ctl(ctl_bin, "tenant", "import-traefik", tmp_path / "Shop_Front" / "docker-compose.yml",
                  "--tenant", "intruder", "--apply", sock=socket_of(p))
    assert res.returncode == 1, explain(res)
    assert "not applied" in res.stderr
    cc.call("GET", "/v1/tenants/intruder", expect=404)


def test_apply_routes_traffic(ctl_bin, tmp_path, portier_factory, backend_factory):
    """A plain-HTTP project whose "container" is a local backend: after --apply
    the edge sends the host to it. Skipped labels do not stop the rest."""
    b = backend_factory("imported")
    host, port = b.address.rsplit(":", 1)
    compose = f"""\
services:
  app:
    container_name: "{host}"
    labels:
      - traefik.http.routers.app.rule=Host(`app.imported.test`)
      - traefik.http.routers.app.entrypoints=web
      - traefik.http.services.app.loadbalancer.server.port=${{APP_PORT}}
      - traefik.http.services.app.loadbalancer.sticky.cookie=true
"""
    p = portier_factory({})
    cc = ControlClient.of(p)
    f = write_project(tmp_path, "imported", compose, dotenv=f"APP_PORT={port}\n")
    res = run_ctl(ctl_bin, "tenant", "import-traefik", f, "--apply", sock=socket_of(p))
    assert res.returncode == 1, explain(res)  # the sticky label was skipped ...
    assert "skipped label traefik.http.services.app.loadbalancer.sticky.cookie" in res.stderr
    cc.call("GET", "/v1/tenants/imported", expect=200)  # ... the rest was applied
    r = http(p.http_port, "app.imported.test", "/hello")
    assert r.status == 200 and r.header("X-Backend") == "imported", r
