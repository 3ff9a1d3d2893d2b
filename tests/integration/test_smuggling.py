"""Strict HTTP/1.1 parsing: malformed and smuggling-shaped requests.

Each case is sent as exact bytes over TLS and over plain HTTP (the tenant has
https_redirect false, so both listeners proxy). For each: a 4xx answer
(501 allowed for an unknown transfer coding, 505 for a version), portier
closes the connection after it, and the backend's OWN log has no request
carrying the case's marker (nor the smuggled inner request's).
"""

import pytest

from httpclient import raw_exchange

HOST = "smug.test"
CRLF = "\r\n"


def req(head_lines, body="", start="POST {p} HTTP/1.1", host=True, eol=CRLF):
    """req: a request from its lines; {p} is the marker path, {h} the host."""
    lines = [start] + (["Host: {h}"] if host else []) + list(head_lines)
    return eol.join(lines) + eol + eol + body


SMUGGLED = "GET {p}-inner HTTP/1.1\r\nHost: {h}\r\n\r\n"
CHUNKED = "Transfer-Encoding: chunked"

# (id, request template, allowed statuses or None for any 4xx)
CASES = [
    ("cl_then_te", req(["Content-Length: 4", CHUNKED], "0\r\n\r\n" + SMUGGLED), None),
    ("te_then_cl", req([CHUNKED, "Content-Length: 4"], "0\r\n\r\n" + SMUGGLED), None),
    ("double_cl_same", req(["Content-Length: 5", "Content-Length: 5"], "hello"), None),
    ("double_cl_different", req(["Content-Length: 5", "Content-Length: 6"], "hello!"),
     None),
    ("cl_list_different", req(["Content-Length: 5, 6"], "hello!"), None),
    ("te_chunked_identity", req(["Transfer-Encoding: chunked, identity"], "0\r\n\r\n"),
     {400, 501}),
    ("te_chunked_twice", req(["Transfer-Encoding: chunked, chunked"], "0\r\n\r\n"),
     {400, 501}),
    ("te_identity", req(["Transfer-Encoding: identity"]), {400, 501}),
    ("te_unknown_xchunked", req(["Transfer-Encoding: xchunked"], "0\r\n\r\n"), {400, 501}),
    ("te_leading_space_with_cl", req(["Content-Length: 4", "Transfer-Encoding:  chunked"],
                                     "0\r\n\r\n" + SMUGGLED), None),
    ("te_trailing_space_with_cl", req(["Content-Length: 4", "Transfer-Encoding: chunked "],
                                      "0\r\n\r\n" + SMUGGLED), None),
    ("te_vertical_tab", req(["Transfer-Encoding: \x0bchunked"], "0\r\n\r\n"), {400, 501}),
    ("te_form_feed_trailing", req(["Transfer-Encoding: chunked\x0c"], "0\r\n\r\n"),
     {400, 501}),
    ("te_space_before_colon", req(["Transfer-Encoding : chunked", "Content-Length: 4"],
                                  "0\r\n\r\n" + SMUGGLED), None),
    ("cl_tab_before_colon", req(["Content-Length\t: 5"], "hello"), None),
    ("space_before_colon", req(["X-Thing : value"], start="GET {p} HTTP/1.1"), None),
    ("obs_fold", req(["X-Folded: first", "  second"], start="GET {p} HTTP/1.1"), None),
    ("bare_lf", req([], start="GET {p} HTTP/1.1", eol="\n"), None),
    ("cr_without_lf", "GET {p} HTTP/1.1\rHost: {h}\r\n\r\n", None),
    ("nul_in_header_value", req(["X-Nul: a\x00b"], start="GET {p} HTTP/1.1"), None),
    ("header_name_non_token", req(["X(Bad)Name: v"], start="GET {p} HTTP/1.1"), None),
    ("header_line_without_colon", req(["NoColonHere"], start="GET {p} HTTP/1.1"), None),
    ("chunk_size_not_hex", req([CHUNKED], "zz\r\nhello\r\n0\r\n\r\n"), None),
    ("chunk_size_negative", req([CHUNKED], "-1\r\nhello\r\n0\r\n\r\n"), None),
    ("chunk_size_overflow", req([CHUNKED], "1" + "0" * 32 + "\r\nhello\r\n0\r\n\r\n"), None),
    ("chunk_ext_control_byte", req([CHUNKED], "5;\x00ext\r\nhello\r\n0\r\n\r\n"), None),
    ("oversize_header", req(["X-Big: " + "a" * 20000], start="GET {p} HTTP/1.1"), {431}),
    ("too_many_headers", req([f"X-H{i}: v" for i in range(150)], start="GET {p} HTTP/1.1"),
     {431}),
    ("missing_host_http11", req([], start="GET {p} HTTP/1.1", host=False), None),
    ("two_host_headers", req(["Host: other.test"], start="GET {p} HTTP/1.1"), None),
    ("absolute_form_other_host", req([], start="GET http://other.test{p} HTTP/1.1"), None),
    ("method_invalid_chars", req([], start="G(E)T {p} HTTP/1.1"), None),
    ("target_without_slash", req([], start="GET {p0} HTTP/1.1"), None),
    ("version_1_2", req([], start="GET {p} HTTP/1.2"), {400, 505}),
    ("version_2_0_in_h1", req([], start="GET {p} HTTP/2.0"), {400, 505}),
    ("request_line_extra_spaces", req([], start="GET  {p}  HTTP/1.1"), None),
    ("control_char_in_uri", req([], start="GET {p}\x01x HTTP/1.1"), None),
    ("cl_negative", req(["Content-Length: -5"], "hello"), None),
    ("cl_plus_sign", req(["Content-Length: +5"], "hello"), None),
    ("cl_trailing_junk", req(["Content-Length: 5x"], "hello"), None),
    ("cl_leading_junk", req(["Content-Length: x5"], "hello"), None),
    ("cl_hex", req(["Content-Length: 0x5"], "hello"), None),
    ("cl_overflow", req(["Content-Length: 99999999999999999999999999"], "hello"), None),
]


@pytest.fixture(scope="module")
def edge(module_portier_factory, module_backend_factory):
    b = module_backend_factory("smug-backend")
    tenants = {"smug": {"routes": [{"rule": f"Host(`{HOST}`)", "service": "s"}],
                        "services": {"s": {"backends": [b.address]}},
                        "https_redirect": False}}
    # client_header is long on purpose: a request left waiting for more bytes
    # must not pass by timing out into a 408 before the read deadline.
    p = module_portier_factory(tenants, limits={"header_size": "16k", "header_count": 100},
                               timeouts={"client_header": "30s"})
    return p, b


def render(template, marker):
    return template.format(p=marker, p0=marker.lstrip("/"), h=HOST).encode("latin-1")


def send(edge, data, tls):
    p, _ = edge
    if tls:
        return raw_exchange(p.https_port, data, tls=True, sni=HOST, ca_file=p.ca_file)
    return raw_exchange(p.http_port, data)


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "plain"])
@pytest.mark.parametrize("case_id,template,allowed", CASES, ids=[c[0] for c in CASES])
def test_rejected(edge, case_id, template, allowed, tls, marker):
    """The malformed request is refused, the connection closed, nothing proxied."""
    _, backend = edge
    res = send(edge, render(template, marker), tls)
    status = res.status
    assert status is not None, f"no HTTP response: {res!r}"
    if allowed:
        assert status in allowed, f"status {status} not in {sorted(allowed)}: {res!r}"
    else:
        assert 400 <= status < 500 and status != 408, f"status {status}: {res!r}"
    assert res.closed, f"portier kept the connection open after {status}: {res!r}"
    leaked = backend.seen(marker)
    assert not leaked, f"backend received: {[r['target'] for r in leaked]}"


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "plain"])
def test_wellformed_control_case(edge, tls, marker):
    """The same harness with a valid chunked POST: 200 and the backend sees it
    (so the rejections above are not an artefact of the harness)."""
    _, backend = edge
    data = render(req([CHUNKED, "Connection: close"], "5\r\nhello\r\n0\r\n\r\n"), marker)
    res = send(edge, data, tls)
    assert res.status == 200, res
    seen = backend.seen(marker)
    assert len(seen) == 1 and seen[0]["body_len"] == 5, seen
