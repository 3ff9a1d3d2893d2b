"""Processes the bench starts and what /proc says about them.

Every server runs in its own session (process group = its pid) pinned to one CPU with
taskset, so a group stands for all of a server's processes (nginx master + worker) and is
stopped as one. `stop_all` stops every group still running: bench/run calls it in a
`finally`, so Ctrl-C and errors leave nothing behind.
"""
import os
import signal
import socket
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
_running = []  # Servers started and not yet stopped


class StartError(RuntimeError):
    pass


class Server:
    def __init__(self, name, argv, cpu, port, log, extra_ports=()):
        self.name, self.argv, self.cpu, self.port, self.log = name, argv, cpu, port, log
        self.extra_ports = tuple(extra_ports)  # more listeners to wait for
        self.proc = None

    def start(self, timeout=10.0):
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(["taskset", "-c", str(self.cpu), *self.argv],
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        _running.append(self)
        deadline = time.monotonic() + timeout
        waiting = [self.port, *self.extra_ports]
        while waiting and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StartError(f"{self.name} exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", waiting[0]), timeout=0.5).close()
                waiting.pop(0)
            except OSError:
                time.sleep(0.05)
        if waiting:
            raise StartError(f"{self.name} not listening on 127.0.0.1:{waiting[0]} "
                             f"after {timeout}s:\n{self.log_tail()}")
        return self

    @property
    def pgid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines=20):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace=5.0):
        if self.proc is None:
            return
        _signal_group(self.pgid, signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        # The leader may be gone while its children linger: kill whatever is left.
        if group_pids(self.pgid):
            _signal_group(self.pgid, signal.SIGKILL)
            self.proc.wait(grace)
        if self in _running:
            _running.remove(self)


def stop_all():
    for s in reversed(list(_running)):
        try:
            s.stop()
        except Exception as e:  # keep stopping the others
            print(f"warning: stopping {s.name}: {e}")


def _signal_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _stat_fields(pid):
    """/proc/PID/stat fields from field 3 (state) on: field N is at index N-3."""
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    return s[s.rindex(")") + 2:].split()


def group_pids(pgid):
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                f = _stat_fields(name)
            except (OSError, ValueError):
                continue
            if int(f[2]) == pgid and f[0] != "Z":
                pids.append(int(name))
    return pids


def cpu_seconds(pgid):
    """utime + stime of every process of the group (all threads included)."""
    ticks = 0
    for pid in group_pids(pgid):
        try:
            f = _stat_fields(pid)
        except (OSError, ValueError):
            continue
        ticks += int(f[11]) + int(f[12])
    return ticks / CLK_TCK


def _kib(path, key):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory_kib(pgid):
    """(RSS, PSS) in KiB summed over the group. RSS counts pages shared between a
    master and its worker twice; PSS splits them."""
    pids = group_pids(pgid)
    rss = sum(_kib(f"/proc/{p}/status", "VmRSS:") for p in pids)
    pss = sum(_kib(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids)
    return rss, pss


def cpu_busy_seconds(cpu):
    """Time CPU `cpu` spent busy (not idle/iowait), from /proc/stat, in seconds."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, line.split()[1:9])
                return (user + nice + system + irq + softirq + steal) / CLK_TCK
    return 0.0


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])
