"""ACME Renewal Information (RFC 9773) against pebble, which has no
renewalInfo of its own: a small HTTPS server stands in for pebble's
directory, adds "renewalInfo" pointing at itself, and answers for the
certificates portier asks about. It says "renew now" for the first
certificate it is asked about and "in 30 days" for any later one, so the
test sees portier renew a 5-year certificate within seconds because the CA
said so, send the certificate's RFC 9773 identifier, and stop there."""

import base64
import http.server
import json
import ssl
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509

from acme_testbed import PebbleFactory
from controlclient import ControlClient
from test_acme import acme_tenant, cert_entry, issue


@pytest.fixture
def pebble(tmp_path_factory):
    f = PebbleFactory(tmp_path_factory, "pebble-ari")
    try:
        yield f()
    finally:
        f.close()


def _b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def ari_id(der):
    """ari_id: RFC 9773 4.1: base64url(AKI keyIdentifier) "." base64url(serial octets)."""
    cert = x509.load_der_x509_certificate(der)
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    n = cert.serial_number
    octets = n.to_bytes((n.bit_length() + 8) // 8, "big")  # DER: a leading 0 when the top bit is set
    return f"{_b64url(aki.key_identifier)}.{_b64url(octets)}"


class FakeAri:
    """FakeAri: HTTPS on pebble's listener certificate (trusted through the
    same ca_bundle); /dir is pebble's directory plus renewalInfo."""

    def __init__(self, pb):
        self.pb = pb
        self.asked = []          # certificate ids, in order
        self.lock = threading.Lock()
        ctx = urllib.request.urlopen(pb.directory_url, context=ssl.create_default_context(
            cafile=pb.listener_ca), timeout=10)
        self.directory = json.loads(ctx.read())
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if self.path == "/dir":
                    d = dict(outer.directory, renewalInfo=f"https://127.0.0.1:{outer.port}/ari")
                    return self._json(200, d)
                if self.path.startswith("/ari/"):
                    cid = self.path[len("/ari/"):]
                    with outer.lock:
                        first = not outer.asked or outer.asked[0] == cid
                        outer.asked.append(cid)
                    now = datetime.now(timezone.utc)
                    if first:
                        start, end = now - timedelta(hours=2), now - timedelta(hours=1)
                    else:
                        start, end = now + timedelta(days=30), now + timedelta(days=31)
                    fmt = "%Y-%m-%dT%H:%M:%SZ"
                    return self._json(200, {"suggestedWindow": {"start": start.strftime(fmt),
                                                                "end": end.strftime(fmt)}},
                                      {"Retry-After": "3600"})
                self._json(404, {"type": "urn:ietf:params:acme:error:malformed"})

            def _json(self, status, doc, headers=None):
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(pb.state_dir / "listener.pem", pb.state_dir / "listener.key")
        self.httpd.socket = sctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_ari_window_renews_early_and_names_the_certificate(pebble, portier_factory,
                                                           backend_factory):
    """A certificate valid for years is renewed within seconds of issuance
    because the CA's renewalInfo window for it has begun; portier asked about
    exactly that certificate (its RFC 9773 identifier), the renewed one is
    served and stored, and, its window being 30 days out, nothing more is
    ordered."""
    pb = pebble
    ari = FakeAri(pb)
    try:
        host = "ari.example.test"
        b = backend_factory("ari")
        acme = pb.acme_config(directory=f"https://127.0.0.1:{ari.port}/dir")
        p = portier_factory({"ari": acme_tenant(host, b)}, listen=pb.listen(), acme=acme)
        cc = ControlClient.of(p)
        root = pb.issuer_root()
        orders0 = pb.orders()
        first = issue(pb, p.https_port, host, root)
        first_id = ari_id(first.der)

        deadline = time.monotonic() + 40
        served = first
        while time.monotonic() < deadline:
            served = issue(pb, p.https_port, host, root, "/poll", timeout=20)
            if served.der != first.der:
                break
            time.sleep(0.5)
        assert served.der != first.der, f"no renewal; ARI asked {ari.asked}\n{p.stderr_text(40)}"
        assert ari.asked and ari.asked[0] == first_id, (ari.asked, first_id)
        assert pb.orders() - orders0 == 2, pb.orders() - orders0
        # The renewed certificate's window is a month away: portier may ask
        # about it, but orders nothing more.
        second_id = ari_id(served.der)
        t_end = time.monotonic() + 10
        while time.monotonic() < t_end and second_id not in ari.asked:
            time.sleep(0.2)
        assert second_id in ari.asked, ari.asked
        assert pb.orders() - orders0 == 2
        e = cert_entry(cc, host)
        assert e and e["state"] == "valid", e
        stored = (p.state_dir / "certs" / host / "meta.json").read_text()
        assert json.loads(stored).get("ari_id") == second_id, stored
    finally:
        ari.close()
