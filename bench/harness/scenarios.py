"""What is measured: each scenario names its load generator, whether it goes over TLS,
the path (and so the body size) and its connection counts."""
import dataclasses

from .backend import BODIES


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    kind: str           # "wrk", "h2load", "handshake" or "idle"
    tls: bool = True
    path: str = "/"
    conns: int = 50     # wrk/h2load connections; handshakes in flight
    streams: int = 1    # h2load streams per connection
    idle: int = 0       # connections held open (kind "idle")
    idle_h2: bool = False  # those connections speak HTTP/2 ...
    idle_requests: int = 1  # ... and each made this many requests, one after the other

    @property
    def body(self):
        return BODIES[self.path]

    @property
    def h2(self):
        return self.kind == "h2load" or self.idle_h2


ALL = (
    Scenario("h1", "HTTP/1.1 keep-alive, plain, 1 KiB (wrk, 50 conns)", "wrk", tls=False),
    Scenario("h1-tls", "HTTP/1.1 keep-alive over TLS, 1 KiB (wrk, 50 conns)", "wrk"),
    Scenario("h2-tls", "HTTP/2 over TLS, 1 KiB (h2load, 50 conns x 10 streams)", "h2load",
             streams=10),
    Scenario("h1-tls-64k", "HTTP/1.1 keep-alive over TLS, 64 KiB (wrk, 50 conns)", "wrk",
             path="/64k"),
    # One process on one core drives it: the client sets the pace, the proxy's CPU per
    # handshake is the figure that holds. 16 in flight keep the proxy from idling.
    Scenario("handshake", "full TLS handshake + 1 request per connection, no resumption "
             "(16 in flight)", "handshake", conns=16),
    Scenario("idle-1k", "1,000 idle TLS keep-alive connections, 1 request each", "idle",
             conns=32, idle=1000),
    Scenario("idle-10k", "10,000 idle TLS keep-alive connections, 1 request each", "idle",
             conns=32, idle=10000),
    Scenario("idle-h2-1k", "1,000 idle HTTP/2 connections over TLS, 20 requests each "
             "(a page load)", "idle", conns=32, idle=1000, idle_h2=True, idle_requests=20),
)
BY_NAME = {s.name: s for s in ALL}
