"""Internal-CA certificates: what gets issued and stored for each kind of
host claim, so hostile SNI names cannot grow the state directory."""

from pathlib import Path

from httpclient import https


def _cert_dirs(p):
    certs = Path(p.config["state_dir"]) / "certs"
    return sorted(d.name for d in certs.iterdir()) if certs.exists() else []


def test_wildcard_claim_gets_one_wildcard_certificate(portier_factory, backend_factory):
    """Two labels under Host(`*.wild.test`) are served by one stored
    certificate for *.wild.test (verified against the internal root), not one
    per label a client invents."""
    b = backend_factory("wild")
    p = portier_factory({"wild": {
        "routes": [{"rule": "Host(`*.wild.test`)", "service": "s"}],
        "services": {"s": {"backends": [b.address]}}}})
    for label in ("a", "b", "zz"):
        r = https(p.https_port, f"{label}.wild.test", p.ca_file, "/")
        assert r.status == 200, r
    assert _cert_dirs(p) == ["_wildcard.wild.test"], _cert_dirs(p)


def test_exact_host_is_stored_and_regex_hosts_are_not(portier_factory, backend_factory):
    """An exactly named host gets its own stored certificate; hosts matched
    only by a HostRegexp are certified in memory and leave nothing on disk."""
    b = backend_factory("rx")
    p = portier_factory({"rx": {
        "routes": [{"rule": "Host(`exact.rx.test`)", "service": "s"},
                   {"rule": "HostRegexp(`^u[0-9]+\\.rx\\.test$`)", "service": "s"}],
        "services": {"s": {"backends": [b.address]}}}})
    for host in ("exact.rx.test", "u1.rx.test", "u2.rx.test"):
        r = https(p.https_port, host, p.ca_file, "/")
        assert r.status == 200, (host, r)
    assert _cert_dirs(p) == ["exact.rx.test"], _cert_dirs(p)
