"""The part of an nginx config the backend and the nginx proxy share: one worker in
the foreground, no access log, no per-connection request cap, temp dirs in the run's
work dir (nginx-light otherwise writes under /var/lib/nginx)."""
import os

from .procs import Server

_COMMON = """\
worker_processes 1;
worker_rlimit_nofile {nofile};
daemon off;
pid {d}/{name}.pid;
error_log stderr warn;
events {{ worker_connections {conns}; }}
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


def server(wd, name, cpu, port, http, conns=4096, nofile=8192, extra_ports=()):
    """An nginx Server whose config is the common part around `http` (server blocks)."""
    conf = wd.path(f"{name}.conf")
    os.makedirs(wd.path(f"{name}-tmp"), exist_ok=True)
    with open(conf, "w") as f:
        f.write(_COMMON.format(d=wd.dir, name=name, http=http, conns=conns, nofile=nofile))
    return Server(name, ["nginx", "-p", wd.dir, "-c", conf], cpu, port, wd.path(f"{name}.log"),
                  extra_ports=extra_ports)
