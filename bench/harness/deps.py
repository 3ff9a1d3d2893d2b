"""Debian packages the bench needs, installed with apt-get only when a tool is missing."""
import os
import shutil
import subprocess

# tool on PATH -> Debian package that ships it
TOOLS = {
    "wrk": "wrk",
    "nginx": "nginx-light",
    "haproxy": "haproxy",
    "openssl": "openssl",
    "curl": "curl",
    "taskset": "util-linux",
    "unshare": "util-linux",
}

POLICY_RC = "/usr/sbin/policy-rc.d"


def ensure():
    """Install the packages of missing tools; `apt-get update` runs only then."""
    missing = sorted({pkg for tool, pkg in TOOLS.items() if not shutil.which(tool)})
    if not missing:
        return
    print(f"installing: {' '.join(missing)}", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Keep the packages' system services (nginx, haproxy on :80) from starting.
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
