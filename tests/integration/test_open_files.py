"""The open-file limit. portier raises its soft limit to the hard one at start (as Go
programs do); out of descriptors, it rests a listener whose accept failed rather than
retrying it at once: it stays nearly idle, warns a bounded number of times, and
accepts again once descriptors are free."""
import os
import socket
import time

from harness import wait_until
from httpclient import http

HZ = os.sysconf("SC_CLK_TCK")
FULL_LIMIT = 96      # the descriptors portier gets in the overload test
HELD = 160           # idle connections opened there: more than it can accept
WINDOW_S = 1.0       # the overload watched this long


def tenant(host, backend):
    return {"hosts": [host], "backends": [backend.address], "https_redirect": False}


def open_files_limit(pid):
    """(soft, hard) of RLIMIT_NOFILE, from /proc/PID/limits."""
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no 'Max open files' line")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def accept_warnings(p):
    return [l for l in p.snapshot_lines() if "accept" in l and "failed" in l]


def test_soft_limit_raised_to_hard(portier_factory):
    p = portier_factory(start=False)
    p.launcher = ["prlimit", "--nofile=256:4096", "--"]
    p.start()
    assert open_files_limit(p.pid) == (4096, 4096)
    assert any("open files: up to 4096" in l for l in p.snapshot_lines()), p.stderr_text()


def test_out_of_descriptors_rests_the_listener(portier_factory, backend_factory, marker):
    b = backend_factory("nofile")
    p = portier_factory({"nofile": tenant("nofile.test", b)}, start=False, workers=1)
    p.launcher = ["prlimit", f"--nofile={FULL_LIMIT}:{FULL_LIMIT}", "--"]
    p.start()
    assert http(p.http_port, "nofile.test", f"{marker}/before").status == 200
    held = []
    try:
        # The kernel completes every handshake into the backlog; portier
        # accepts until it has no descriptor left.
        for _ in range(HELD):
            held.append(socket.create_connection(("127.0.0.1", p.http_port), timeout=5))
        wait_until(lambda: accept_warnings(p), 10, what="an accept warning")
        # A listener retried at once spins the loop: about a CPU second per
        # second, and a warning per turn. Resting, it retries ten times a second.
        cpu0, warned0 = cpu_seconds(p.pid), len(accept_warnings(p))
        time.sleep(WINDOW_S)
        busy = cpu_seconds(p.pid) - cpu0
        assert busy < WINDOW_S / 2, f"{busy:.2f} s of CPU in {WINDOW_S} s out of descriptors"
        assert len(accept_warnings(p)) - warned0 <= 2, accept_warnings(p)[-5:]
        assert p.alive()
    finally:
        for s in held:
            s.close()
    # Descriptors free again: the listener takes connections again.
    def served():
        try:
            return http(p.http_port, "nofile.test", f"{marker}/after", timeout=2).status == 200
        except OSError:
            return False
    wait_until(served, 10, what="a request served after the overload")
