"""Fixtures for portier's integration suite.

Everything binds 127.0.0.1 port 0; portier reports the ports it got. Each
fixture stops what it started, even when the test fails: portier with SIGTERM
(then SIGKILL), checking its stderr for sanitizer reports; backends by
closing their sockets. A failing test's report carries portier's stderr.

PORTIER_BIN names the binary (default build/proxy/portier under the repository
root); when it is missing every test is skipped with the reason.
"""

import os
import signal
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backend import Backend  # noqa: E402
from harness import Portier  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
_LIVE = []  # Portier instances not yet stopped, for failure reports


def _resolve_bin():
    raw = os.environ.get("PORTIER_BIN", "build/proxy/portier")
    path = Path(raw)
    if not path.is_absolute():
        path = path if path.exists() else REPO_ROOT / raw
    return path.resolve()


@pytest.fixture(scope="session")
def portier_bin():
    """portier_bin: the binary under test; skips the suite when it is absent."""
    path = _resolve_bin()
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.skip(f"portier binary not found at {path} (set PORTIER_BIN or build it)")
    return path


class _PortierFactory:
    def __init__(self, binary):
        self.binary = binary
        self.made = []

    def __call__(self, tenants=None, start=True, **config):
        p = Portier(self.binary, name=f"portier{len(self.made)}")
        self.made.append(p)
        _LIVE.append(p)
        p.configure(tenants=tenants or {}, **config)
        if start:
            p.start()
        return p

    def close(self):
        errors = []
        for p in self.made:
            try:
                if p.proc is not None:
                    # exit status 0 unless the test collected it itself
                    p.stop(expect_rc=0 if p.returncode is None else None)
            except AssertionError as e:
                errors.append(str(e))
            finally:
                p.cleanup()
                if p in _LIVE:
                    _LIVE.remove(p)
        if errors:
            pytest.fail("\n\n".join(errors), pytrace=False)


class _BackendFactory:
    def __init__(self):
        self.made = []

    def __call__(self, name, mode="normal", also_ipv6=False):
        b = Backend(name, mode=mode, also_ipv6=also_ipv6).start()
        self.made.append(b)
        return b

    def close(self):
        for b in self.made:
            b.stop()


@pytest.fixture
def portier_factory(portier_bin):
    """portier_factory(tenants, start=True, **config): a Portier per call,
    stopped (and checked for sanitizer reports) after the test."""
    f = _PortierFactory(portier_bin)
    yield f
    f.close()


@pytest.fixture(scope="module")
def module_portier_factory(portier_bin):
    """module_portier_factory: the same, shared by the tests of one module."""
    f = _PortierFactory(portier_bin)
    yield f
    f.close()


@pytest.fixture
def backend_factory():
    """backend_factory(name, mode="normal"): a started in-process Backend."""
    f = _BackendFactory()
    yield f
    f.close()


@pytest.fixture(scope="module")
def module_backend_factory():
    f = _BackendFactory()
    yield f
    f.close()


@pytest.fixture
def marker(request):
    """marker: a path segment unique to this test, to find its requests."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[-60:]
    return f"/m-{uuid.uuid4().hex[:12]}-{name}"


def _terminated(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config):
    """SIGTERM (a CI time limit) aborts like Ctrl-C, so fixtures still stop
    the processes they started."""
    signal.signal(signal.SIGTERM, _terminated)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the stderr of running portier processes to a failing test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for p in list(_LIVE):
            if p.proc is not None:
                report.sections.append((f"{p.name} stderr (last 80 lines)",
                                        p.stderr_text(tail=80)))

@pytest.fixture(scope="session")
def ctl_bin():
    """ctl_bin: the portierctl binary; skips when it is absent."""
    raw = os.environ.get("PORTIERCTL_BIN", "build/config/portierctl/portierctl")
    path = Path(raw)
    if not path.is_absolute():
        path = path if path.exists() else REPO_ROOT / raw
    path = path.resolve()
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.skip(f"portierctl not found at {path} (set PORTIERCTL_BIN or build it)")
    return path
