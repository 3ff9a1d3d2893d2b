"""The one backend every proxy forwards to: GET / answers 1 KiB, GET /64k 64 KiB.

`nginx` is the backend of real runs (cheap per request, so the proxy is what is
measured); `python` (pybackend.py, stdlib only) lets --smoke run where nginx is not
installed, at a few thousand requests per second.
"""
import os
import sys

from . import nginxconf
from .procs import Server

# path -> body bytes
BODIES = {"/": 1024, "/64k": 65536}
BODY_BYTES = BODIES["/"]


def nginx(wd, cpu, port):
    # `return` takes the short body inline; nginx's config tokens cannot hold 64 KiB.
    big = wd.path("body-64k")
    with open(big, "w") as f:
        f.write("y" * BODIES["/64k"])
    http = f"""\
    server {{
        listen 127.0.0.1:{port};
        location = /64k {{ default_type text/plain; alias {big}; }}
        location / {{ default_type text/plain; return 200 "{'x' * BODIES['/']}"; }}
    }}"""
    return nginxconf.server(wd, "backend", cpu, port, http)


def python(wd, cpu, port):
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pybackend.py")
    return Server("backend", [sys.executable, "-B", script, str(port)], cpu, port,
                  wd.path("backend.log"))


KINDS = {"nginx": nginx, "python": python}
