"""The proxies under test, configured alike: two listeners on 127.0.0.1 (plain HTTP
and TLS 1.2 + 1.3 with the shared certificate, ALPN h2 and http/1.1), Host routing of
the test host to the one backend, keep-alive to the backend, no access log, one worker,
no per-connection request cap, room for `max_conns` client connections (the largest
idle scenario plus margin) within the open-file limit `nofile`."""
import dataclasses
import json
import os
import shutil
import subprocess

from . import nginxconf
from .procs import Server
from .workdir import HOST

NAMES = ("portier", "nginx", "haproxy", "h2o")
# What portier adds to every request toward a backend; nginx and HAProxy are told to
# add the same. h2o adds its default X-Forwarded-For and X-Forwarded-Proto only (the
# others would need mruby).
FORWARDING_HEADERS = ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
                      "x-forwarded-port", "x-real-ip", "x-request-id")
# tool each proxy needs on PATH (deps.TOOLS key); portier is built, not installed
TOOL = {"nginx": "nginx", "haproxy": "haproxy", "h2o": "h2o"}
# portier's TLS 1.3 suites, in its order, which wins over the client's. OpenSSL's
# default order puts AES-256-GCM-SHA384 first, a dearer key schedule, so each peer is
# told the same order: the figures compare the proxies, not the suites.
TLS13_SUITES = "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384"


@dataclasses.dataclass
class Ports:
    plain: int
    tls: int


def portier(wd, cpu, ports, backend_port, nofile, max_conns, binary):
    state = wd.path("portier-state")
    os.makedirs(state, exist_ok=True)
    tenants = wd.path("tenants.json")
    with open(tenants, "w") as f:
        json.dump({"tenants": {"bench": {
            "routes": [{"rule": f"Host(`{HOST}`)", "service": "b"}],
            "services": {"b": {"backends": [f"127.0.0.1:{backend_port}"]}},
            "tls": {"cert": wd.cert, "key": wd.key},
            # serve plain HTTP too rather than redirect it to HTTPS
            "https_redirect": False,
        }}}, f, indent=2)
    conf = wd.path("portier.json")
    with open(conf, "w") as f:
        # HTTP/2 is on by default ("http2": {"enabled": true}).
        json.dump({
            "listen": {"http": f"127.0.0.1:{ports.plain}", "https": f"127.0.0.1:{ports.tls}"},
            "workers": 1,
            "state_dir": state,
            "tenants_file": tenants,
            "control": {"socket": wd.path("portier-control.sock")},
            "access_log": "off",
            "timeouts": {"shutdown": "2s"},
        }, f, indent=2)
    return Server("portier", [binary, "-c", conf], cpu, ports.tls, wd.path("portier.log"),
                  extra_ports=(ports.plain,))


def nginx(wd, cpu, ports, backend_port, nofile, max_conns):
    # keepalive 1024: idle backend connections kept per worker; the usual 64 would
    # close and reopen most of them under h2load's 500 requests in flight.
    # proxy_max_temp_file_size 0: a 64 KiB answer that outgrows the proxy buffers
    # waits for the client instead of going to a temp file on disk. The forwarding
    # headers are the ones portier sends by default (FORWARDING_HEADERS), so the
    # backend parses as much for every proxy.
    http = f"""\
    upstream backend {{ server 127.0.0.1:{backend_port}; keepalive 1024; }}
    server {{
        listen 127.0.0.1:{ports.plain};
        listen 127.0.0.1:{ports.tls} ssl http2;
        server_name {HOST};
        ssl_certificate {wd.cert};
        ssl_certificate_key {wd.key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_prefer_server_ciphers on;
        ssl_conf_command Ciphersuites {TLS13_SUITES};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Port $server_port;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Request-Id $request_id;
            proxy_max_temp_file_size 0;
        }}
    }}"""
    return nginxconf.server(wd, "nginx", cpu, ports.tls, http, conns=min(max_conns, nofile),
                            nofile=nofile,
                            extra_ports=(ports.plain,))


def haproxy(wd, cpu, ports, backend_port, nofile, max_conns):
    # HAProxy wants two descriptors per connection (client + server) and refuses to
    # start when maxconn needs more than the open-file limit. Where that limit cannot
    # be raised (a container without CAP_SYS_RESOURCE), `no strict-limits` lets it start
    # anyway: idle client connections take one descriptor each.
    strict = "" if 2 * max_conns + 1000 <= nofile else "    no strict-limits\n"
    conf = wd.path("haproxy.cfg")
    with open(conf, "w") as f:
        f.write(f"""\
global
    nbthread 1
    maxconn {max_conns}
{strict}    ssl-default-bind-options ssl-min-ver TLSv1.2
    ssl-default-bind-ciphersuites {TLS13_SUITES}
defaults
    mode http
    maxconn {max_conns}
    timeout connect 5s
    timeout client 75s
    timeout server 60s
    timeout http-keep-alive 75s
    http-reuse always
    option forwardfor
frontend fe
    bind 127.0.0.1:{ports.plain}
    bind 127.0.0.1:{ports.tls} ssl crt {wd.pem} alpn h2,http/1.1
    unique-id-format %[uuid()]
    unique-id-header X-Request-Id
    http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}
    http-request set-header X-Forwarded-Proto http if !{{ ssl_fc }}
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    http-request set-header X-Forwarded-Port %[dst_port]
    http-request set-header X-Real-IP %[src]
    use_backend be if {{ req.hdr(host),field(1,:) -i {HOST} }}
backend be
    server s1 127.0.0.1:{backend_port}
""")
    return Server("haproxy", ["haproxy", "-db", "-f", conf], cpu, ports.tls,
                  wd.path("haproxy.log"), extra_ports=(ports.plain,))


def h2o(wd, cpu, ports, backend_port, nofile, max_conns):
    # num-threads: h2o starts one thread per CPU otherwise. Its HTTP/1 keep-alive and
    # HTTP/2 idle timeouts (10 s) and max-connections (1024) are raised to the others'
    # 75 s and room for the idle scenarios; no OCSP fetcher for a self-signed cert.
    # h2o 2.2 has no setting for TLS 1.3 suites: OpenSSL's config file gives them
    # (its system default applies to every SSL_CTX), and cipher-preference makes the
    # server's order win.
    def host(port):
        return f"""\
  "{HOST}:{port}":
    paths:
      "/":
        proxy.reverse.url: "http://127.0.0.1:{backend_port}/"
"""
    conf = wd.path("h2o.conf")
    with open(conf, "w") as f:
        f.write(f"""\
num-threads: 1
max-connections: {max_conns}
http1-request-timeout: 75
http2-idle-timeout: 75
proxy.timeout.keepalive: 75000
listen:
  host: 127.0.0.1
  port: {ports.plain}
listen:
  host: 127.0.0.1
  port: {ports.tls}
  ssl:
    certificate-file: {wd.cert}
    key-file: {wd.key}
    minimum-version: TLSv1.2
    cipher-preference: server
    ocsp-update-interval: 0
hosts:
{host(ports.plain)}{host(ports.tls)}""")
    ssl_conf = wd.path("h2o-openssl.cnf")
    with open(ssl_conf, "w") as f:
        f.write("openssl_conf = init\n[init]\nssl_conf = ssl\n[ssl]\nsystem_default = tls\n"
                f"[tls]\nCipherString = DEFAULT:@SECLEVEL=2\nCiphersuites = {TLS13_SUITES}\n")
    return Server("h2o", ["env", f"OPENSSL_CONF={ssl_conf}", "h2o", "-m", "worker", "-c", conf],
                  cpu, ports.tls, wd.path("h2o.log"), extra_ports=(ports.plain,))


def make(name, wd, cpu, ports, backend_port, nofile, max_conns, portier_binary):
    if name == "portier":
        return portier(wd, cpu, ports, backend_port, nofile, max_conns, portier_binary)
    return globals()[name](wd, cpu, ports, backend_port, nofile, max_conns)


def versions(portier_binary):
    """One line per program, for the results file."""
    def first_line(argv):
        if not shutil.which(argv[0]):
            return None
        r = subprocess.run(argv, capture_output=True, text=True)
        text = (r.stdout or r.stderr).strip()
        return text.splitlines()[0] if text else None

    return {
        "portier": first_line([portier_binary, "--version"]),
        "nginx": first_line(["nginx", "-v"]),
        "haproxy": first_line(["haproxy", "-v"]),
        "h2o": first_line(["h2o", "-v"]),
        "wrk": first_line(["wrk", "-v"]),
        "h2load": first_line(["h2load", "--version"]),
        "openssl": first_line(["openssl", "version"]),
        "python": first_line(["python3", "--version"]),
    }
