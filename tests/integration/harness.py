"""Run the real portier binary: write its config, start it, read its stderr,
signal it, measure it, and stop it while checking for sanitizer reports.

The contract relied on (from the binary's side):
  stderr: "listening: http 127.0.0.1:PORT", "listening: https 127.0.0.1:PORT",
          "ready:", after SIGHUP "reload: generation N" or "reload failed:";
  STATE_DIR/ca/root.pem is the internal root; SIGTERM drains and exits 0.
"""

import copy
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer")
SETPRIV = shutil.which("setpriv")
LISTEN_RE = re.compile(r"listening: (https?) (\S+):(\d+)")
RELOAD_RE = re.compile(r"reload: generation (\d+)|reload failed:")


def deep_merge(base, extra):
    """deep_merge: base updated by extra, nested dicts merged, in place."""
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = v
    return base


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    """wait_until: poll predicate until true; AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@functools.lru_cache(maxsize=None)
def is_sanitized(binary):
    """is_sanitized: whether the binary was built with ASan (RSS means less then)."""
    try:
        with open(binary, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def bench_smoke(tool, portier_bin, out, timeout, extra=()):
    """bench_smoke: run a bench tool (bench/run, bench/scale) in its smoke mode (plus
    the arguments in extra) and
    return (results JSON, stdout), or skip when its figures would mean nothing
    (sanitizer build) or it cannot run here (not root, CPUs 0 and 1 missing).
    A run past the timeout gets SIGTERM, not SIGKILL: the tool then stops what
    it started, and the test fails."""
    if is_sanitized(portier_bin):
        pytest.skip("bench figures are meaningless under ASan")
    if os.geteuid() != 0 or not {0, 1} <= os.sched_getaffinity(0):
        pytest.skip(f"{Path(tool).name} needs root and CPUs 0 and 1")
    proc = subprocess.Popen([str(tool), "--smoke", "--portier", str(portier_bin),
                             "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    name = f"{Path(tool).parent.name}/{Path(tool).name} --smoke"
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        stdout, stderr = proc.communicate(timeout=150)
        raise AssertionError(f"{name} still running after {timeout} s:\n{stdout}\n{stderr}")
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{stdout}\n{stderr}"
    assert Path(out).is_file(), f"no results JSON at {out}:\n{stdout}"
    return json.loads(Path(out).read_text()), stdout


class Portier:
    """Portier: one portier process in its own short temporary directory."""

    def __init__(self, binary, name="portier"):
        self.binary = str(binary)
        self.name = name
        # Short path: the control socket must fit in sun_path (108 bytes).
        self.dir = Path(tempfile.mkdtemp(prefix="ptr-"))
        self.state_dir = self.dir / "state"
        self.tenants_file = self.dir / "tenants.json"
        self.config_file = self.dir / "portier.json"
        self.access_log = self.dir / "access.log"
        self.stdout_file = self.dir / "stdout.log"
        self.config = {
            "listen": {"http": "127.0.0.1:0", "https": "127.0.0.1:0"},
            "workers": 2,
            "state_dir": str(self.state_dir),
            "tenants_file": str(self.tenants_file),
            "control": {"socket": str(self.dir / "control.sock")},
            "tls": {"default": "internal"},
            "access_log": str(self.access_log),
            "timeouts": {"shutdown": "10s"},
        }
        self.tenants = {}
        self.launcher = []  # argv before the binary's, e.g. prlimit's
        self.proc = None
        self.lines = []
        self._cond = threading.Condition()
        self._reader = None
        self.ports = {}
        self.returncode = None

    # -- files ----------------------------------------------------------------
    def configure(self, tenants=None, **overrides):
        """configure: merge overrides into the static config; set the tenants."""
        deep_merge(self.config, copy.deepcopy(overrides))
        if tenants is not None:
            self.tenants = copy.deepcopy(tenants)
        return self

    def write(self):
        self.config_file.write_text(json.dumps(self.config, indent=2))
        self.write_tenants(self.tenants)

    def write_tenants(self, tenants=None, raw=None):
        """write_tenants: replace the tenants file (raw text when given) atomically."""
        if tenants is not None:
            self.tenants = copy.deepcopy(tenants)
        text = raw if raw is not None else json.dumps({"tenants": self.tenants}, indent=2)
        tmp = self.tenants_file.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.tenants_file)

    # -- process ------------------------------------------------------------------
    def start(self, timeout=15.0):
        """start: run `portier -c FILE`, wait for both listeners and ready."""
        self.write()
        out = open(self.stdout_file, "wb")
        argv = self.launcher + [self.binary, "-c", str(self.config_file)]
        if SETPRIV:  # killed with the test process, even if that dies hard
            argv = [SETPRIV, "--pdeathsig", "KILL", "--"] + argv
        if os.environ.get("PORTIER_VERBOSE"):  # debugging aid: portier's -v
            argv.append("-v")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.PIPE, cwd=self.dir)
        out.close()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True,
                                        name=f"{self.name}-stderr")
        self._reader.start()
        self.wait_for_line(lambda l: "ready:" in l, timeout=timeout, what="'ready:'")
        for line in self.snapshot_lines():
            m = LISTEN_RE.search(line)
            if m:
                self.ports[m.group(1)] = int(m.group(3))
        assert "http" in self.ports and "https" in self.ports, \
            f"no 'listening: http/https' lines before ready:\n{self.stderr_text()}"
        return self

    def _read_stderr(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def snapshot_lines(self):
        with self._cond:
            return list(self.lines)

    def stderr_text(self, tail=200):
        return "\n".join(self.snapshot_lines()[-tail:])

    def wait_for_line(self, match, start=0, timeout=10.0, what="a line"):
        """wait_for_line: first line at index >= start where match(line) is true;
        returns (index, line). Fails at the deadline or if portier exits."""
        deadline = time.monotonic() + timeout
        with self._cond:
            i = start
            while True:
                while i < len(self.lines):
                    if match(self.lines[i]):
                        return i, self.lines[i]
                    i += 1
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(
                        f"portier exited (rc={self.proc.returncode}) while waiting for "
                        f"{what}; stderr:\n{self.stderr_text()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}; "
                                         f"stderr:\n{self.stderr_text()}")
                self._cond.wait(min(left, 0.2))

    @property
    def pid(self):
        return self.proc.pid

    @property
    def http_port(self):
        return self.ports["http"]

    @property
    def https_port(self):
        return self.ports["https"]

    @property
    def ca_file(self):
        """ca_file: STATE_DIR/ca/root.pem (waits briefly for it to appear)."""
        path = self.state_dir / "ca" / "root.pem"
        wait_until(path.exists, 5, what=str(path))
        return path

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self, timeout=10.0):
        """reload: SIGHUP, then wait for the outcome. Returns (ok, line)."""
        start = len(self.snapshot_lines())
        self.signal(signal.SIGHUP)
        _, line = self.wait_for_line(lambda l: RELOAD_RE.search(l) is not None, start,
                                     timeout, what="'reload: generation N' or 'reload failed:'")
        return "reload failed:" not in line, line

    def rss_bytes(self):
        """rss_bytes: VmRSS of the process, from /proc/PID/status."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def access_entries(self):
        """access_entries: the access log parsed, one dict per line."""
        if not self.access_log.exists():
            return []
        out = []
        for line in self.access_log.read_text().splitlines():
            if line.strip():
                out.append(json.loads(line))
        return out

    def sanitizer_reports(self):
        text = "\n".join(self.snapshot_lines())
        return [m for m in SANITIZER_MARKERS if m in text]

    def wait_exit(self, timeout):
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        if self._reader:
            self._reader.join(timeout=5)
        return self.returncode

    def stop(self, timeout=15.0, expect_rc=0):
        """stop: SIGTERM, wait for exit; assert the exit status and that no
        sanitizer report appeared on stderr. Kills it if it does not exit."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        rc = self.wait_exit(timeout)
        if rc is None:
            self.kill()
            raise AssertionError(f"portier did not exit within {timeout}s of SIGTERM; "
                                 f"stderr:\n{self.stderr_text()}")
        reports = self.sanitizer_reports()
        assert not reports, f"sanitizer report {reports} in stderr:\n{self.stderr_text()}"
        if expect_rc is not None:
            assert rc == expect_rc, \
                f"portier exited with {rc}, expected {expect_rc}; stderr:\n{self.stderr_text()}"
        return rc

    def kill(self):
        """kill: SIGKILL if still running, and reap. Safe to call twice."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self._reader:
            self._reader.join(timeout=5)

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class RssSampler:
    """RssSampler: sample a Portier's RSS every interval seconds in a thread."""

    def __init__(self, portier, interval=0.1):
        self.portier = portier
        self.interval = interval
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss")

    def _run(self):
        while not self._stop.is_set():
            try:
                self.samples.append(self.portier.rss_bytes())
            except OSError:
                return
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def peak(self):
        return max(self.samples) if self.samples else 0
