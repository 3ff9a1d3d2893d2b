"""docker/: the image, its production config and the example stack.

No image is built here (docker/build-test.sh builds one and runs its
binaries): these checks read docker/Dockerfile, run `docker-compose config`
on docker/compose.yml, `portier --check` on docker/portier.json with
docker/tenants.json, the image's entry point with a stand-in portier, and
`portierctl tenant import-traefik` on the Traefik stack the README's
"Moving from Traefik" section describes.
"""

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKER = REPO_ROOT / "docker"
COMPOSE = DOCKER / "compose.yml"
HOST_RE = re.compile(r"Host\(`([^`]+)`\)")
PREFIX_RE = re.compile(r"PathPrefix\(`([^`]+)`\)")

TENANTS = ("alpha", "beta")
# What the example stack is for, written by hand: host -> backend portier uses.
ROUTES = {
    "alpha.example.com": "alpha-web:8080",
    "api-alpha.example.com": "alpha-api:4000",
    "beta.example.com": "beta-web:8080",
    "api-beta.example.com": "beta-api:4000",
}


# ---------------------------------------------------------------- compose

def compose_secrets():
    """compose_secrets: the ${VAR:?...} the stack requires, with throwaway values."""
    names = sorted(set(re.findall(r"\$\{([A-Z0-9_]+):\?", COMPOSE.read_text())))
    return {n: f"test-{n.lower()}" for n in names}


@pytest.fixture(scope="module")
def no_dotenv(tmp_path_factory):
    """no_dotenv: an empty --env-file, so an operator's docker/.env stays out of the checks."""
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("")
    return path


def run_compose(env_file, *args, secrets=True):
    exe = shutil.which("docker-compose")
    if not exe:
        pytest.skip("docker-compose not installed (tests/deps.sh installs it)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    if secrets:
        env.update(compose_secrets())
    return subprocess.run([exe, "--env-file", str(env_file), "-f", str(COMPOSE), *args],
                          capture_output=True, text=True,
                          timeout=60, env=env, cwd=DOCKER)


@pytest.fixture(scope="module")
def stack(no_dotenv):
    """stack: the stack as docker-compose resolves it (`config`, YAML)."""
    yaml = pytest.importorskip("yaml")
    res = run_compose(no_dotenv, "config")
    assert res.returncode == 0, res.stderr
    return yaml.safe_load(res.stdout)


def published_ports(svc):
    """published_ports: {(published, target)} of a service, short or long form."""
    out = set()
    for p in svc.get("ports") or []:
        if isinstance(p, dict):
            out.add((int(p.get("published", 0) or 0), int(p["target"])))
        else:
            parts = str(p).split("/")[0].split(":")
            out.add((int(parts[-2]) if len(parts) > 1 else 0, int(parts[-1])))
    return out


def mounts(svc):
    """mounts: {target: (type, source)} of a service's volumes, short or long form."""
    out = {}
    for v in svc.get("volumes") or []:
        if isinstance(v, dict):
            out[v["target"]] = (v.get("type", "volume"), v.get("source"))
        else:
            parts = v.split(":")
            source, target = parts[0], parts[1]
            out[target] = ("bind" if source.startswith(("/", ".")) else "volume", source)
    return out


def networks_of(stack, svc_name):
    """networks_of: the network names (not keys) a service is on."""
    nets = stack["services"][svc_name].get("networks") or {}
    return {(stack["networks"][k] or {}).get("name", k) for k in nets}


def network_def(stack, name):
    for key, d in stack["networks"].items():
        if (d or {}).get("name", key) == name:
            return d or {}
    raise AssertionError(f"no network named {name}")


def by_container(stack):
    return {s.get("container_name", n): n for n, s in stack["services"].items()}


def test_compose_validates(no_dotenv):
    res = run_compose(no_dotenv, "config", "-q")
    assert res.returncode == 0, res.stderr


def test_compose_has_no_default_secrets(no_dotenv):
    """Without its .env the stack refuses to start rather than run on known passwords."""
    assert len(compose_secrets()) >= 8
    res = run_compose(no_dotenv, "config", "-q", secrets=False)
    assert res.returncode != 0
    assert "missing from .env" in res.stderr, res.stderr


def test_only_portier_publishes_80_and_443(stack):
    for name, svc in stack["services"].items():
        ports = published_ports(svc)
        if name == "portier":
            assert ports == {(80, 80), (443, 443)}, ports
        else:
            assert not ports, f"{name} publishes {ports}: only portier may"
            assert svc.get("network_mode") is None, name


def test_tenant_networks(stack):
    services = by_container(stack)
    portier_nets = networks_of(stack, "portier")
    for t in TENANTS:
        private, front = f"{t}-private", f"{t}-edge"
        assert network_def(stack, private).get("internal") is True, private
        assert private not in portier_nets
        assert front in portier_nets, f"portier is not on {front}"
        for part in ("postgres", "redis"):
            assert networks_of(stack, services[f"{t}-{part}"]) == {private}, (t, part)
        for part in ("web", "api"):
            assert networks_of(stack, services[f"{t}-{part}"]) == {front, private}, (t, part)
    # tenants share no network
    for a in TENANTS:
        for b in TENANTS:
            if a < b:
                nets_a = set().union(*(networks_of(stack, n) for c, n in services.items()
                                       if c.startswith(a + "-")))
                nets_b = set().union(*(networks_of(stack, n) for c, n in services.items()
                                       if c.startswith(b + "-")))
                assert not nets_a & nets_b, (a, b, nets_a & nets_b)


def test_portier_service(stack):
    svc = stack["services"]["portier"]
    assert svc["cap_drop"] == ["ALL"]
    assert svc["cap_add"] == ["NET_BIND_SERVICE"]
    # no-new-privileges would ignore the binary's file capability
    assert not any("no-new-privileges" in o for o in svc.get("security_opt") or [])
    m = mounts(svc)
    assert m["/var/lib/portier"][0] == "volume"
    assert m["/run/portier"][0] == "volume"
    assert m["/etc/portier/tenants.json"] == ("bind", str(DOCKER / "tenants.json"))
    assert m["/etc/portier/portier.json"] == ("bind", str(DOCKER / "portier.json"))
    assert svc["build"]["dockerfile"] == "docker/Dockerfile"
    assert Path(svc["build"]["context"]).resolve() == REPO_ROOT


def test_backends_are_the_stacks_containers(stack):
    """Every backend tenants.json names is a container of the stack, on a
    network portier shares, listening on that port."""
    services = by_container(stack)
    portier_nets = networks_of(stack, "portier")
    for host, backend in ROUTES.items():
        container, port = backend.split(":")
        assert container in services, backend
        name = services[container]
        svc = stack["services"][name]
        assert networks_of(stack, name) & portier_nets, f"portier cannot reach {backend}"
        if name.endswith("-web"):
            assert svc["environment"]["PORT"] == port
            assert svc["environment"]["WEBUI_URL"] == f"https://{host}"
        else:
            assert svc["command"] == ["--port", port]


def test_compose_tells_the_staging_directory():
    """The staging CA is there, commented, for a first run."""
    staging = [l for l in COMPOSE.read_text().splitlines()
               if "https://acme-staging-v02.api.letsencrypt.org/directory" in l]
    assert staging and all(l.lstrip().startswith("#") for l in staging)


# ------------------------------------------------- portier.json, tenants.json

def route_table(doc):
    """route_table: {host: backend} from a tenants document."""
    table = {}
    for tenant in doc["tenants"].values():
        for route in tenant["routes"]:
            for host in HOST_RE.findall(route["rule"]):
                for backend in tenant["services"][route["service"]]["backends"]:
                    assert host not in table, f"{host} routed twice"
                    table[host] = backend
    return table


def test_tenants_file_routes_the_stack():
    doc = json.loads((DOCKER / "tenants.json").read_text())
    assert set(doc["tenants"]) == set(TENANTS)
    assert route_table(doc) == ROUTES
    assert all(t["tls"] == "acme" for t in doc["tenants"].values())


def test_production_config():
    cfg = json.loads((DOCKER / "portier.json").read_text())
    assert set(cfg["listen"]["http"]) == {"0.0.0.0:80", "[::]:80"}
    assert set(cfg["listen"]["https"]) == {"0.0.0.0:443", "[::]:443"}
    assert cfg["state_dir"] == "/var/lib/portier"
    assert cfg["control"]["socket"] == "/run/portier/control.sock"
    assert cfg["acme"]["directory"] == "https://acme-v02.api.letsencrypt.org/directory"
    # the table lives in the state volume (STATE_DIR/tenants.json), so the
    # control API can rewrite it
    assert cfg.get("tenants_file") is None


def test_config_checks_with_the_stacks_tenants(portier_bin, tmp_path):
    cfg = json.loads((DOCKER / "portier.json").read_text())
    cfg["state_dir"] = str(tmp_path / "state")
    cfg["tenants_file"] = str(DOCKER / "tenants.json")
    cfg["control"]["socket"] = str(tmp_path / "control.sock")
    path = tmp_path / "portier.json"
    path.write_text(json.dumps(cfg))
    res = subprocess.run([str(portier_bin), "--check", "-c", str(path)], capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert "ok (2 tenants)" in res.stdout


# -------------------------------------------------------------- Dockerfile

def dockerfile_instructions():
    """dockerfile_instructions: [(INSTRUCTION, arguments)], continuations joined."""
    out, cur = [], ""
    for line in (DOCKER / "Dockerfile").read_text().splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if cur and line.lstrip().startswith("#"):
            continue
        cur += line.rstrip()
        if cur.endswith("\\"):
            cur = cur[:-1] + " "
            continue
        word, _, rest = cur.strip().partition(" ")
        out.append((word.upper(), " ".join(rest.split())))
        cur = ""
    return out


def stages():
    """stages: [(preamble before any FROM)] + one list per stage."""
    parts = [[]]
    for ins in dockerfile_instructions():
        if ins[0] == "FROM":
            parts.append([])
        parts[-1].append(ins)
    return parts


def test_dockerfile_two_stages_with_configurable_bases():
    pre, *st = stages()
    assert len(st) == 2, [s[0] for s in st]
    assert ("ARG", "BASE=debian:bookworm") in pre
    assert ("ARG", "RUNTIME_BASE=debian:bookworm-slim") in pre
    assert st[0][0] == ("FROM", "${BASE} AS build")
    assert st[1][0][1].startswith("${RUNTIME_BASE}")
    build = " ".join(a for i, a in st[0] if i == "RUN")
    assert "meson setup" in build and "ninja" in build
    assert re.search(r"setcap cap_net_bind_service=\+ep \S*/usr/bin/portier", build)
    assert any(i == "COPY" and a.startswith("--from=build") for i, a in st[1])


def test_dockerfile_runtime_stage():
    final = stages()[-1]
    ins = {}
    for i, a in final:
        ins.setdefault(i, []).append(a)
    run = " ".join(ins["RUN"])
    for lib in ("libevent-core-2.1-7", "libevent-extra-2.1-7", "libevent-openssl-2.1-7",
                "libevent-pthreads-2.1-7", "libssl3", "libnghttp2-14", "libpcre2-8-0",
                "libjansson4", "libhttp-parser2.9", "libyaml-0-2", "ca-certificates"):
        assert lib in run.split(), lib
    assert not re.search(r"\S+-dev\b", run), "no -dev package in the runtime stage"
    user = ins["USER"][-1].split(":")[0]
    assert user not in ("root", "0", "")
    assert any("portierctl status" in h for h in ins["HEALTHCHECK"])
    assert ins["STOPSIGNAL"] == ["SIGTERM"]
    volumes = " ".join(ins["VOLUME"])
    assert "/var/lib/portier" in volumes and "/run/portier" in volumes
    assert sorted(" ".join(ins["EXPOSE"]).split()) == ["443", "80"]


def test_dockerignore():
    lines = [l.strip() for l in (REPO_ROOT / ".dockerignore").read_text().splitlines()]
    assert "build*/" in lines or "build*" in lines
    assert ".git" in lines


# ----------------------------------------------------------- entry point

@pytest.fixture
def entrypoint(tmp_path):
    """entrypoint(args, env): docker/entrypoint.sh with a stand-in portier
    that prints its arguments."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "portier"
    fake.write_text('#!/bin/sh\necho "portier $*"\n')
    fake.chmod(0o755)
    state, seed = tmp_path / "state", tmp_path / "seed.json"
    state.mkdir()

    def run(*args):
        env = {"PATH": f"{bindir}:/usr/bin:/bin", "PORTIER_STATE_DIR": str(state),
               "PORTIER_TENANTS_SEED": str(seed)}
        return subprocess.run(["/bin/sh", str(DOCKER / "entrypoint.sh"), *args],
                              capture_output=True, text=True, timeout=30, env=env)
    run.state, run.seed = state, seed
    return run


def test_entrypoint_seeds_once(entrypoint):
    assert os.stat(DOCKER / "entrypoint.sh").st_mode & stat.S_IXUSR
    r = entrypoint("-c", "/etc/portier/portier.json")  # no seed mounted: nothing written
    assert r.returncode == 0 and r.stdout == "portier -c /etc/portier/portier.json\n", r
    assert not (entrypoint.state / "tenants.json").exists()

    entrypoint.seed.write_text('{"tenants": {}}\n')
    r = entrypoint("-c", "/etc/portier/portier.json")
    assert r.returncode == 0 and "seeded" in r.stderr, r
    assert (entrypoint.state / "tenants.json").read_text() == '{"tenants": {}}\n'

    (entrypoint.state / "tenants.json").write_text("changed through the control API\n")
    r = entrypoint("-c", "/etc/portier/portier.json")
    assert r.returncode == 0 and "seeded" not in r.stderr, r
    assert (entrypoint.state / "tenants.json").read_text() == "changed through the control API\n"
    assert sorted(p.name for p in entrypoint.state.iterdir()) == ["tenants.json"]


def test_entrypoint_runs_other_commands(entrypoint):
    r = entrypoint("echo", "hello")
    assert r.returncode == 0 and r.stdout == "hello\n", r
    r = entrypoint("--version")
    assert r.stdout == "portier --version\n", r


# --------------------------------------------------- Moving from Traefik

# The stack of README.md's "Moving from Traefik": one project, web and api,
# entrypoint websecure, certresolver letsencrypt, the api also under /api.
TRAEFIK_STACK = """\
services:
  web:
    image: ghcr.io/open-webui/open-webui:main
    container_name: shop-web
    labels:
      - traefik.enable=true
      - traefik.http.routers.shop-web.rule=Host(`shop.example.com`)
      - traefik.http.routers.shop-web.entrypoints=websecure
      - traefik.http.routers.shop-web.tls.certresolver=letsencrypt
      - traefik.http.services.shop-web.loadbalancer.server.port=8080
  api:
    image: ghcr.io/berriai/litellm:main-stable
    container_name: shop-api
    labels:
      - traefik.enable=true
      - traefik.http.routers.shop-api.rule=Host(`api-shop.example.com`)
      - traefik.http.routers.shop-api.entrypoints=websecure
      - traefik.http.routers.shop-api.tls.certresolver=letsencrypt
      - traefik.http.routers.shop-api.service=shop-api
      - "traefik.http.routers.shop-api-path.rule=Host(`shop.example.com`) && PathPrefix(`/api`)"
      - traefik.http.routers.shop-api-path.entrypoints=websecure
      - traefik.http.routers.shop-api-path.tls.certresolver=letsencrypt
      - traefik.http.routers.shop-api-path.service=shop-api
      - traefik.http.services.shop-api.loadbalancer.server.port=4000
  db:
    image: postgres:16
"""

# (host, path prefix, backend), written by hand
TRAEFIK_EXPECTED = {
    ("shop.example.com", None, "shop-web:8080"),
    ("api-shop.example.com", None, "shop-api:4000"),
    ("shop.example.com", "/api", "shop-api:4000"),
}


def import_traefik(ctl_bin, project_dir, *args):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PORTIER_") and k != "COMPOSE_PROJECT_NAME"}
    return subprocess.run([str(ctl_bin), "tenant", "import-traefik",
                           str(project_dir / "compose.yml"), *args],
                          capture_output=True, text=True, timeout=30, env=env)


def imported_table(stdout):
    doc = json.loads(stdout)
    (name, tenant), = doc["tenants"].items()
    table = set()
    for route in tenant["routes"]:
        prefixes = PREFIX_RE.findall(route["rule"]) or [None]
        for host in HOST_RE.findall(route["rule"]):
            for backend in tenant["services"][route["service"]]["backends"]:
                for prefix in prefixes:
                    table.add((host, prefix, backend))
    return name, tenant, table


def test_import_traefik_readme_stack(ctl_bin, tmp_path):
    d = tmp_path / "shop"
    d.mkdir()
    (d / "compose.yml").write_text(TRAEFIK_STACK)
    res = import_traefik(ctl_bin, d)
    assert res.returncode == 0, res.stderr
    name, tenant, table = imported_table(res.stdout)
    assert name == "shop"
    assert table == TRAEFIK_EXPECTED
    assert tenant["tls"] == "acme"


def test_import_traefik_names_basicauth(ctl_bin, tmp_path):
    d = tmp_path / "shop"
    d.mkdir()
    (d / "compose.yml").write_text(TRAEFIK_STACK.replace(
        "      - traefik.http.services.shop-web.loadbalancer.server.port=8080\n",
        "      - traefik.http.services.shop-web.loadbalancer.server.port=8080\n"
        "      - traefik.http.routers.shop-web.middlewares=shop-auth\n"
        "      - traefik.http.middlewares.shop-auth.basicauth.users=admin:$$apr1$$x$$y\n"))
    res = import_traefik(ctl_bin, d, "--tenant", "shop")
    assert res.returncode == 1, res.stderr
    assert "traefik.http.middlewares.shop-auth.basicauth.users" in res.stderr
    # the protected router is left out (not published without its password)
    _, _, table = imported_table(res.stdout)
    assert table == TRAEFIK_EXPECTED - {("shop.example.com", None, "shop-web:8080")}
