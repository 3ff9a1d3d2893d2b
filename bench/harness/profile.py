"""`bench/run --profile`: where each proxy's CPU goes during a measured run.

perf samples the proxy's processes (all threads) at 999 Hz for the measured run; the
samples are then split into parts every proxy on this machine shares and the proxy's
own. Multiplied by the run's CPU us/req, the parts say which share of a peer's cost a
proxy could ever remove:

  kernel    the kernel: TCP over loopback, epoll, system call entry and exit
  syscall   libc's system call wrappers (the sample lands on the instruction after
            the trap; it is kernel time by another name)
  openssl   libcrypto and libssl: record crypto, handshakes
  libc      the rest of libc: malloc, string and memory functions, printf
  libs      the proxy's other shared libraries (for portier libevent, nghttp2 and
            libhttp-parser; nginx and HAProxy build their event loop, HTTP parsers
            and HTTP/2 into their binary)
  own       the proxy's binary (and the vdso)
"""
import re
import signal
import subprocess

PARTS = ("kernel", "syscall", "openssl", "libc", "libs", "own")
# libc entry points that are one system call each (names as perf prints them, after
# stripping __GI_, __libc_ and leading underscores).
SYSCALLS = {
    "read", "write", "readv", "writev", "recv", "send", "recvfrom", "sendto", "recvmsg",
    "sendmsg", "sendmmsg", "epoll_wait", "epoll_pwait", "epoll_ctl", "accept", "accept4",
    "close", "connect", "socket", "shutdown", "getpid", "getsockname", "getpeername",
    "setsockopt", "getsockopt", "ioctl", "fcntl", "pread64", "pwrite64", "eventfd_write",
    "eventfd_read", "brk", "mmap", "munmap", "madvise", "mprotect", "sendfile", "splice",
}
LINE = re.compile(r"^\s*([\d.]+)%\s+(\S+)\s+\[([k.])\]\s+(\S+)")


def _base(sym):
    s = sym.split("@")[0]
    for prefix in ("__GI_", "__libc_", "__"):
        while s.startswith(prefix):
            s = s[len(prefix):]
    return s.removeprefix("libc_")


def part_of(dso, kind, sym):
    """The part (see PARTS) one perf sample line belongs to."""
    if kind == "k" or dso.startswith("[kernel"):
        return "kernel"
    if dso.startswith(("libcrypto", "libssl")):
        return "openssl"
    if dso.startswith("libc.so") or dso.startswith("libc-"):
        return "syscall" if _base(sym) in SYSCALLS else "libc"
    if dso.startswith("lib") and ".so" in dso:
        return "libs"
    return "own"


def split(report_text):
    """{part: share in percent} from `perf report --sort dso,sym` text; the shares of
    the lines it could read, scaled to 100."""
    parts = dict.fromkeys(PARTS, 0.0)
    for line in report_text.splitlines():
        m = LINE.match(line)
        if m:
            parts[part_of(m.group(2), m.group(3), m.group(4))] += float(m.group(1))
    total = sum(parts.values())
    return {k: 100 * v / total for k, v in parts.items()} if total else {}


class Recorder:
    """perf record on pids (a list) into path, from start() until stop()."""

    def __init__(self, path, pids, cpu):
        self.path, self.pids, self.cpu = path, pids, cpu
        self.proc = None
        self.error = None

    def start(self):
        argv = ["taskset", "-c", str(self.cpu), "perf", "record", "-q", "-F", "999",
                "-p", ",".join(map(str, self.pids)), "-o", self.path]
        try:
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, text=True)
        except OSError as e:
            self.error = f"perf: {e}"

    def stop(self):
        """{part: percent}, or {"error": text} when perf gave nothing."""
        if self.proc is None:
            return {"error": self.error or "perf not started"}
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        rep = subprocess.run(["perf", "report", "-i", self.path, "--stdio", "--no-children",
                              "--sort", "dso,sym", "-g", "none", "--percent-limit", "0"],
                             capture_output=True, text=True, timeout=120)
        parts = split(rep.stdout)
        if not parts:
            return {"error": (err or rep.stderr or "no samples").strip()[-300:]}
        return parts
