"""Debian packages the bench needs, installed with apt-get only when a tool is missing."""
import os
import shutil
import subprocess

# tool on PATH -> Debian package that ships it
TOOLS = {
    "wrk": "wrk",
    "h2load": "nghttp2-client",
    "nginx": "nginx-light",
    "haproxy": "haproxy",
    "h2o": "h2o",
    "openssl": "openssl",
    "curl": "curl",
    "taskset": "util-linux",
    "unshare": "util-linux",
    "perf": "linux-perf",
}
# what every run needs, whatever the proxies and the backend
BASE = ("wrk", "h2load", "openssl", "curl", "taskset", "unshare")

POLICY_RC = "/usr/sbin/policy-rc.d"


def ensure(tools=TOOLS):
    """Install the packages of the missing `tools`; `apt-get update` runs only then."""
    missing = sorted({TOOLS[t] for t in tools if not shutil.which(t)})
    if not missing:
        return
    print(f"installing: {' '.join(missing)}", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Keep the packages' system services (nginx, haproxy, h2o on :80/:443) from starting.
    made_policy = not os.path.exists(POLICY_RC)
    if made_policy:
        with open(POLICY_RC, "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(POLICY_RC, 0o755)
    try:
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
                       check=True, env=env)
    finally:
        if made_policy:
            os.unlink(POLICY_RC)
