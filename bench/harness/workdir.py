"""The run's temp dir: one ECDSA P-256 certificate for the test host, shared by every
proxy, free loopback ports, and a hosts file mapping the test host to 127.0.0.1."""
import dataclasses
import os
import socket
import subprocess
import tempfile

HOST = "bench.test"


@dataclasses.dataclass
class Workdir:
    dir: str
    cert: str       # PEM certificate
    key: str        # PEM private key
    pem: str        # certificate + key in one file (HAProxy's `crt`)
    hosts: str      # /etc/hosts plus HOST -> 127.0.0.1, bind-mounted for wrk

    def path(self, *names):
        return os.path.join(self.dir, *names)


def free_port():
    """A port free on 127.0.0.1 now (the kernel's pick for port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create():
    d = tempfile.mkdtemp(prefix="portier-bench-")
    cert, key, pem, hosts = (os.path.join(d, n) for n in ("cert.pem", "key.pem", "crt.pem", "hosts"))
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={HOST}",
         "-addext", f"subjectAltName=DNS:{HOST}"],
        check=True, capture_output=True)
    os.chmod(key, 0o644)  # nginx/haproxy workers may drop privileges
    # The backend's nginx worker (nobody) reads its 64 KiB body file from here.
    os.chmod(d, 0o711)
    with open(pem, "w") as out:
        for p in (cert, key):
            with open(p) as f:
                out.write(f.read())
    with open("/etc/hosts") as f, open(hosts, "w") as out:
        out.write(f.read().rstrip("\n") + f"\n127.0.0.1 {HOST}\n")
    return Workdir(d, cert, key, pem, hosts)
