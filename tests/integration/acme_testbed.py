"""pebble (Let's Encrypt's test CA) for portier's ACME tests, on loopback.

Wraps the shared testbed's pebble-up.sh / pebble-down.sh (../shared/acme-testbed
beside the repository, or PORTIER_ACME_TESTBED). One Pebble is one STATE_DIR and
one set of six ports, kept across stop()/start() so a restarted CA answers on
the same directory URL; pebble itself forgets accounts, orders and its issuing
root at every start (issuer_root() keeps each run's root as a separate file).

Ports are picked below the kernel's ephemeral range and checked by binding them
(TCP and UDP, since the mock DNS uses both), so an outgoing connection cannot
take one between the check and pebble's bind, nor while a port is briefly
unbound (portier restarting on the VA ports, the ACME port between pebble-down
and a CountingListener). A collision with another binder makes pebble-up.sh
refuse; start() then picks again (first start only).

Counting at the CA: pebble 2.4 logs to STATE_DIR/pebble.log (truncated at each
start) one line per request, `POST /order-plz -> calling handler()` for every
newOrder request (accepted or not), `Added order "ID" to the db` for every order
it created, `Pulled a task from the Tasks queue: ... Value:"HOST" ...` for every
challenge it validates (with PEBBLE_AUTHZREUSE=0, once per order per name), and
`Attempting to validate w/ HTTP: http://HOST:PORT/.well-known/acme-challenge/T`
for each of the 3 concurrent HTTP-01 fetches (TLS-ALPN-01 validation logs no
line of its own). While pebble is down, CountingListener on its ACME port counts
the TCP connections that would have reached it.
"""

import base64
import os
import random
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
PORT_NAMES = ("http", "tls", "acme", "mgmt", "dns", "cts")
PORT_ENV = {"http": "PEBBLE_HTTP_PORT", "tls": "PEBBLE_TLS_PORT", "acme": "PEBBLE_ACME_PORT",
            "mgmt": "PEBBLE_MGMT_PORT", "dns": "PEBBLE_DNS_PORT",
            "cts": "PEBBLE_CTS_MGMT_PORT"}
PASS_THROUGH = ("PEBBLE_BIN", "PEBBLE_CTS_BIN", "PEBBLE_START_TIMEOUT")  # other PEBBLE_* from
# the caller's environment are dropped, so a test's pebble only has the knobs it asks for
ENV_LINE = re.compile(r"^export ([A-Z0-9_]+)='(.*)'$")
ORDER_ADDED = re.compile(r'Added order "[^"]+" to the db')
TASK_HOST = re.compile(r'Pulled a task from the Tasks queue: .*Value:"([^"]+)"')
HTTP01_FETCH = re.compile(r"Attempting to validate w/ HTTP: http://([^:/]+)(?::\d+)?"
                          r"/\.well-known/acme-challenge/")
_HANDED_OUT = set()          # ports this process already gave to someone
_HANDED_LOCK = threading.Lock()


def testbed_dir():
    """testbed_dir: PORTIER_ACME_TESTBED, else ../shared/acme-testbed beside the repo."""
    raw = os.environ.get("PORTIER_ACME_TESTBED")
    return Path(raw).resolve() if raw else (REPO_ROOT.parent / "shared" / "acme-testbed")


def require_pebble():
    """require_pebble: fail (never skip) with a clear message when pebble or the
    testbed scripts are missing; CI installs them."""
    tb = testbed_dir()
    missing = [str(tb / s) for s in ("pebble-up.sh", "pebble-down.sh")
               if not os.access(tb / s, os.X_OK)]
    for env, default in (("PEBBLE_BIN", "/usr/bin/pebble"),
                         ("PEBBLE_CTS_BIN", "/usr/bin/pebble-challtestsrv")):
        b = os.environ.get(env, default)
        if not os.access(b, os.X_OK):
            missing.append(b)
    for tool in ("curl", "openssl", "setsid"):
        if shutil.which(tool) is None:
            missing.append(tool)
    if missing:
        pytest.fail("ACME tests need pebble and the acme-testbed (apt-get install -y pebble "
                    "curl openssl; PORTIER_ACME_TESTBED names the testbed directory); "
                    f"missing: {', '.join(missing)}", pytrace=False)
    return tb


# -- ports ------------------------------------------------------------------------

def _port_free(port):
    """_port_free: nothing holds 127.0.0.1:port, TCP or UDP (no SO_REUSE*)."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def _low_range():
    """_low_range: [lo, hi) of ports below the ephemeral range, or None."""
    try:
        eph_lo = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    lo, hi = 20000, min(eph_lo, 32768)
    return (lo, hi) if hi - lo >= 1000 else None


def free_ports(n):
    """free_ports: n distinct free loopback ports, not handed out before by this
    process. Below the ephemeral range when it leaves room, else bind-to-0."""
    rng = random.SystemRandom()
    low = _low_range()
    out = []
    for _ in range(2000):
        if len(out) == n:
            break
        if low:
            port = rng.randrange(*low)
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            port = s.getsockname()[1]
            s.close()
        with _HANDED_LOCK:
            if port in _HANDED_OUT or port in out or not _port_free(port):
                continue
            _HANDED_OUT.add(port)
        out.append(port)
    if len(out) != n:
        raise RuntimeError(f"could not find {n} free loopback ports")
    return out


def free_port():
    return free_ports(1)[0]


# -- counting listener ------------------------------------------------------------

class CountingListener:
    """CountingListener: a TCP listener on 127.0.0.1:port that accepts every
    connection and closes it at once, counting them. Stands in for a CA that is
    down, so the test sees every connection a client makes to it."""

    def __init__(self, port=None, bind_timeout=5.0):
        self.port = port
        self.bind_timeout = bind_timeout
        self.count = 0
        self._lock = threading.Lock()
        self._sock = None
        self._thread = None
        self._stop = threading.Event()

    def start(self):
        deadline = time.monotonic() + self.bind_timeout
        while True:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((LOOPBACK, self.port or 0))
                break
            except OSError as e:
                s.close()
                if time.monotonic() >= deadline:
                    raise AssertionError(f"CountingListener: cannot bind "
                                         f"{LOOPBACK}:{self.port}: {e}") from e
                time.sleep(0.05)
        s.listen(128)
        s.settimeout(0.2)
        self.port = s.getsockname()[1]
        self._sock = s
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"counting-{self.port}")
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            try:
                c, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.count += 1
            try:
                c.close()
            except OSError:
                pass

    def value(self):
        with self._lock:
            return self.count

    def close(self):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        if self._sock:
            self._sock.close()
            self._sock = None

    def __enter__(self):
        return self.start() if self._sock is None else self

    def __exit__(self, *exc):
        self.close()


# -- pebble -----------------------------------------------------------------------

class PebbleError(AssertionError):
    pass


class Pebble:
    """Pebble(tmpdir, **env): one pebble + pebble-challtestsrv pair.

    env: PEBBLE_* knobs of pebble-up.sh (PEBBLE_CERT_VALIDITY, PEBBLE_EAB_KID,
    PEBBLE_VA_NOSLEEP, ...). Port knobs given here are used as they are; the
    others are picked free at the first start() and kept for every later one.
    Attributes: state_dir, ports {http, tls, acme, mgmt, dns, cts}, env (the
    parsed STATE_DIR/env of the running instance), generation (starts so far).
    """

    def __init__(self, tmpdir, **env):
        self.dir = Path(tmpdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_dir = self.dir / "state"
        self.testbed = require_pebble()
        self.knobs = {k: str(v) for k, v in env.items()}
        self.fixed_ports = {name: int(self.knobs.pop(var)) for name, var in PORT_ENV.items()
                            if var in self.knobs}
        self.ports = {}
        self.env = {}
        self.generation = 0
        self.running = False
        self._roots = {}

    # -- lifecycle -------------------------------------------------------------
    def _pick_ports(self):
        picked = iter(free_ports(len(PORT_NAMES) - len(self.fixed_ports)))
        self.ports = {n: self.fixed_ports.get(n) or next(picked) for n in PORT_NAMES}

    def _up(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("PEBBLE_") or k in PASS_THROUGH}
        env.update(self.knobs)
        env.update({PORT_ENV[n]: str(p) for n, p in self.ports.items()})
        return subprocess.run([str(self.testbed / "pebble-up.sh"), str(self.state_dir)],
                              env=env, capture_output=True, text=True, timeout=90)

    def start(self):
        """start: pebble-up.sh; waits for the directory (the script does) and
        parses STATE_DIR/env. Keeps the previous run's log as pebble.log.N."""
        if self.running:
            return self
        log = self.state_dir / "pebble.log"
        if log.exists():
            shutil.copy(log, self.state_dir / f"pebble.log.{self.generation}")
        first = not self.ports
        attempts = 3 if first else 1
        for attempt in range(attempts):
            if first:
                self._pick_ports()
            res = self._up()
            if res.returncode == 0:
                break
            if "already in use" not in res.stderr or attempt == attempts - 1:
                raise PebbleError(f"pebble-up.sh failed (rc={res.returncode}, "
                                  f"ports {self.ports}):\n{res.stderr}")
        self.running = True
        self.generation += 1
        self.env = self.read_env()
        root = self.dir / f"issuer-root.{self.generation}.pem"
        shutil.copy(self.env["PEBBLE_ISSUER_ROOT"], root)
        self._roots[self.generation] = root
        return self

    def read_env(self):
        """read_env: STATE_DIR/env as a dict (what pebble-up.sh exported)."""
        out = {}
        for line in (self.state_dir / "env").read_text().splitlines():
            m = ENV_LINE.match(line.strip())
            if m:
                out[m.group(1)] = m.group(2)
        for key in ("ACME_DIRECTORY_URL", "PEBBLE_LISTENER_CA", "PEBBLE_ISSUER_ROOT"):
            if key not in out:
                raise PebbleError(f"{key} missing from {self.state_dir / 'env'}")
        return out

    def stop(self, purge=False):
        """stop: pebble-down.sh STATE_DIR (always safe; a no-op when stopped)."""
        argv = [str(self.testbed / "pebble-down.sh"), str(self.state_dir)]
        if purge:
            argv.append("--purge")
        res = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        self.running = False
        if res.returncode != 0:
            raise PebbleError(f"pebble-down.sh failed (rc={res.returncode}):\n{res.stderr}")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- what clients need --------------------------------------------------------
    @property
    def http_port(self):
        return self.ports["http"]

    @property
    def tls_port(self):
        return self.ports["tls"]

    @property
    def acme_port(self):
        return self.ports["acme"]

    @property
    def directory_url(self):
        return self.env["ACME_DIRECTORY_URL"]

    @property
    def listener_ca(self):
        return self.env["PEBBLE_LISTENER_CA"]

    def issuer_root(self, generation=None):
        """issuer_root: a copy of the issuing root of this run (or of run
        `generation`): pebble makes a new one at every start."""
        return self._roots[generation or self.generation]

    def listen(self):
        """listen: portier's `listen` for these VA ports."""
        return {"http": f"{LOOPBACK}:{self.http_port}", "https": f"{LOOPBACK}:{self.tls_port}"}

    def acme_config(self, **overrides):
        """acme_config: portier's static `acme` section for this CA."""
        cfg = {"directory": self.directory_url, "ca_bundle": self.listener_ca,
               "email": None, "challenges": ["http-01", "tls-alpn-01"],
               "on_demand": True, "on_demand_timeout": "30s",
               "max_concurrent_orders": 4, "max_orders_per_minute": 20}
        cfg.update(overrides)
        return cfg

    # -- what it saw ------------------------------------------------------------------
    def log_text(self):
        """log_text: pebble.log of the running (or last) instance."""
        try:
            return (self.state_dir / "pebble.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=60):
        return "\n".join(self.log_text().splitlines()[-n:])

    def orders(self):
        """orders: orders pebble created in this run (`Added order` lines)."""
        return len(ORDER_ADDED.findall(self.log_text()))

    def requests(self, path):
        """requests: requests to an ACME path in this run, e.g. "/order-plz"."""
        return len(re.findall(rf"(?:GET|POST|HEAD) {re.escape(path)} -> ", self.log_text()))

    def validations(self, host=None):
        """validations: challenge validations started in this run (for host)."""
        hosts = TASK_HOST.findall(self.log_text())
        return len(hosts) if host is None else hosts.count(host)

    def http01_fetches(self, host=None):
        """http01_fetches: HTTP-01 fetches pebble's VA made in this run (for host)."""
        hosts = HTTP01_FETCH.findall(self.log_text())
        return len(hosts) if host is None else hosts.count(host)

    def mentions(self, text):
        return text in self.log_text()


def eab_pair(kid="portier-kid-1"):
    """eab_pair: (kid, base64url HMAC key) for PEBBLE_EAB_KID / acme.eab."""
    key = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    return kid, key


class PebbleFactory:
    """PebbleFactory: pebble(**env) -> a started Pebble in its own directory;
    close() runs pebble-down.sh for every one, and prints each log's tail
    (pytest shows it only when the test failed)."""

    def __init__(self, tmp_path_factory, name="pebble"):
        self.tmp = tmp_path_factory
        self.name = name
        self.made = []

    def __call__(self, start=True, **env):
        pb = Pebble(self.tmp.mktemp(self.name), **env)
        self.made.append(pb)
        if start:
            pb.start()
        return pb

    def close(self):
        errors = []
        for pb in self.made:
            try:
                pb.stop()
            except Exception as e:  # keep stopping the others
                errors.append(str(e))
            print(f"--- {pb.state_dir}/pebble.log (ports {pb.ports}), last 40 lines\n"
                  f"{pb.log_tail(40)}")
        if errors:
            raise PebbleError("\n".join(errors))
