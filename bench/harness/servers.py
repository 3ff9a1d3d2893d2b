"""The backend and the proxies under test, each configured alike: TLS 1.2 + 1.3 on
127.0.0.1 with the shared certificate, Host routing of the test host to the one backend,
keep-alive to the backend, no access log, one worker, no per-connection request cap."""
import json
import os
import shutil
import subprocess

from .procs import Server
from .workdir import HOST

BODY_BYTES = 1024

_NGINX_COMMON = """\
worker_processes 1;
daemon off;
pid {d}/{name}.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    client_body_temp_path {d}/{name}-tmp/body;
    proxy_temp_path {d}/{name}-tmp/proxy;
    fastcgi_temp_path {d}/{name}-tmp/fastcgi;
    uwsgi_temp_path {d}/{name}-tmp/uwsgi;
    scgi_temp_path {d}/{name}-tmp/scgi;
{http}
}}
"""


def _nginx(wd, name, cpu, port, http):
    conf = wd.path(f"{name}.conf")
    os.makedirs(wd.path(f"{name}-tmp"), exist_ok=True)
    with open(conf, "w") as f:
        f.write(_NGINX_COMMON.format(d=wd.dir, name=name, http=http))
    return Server(name, ["nginx", "-p", wd.dir, "-c", conf], cpu, port, wd.path(f"{name}.log"))


def backend(wd, cpu, port):
    """A separate nginx answering every request with a fixed 1 KiB body."""
    http = f"""\
    server {{
        listen 127.0.0.1:{port};
        location / {{ default_type text/plain; return 200 "{'x' * BODY_BYTES}"; }}
    }}"""
    return _nginx(wd, "backend", cpu, port, http)


def portier(wd, cpu, port, backend_port, binary):
    state = wd.path("portier-state")
    os.makedirs(state, exist_ok=True)
    tenants = wd.path("tenants.json")
    with open(tenants, "w") as f:
        json.dump({"tenants": {"bench": {
            "routes": [{"rule": f"Host(`{HOST}`)", "service": "b"}],
            "services": {"b": {"backends": [f"127.0.0.1:{backend_port}"]}},
            "tls": {"cert": wd.cert, "key": wd.key},
        }}}, f, indent=2)
    conf = wd.path("portier.json")
    with open(conf, "w") as f:
        json.dump({
            "listen": {"http": None, "https": f"127.0.0.1:{port}"},
            "workers": 1,
            "state_dir": state,
            "tenants_file": tenants,
            "control": {"socket": wd.path("portier-control.sock")},
            "access_log": "off",
            "timeouts": {"shutdown": "2s"},
        }, f, indent=2)
    return Server("portier", [binary, "-c", conf], cpu, port, wd.path("portier.log"))


def nginx(wd, cpu, port, backend_port):
    http = f"""\
    upstream backend {{ server 127.0.0.1:{backend_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name {HOST};
        ssl_certificate {wd.cert};
        ssl_certificate_key {wd.key};
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}"""
    return _nginx(wd, "nginx", cpu, port, http)


def haproxy(wd, cpu, port, backend_port):
    conf = wd.path("haproxy.cfg")
    with open(conf, "w") as f:
        f.write(f"""\
global
    nbthread 1
    maxconn 4096
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode http
    timeout connect 5s
    timeout client 75s
    timeout server 60s
    timeout http-keep-alive 75s
    http-reuse always
frontend fe
    bind 127.0.0.1:{port} ssl crt {wd.pem}
    use_backend be if {{ req.hdr(host),field(1,:) -i {HOST} }}
backend be
    server s1 127.0.0.1:{backend_port}
""")
    return Server("haproxy", ["haproxy", "-db", "-f", conf], cpu, port, wd.path("haproxy.log"))


def versions(portier_binary):
    """One line per program, for the results file."""
    def first_line(argv):
        if not shutil.which(argv[0]):
            return None
        r = subprocess.run(argv, capture_output=True, text=True)
        return (r.stdout or r.stderr).strip().splitlines()[0] if (r.stdout or r.stderr) else None

    return {
        "portier": first_line([portier_binary, "--version"]),
        "nginx": first_line(["nginx", "-v"]),
        "haproxy": first_line(["haproxy", "-v"]),
        "wrk": first_line(["wrk", "-v"]),
        "openssl": first_line(["openssl", "version"]),
    }
