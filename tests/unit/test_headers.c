/*
 * test_headers.c - header rewriting towards backends (proxy/http/headers.h)
 * and the request helpers it leans on (proxy/http/req.h): hop-by-hop
 * removal, strip_prefix, the backend request head with its framing and
 * forwarding headers for trusted and untrusted peers, request ids.
 */
#include "proxy/http/headers.h"
#include "tests/unit/check.h"

#include <stdlib.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "config/model.h"

/* H: an h1_header from two string literals. */
#define H(n, v) { (n), sizeof(n) - 1, (v), sizeof(v) - 1 }
#define NHDR(a) (sizeof(a) / sizeof((a)[0]))

/* ---- fixtures ---------------------------------------------------------- */

static struct cfg_route test_route;

/* req_fill: a GET /api/x?q=1 over TLS from 127.0.0.1 to port 443 for
 * example.com, headers hs[0..n), strip_prefix NULL, untrusted peer. */
static void req_fill(struct req *r, struct h1_header *hs, size_t n)
{
	memset(r, 0, sizeof *r);
	memset(&test_route, 0, sizeof test_route);
	r->method = "GET";
	r->method_len = 3;
	r->path = "/api/x";
	r->path_len = 6;
	r->query = "q=1";
	r->query_len = 3;
	r->authority = "Example.com:443";
	r->authority_len = 15;
	strcpy(r->host, "example.com");
	r->host_len = 11;
	r->headers = hs;
	r->n_headers = n;
	r->content_length = -1;
	r->keep_alive = true;
	struct sockaddr_in *sin = (struct sockaddr_in *)&r->client;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	strcpy(r->client_ip, "127.0.0.1");
	r->local_port = 443;
	r->tls = true;
	r->tls_version = "TLSv1.3";
	r->protocol = "HTTP/1.1";
	strcpy(r->id, "0123456789abcdef0123456789abcdef");
	r->route.route = &test_route;
}

/* The backend head as written, split into its request line and fields. */
#define OUT_MAX 64
static struct {
	char text[8192];
	char line[512];
	struct {
		char name[64];
		char value[512];
	} h[OUT_MAX];
	size_t n;
	int well_formed; /* CRLF-terminated lines, one blank line, at the end */
} out;

/* write_head: headers_compose_upstream into out, parsed. */
static void write_head(const struct req *r, int64_t body_len, bool chunked)
{
	struct evbuffer *b = evbuffer_new();
	struct head_out h;
	head_out_begin(&h, b);
	headers_compose_upstream(&h, r, body_len, chunked);
	CHECK(head_out_end(&h) == 0);
	size_t len = evbuffer_get_length(b);
	memset(&out, 0, sizeof out);
	if (len >= sizeof out.text) {
		fprintf(stderr, "head too long: %zu\n", len);
		evbuffer_free(b);
		return;
	}
	memcpy(out.text, evbuffer_pullup(b, -1), len);
	evbuffer_free(b);

	const char *p = out.text, *end = out.text + len;
	const char *eol = strstr(p, "\r\n");
	if (!eol || (size_t)(eol - p) >= sizeof out.line)
		return;
	memcpy(out.line, p, (size_t)(eol - p));
	p = eol + 2;
	while (p < end) {
		eol = strstr(p, "\r\n");
		if (!eol)
			return;
		if (eol == p) { /* the blank line */
			out.well_formed = eol + 2 == end;
			return;
		}
		const char *colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon || out.n == OUT_MAX || (size_t)(colon - p) >= sizeof out.h[0].name ||
		    colon[1] != ' ' || (size_t)(eol - colon - 2) >= sizeof out.h[0].value)
			return;
		memcpy(out.h[out.n].name, p, (size_t)(colon - p));
		memcpy(out.h[out.n].value, colon + 2, (size_t)(eol - colon - 2));
		out.n++;
		p = eol + 2;
	}
}

/* out_count: how many fields named name (case-insensitive) out holds. */
static int out_count(const char *name)
{
	int c = 0;
	for (size_t i = 0; i < out.n; i++)
		if (strcasecmp(out.h[i].name, name) == 0)
			c++;
	return c;
}

/* out_get: the first value of name in out, NULL when absent. */
static const char *out_get(const char *name)
{
	for (size_t i = 0; i < out.n; i++)
		if (strcasecmp(out.h[i].name, name) == 0)
			return out.h[i].value;
	return NULL;
}

/* ---- headers_is_hop_by_hop -------------------------------------------- */

static bool hop(struct h1_header *hs, size_t n, size_t i)
{
	return headers_is_hop_by_hop(hs, n, i);
}

static void test_hop_fixed(void)
{
	struct h1_header hs[] = {
		H("Connection", "close"),
		H("KEEP-ALIVE", "timeout=5"),
		H("proxy-connection", "keep-alive"),
		H("Te", "trailers"),
		H("Trailer", "X-Sum"),
		H("Transfer-Encoding", "chunked"),
		H("upGRADE", "websocket"),
		H("Proxy-Authenticate", "Basic"),
		H("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
		H("Host", "example.com"),
		H("Accept", "*/*"),
		H("TEx", "1"),           /* prefix of nothing, "te" plus a byte */
		H("Connectio", "close"), /* a fixed name minus a byte */
		H("Authorization", "Bearer x"),
		H("Content-Length", "3"),
	};
	size_t n = NHDR(hs);
	for (size_t i = 0; i <= 8; i++)
		CHECK(hop(hs, n, i));
	for (size_t i = 9; i < n; i++)
		CHECK(!hop(hs, n, i));
}

/* end_to_end_matches: headers_end_to_end keeps exactly what
 * headers_is_hop_by_hop (and the Content-Length rule) keep, in order. */
static void end_to_end_matches(struct h1_header *hs, size_t n)
{
	for (int keep_length = 0; keep_length <= 1; keep_length++) {
		struct h1_header got[64], want[64];
		size_t ng = headers_end_to_end(hs, n, keep_length, got), nw = 0;
		for (size_t i = 0; i < n; i++)
			if (!hop(hs, n, i) &&
			    (keep_length || !h1_token_eq(hs[i].name, hs[i].name_len, "content-length")))
				want[nw++] = hs[i];
		CHECK(ng == nw);
		for (size_t i = 0; i < ng && i < nw; i++)
			CHECK(got[i].name == want[i].name && got[i].value == want[i].value);
	}
}

static void test_end_to_end(void)
{
	struct h1_header plain[] = {
		H("Server", "nginx"), H("Date", "x"), H("Content-Type", "text/plain"),
		H("Content-Length", "1024"), H("Connection", "keep-alive"), H("ETag", "\"a\""),
	};
	end_to_end_matches(plain, NHDR(plain));
	struct h1_header listed[] = {
		H("Connection", "X-Foo, host, content-length"), H("X-Foo", "1"), H("Host", "h"),
		H("content-length", "5"), H("x-bar", "2"), H("connection", "X-Bar"),
		H("Upgrade", "websocket"), H("X-Request-Id", "r"),
	};
	end_to_end_matches(listed, NHDR(listed));
	/* More Connection fields than headers_end_to_end keeps at hand. */
	struct h1_header many[] = {
		H("Connection", "a"), H("Connection", "b"), H("Connection", "c"),
		H("Connection", "d"), H("Connection", "e"), H("Connection", "f"),
		H("Connection", "g"), H("Connection", "h"), H("Connection", "i"),
		H("Connection", "j"), H("A", "1"), H("J", "2"), H("K", "3"), H("Host", "h"),
	};
	end_to_end_matches(many, NHDR(many));
	struct h1_header none[] = {H("X", "1")};
	end_to_end_matches(none, 0);
	end_to_end_matches(none, 1);
}

static void test_hop_connection_listed(void)
{
	struct h1_header hs[] = {
		H("Connection", " ,X-Foo ,\t, x-bar\t,"),
		H("X-Foo", "1"),
		H("x-BAR", "2"),
		H("X-Fo", "3"),     /* a prefix of a listed name */
		H("X-Foobar", "4"), /* a listed name is a prefix of it */
		H("connection", "keep-alive,X-Baz"),
		H("X-Baz", "5"),
		H("X-Qux", "6"),
		H("Accept", "x-foo"), /* listed names only count in Connection */
		H("X-Upgrade-Me", "7"),
	};
	size_t n = NHDR(hs);
	CHECK(hop(hs, n, 0));
	CHECK(hop(hs, n, 1));
	CHECK(hop(hs, n, 2));
	CHECK(!hop(hs, n, 3));
	CHECK(!hop(hs, n, 4));
	CHECK(hop(hs, n, 5));
	CHECK(hop(hs, n, 6)); /* named in the second Connection header */
	CHECK(!hop(hs, n, 7));
	CHECK(!hop(hs, n, 8));
	CHECK(!hop(hs, n, 9));

	/* A token with inner spaces names nothing; empty Connection names nothing. */
	struct h1_header hs2[] = {
		H("Connection", "X-A X-B"),
		H("X-A", "1"),
		H("Connection", ""),
		H("X-B", "2"),
	};
	CHECK(!hop(hs2, NHDR(hs2), 1));
	CHECK(!hop(hs2, NHDR(hs2), 3));

	/* No Connection header at all: only the fixed names go. */
	struct h1_header hs3[] = { H("X-Foo", "1"), H("Keep-Alive", "1") };
	CHECK(!hop(hs3, NHDR(hs3), 0));
	CHECK(hop(hs3, NHDR(hs3), 1));
}

/* ---- headers_strip_prefix ---------------------------------------------- */

/* strip: headers_strip_prefix of path under prefix, as a string. */
static const char *strip(const char *path, const char *prefix)
{
	static char buf[256];
	const char *o = NULL;
	size_t n = headers_strip_prefix(path, strlen(path), prefix, &o);
	if (!o || n >= sizeof buf)
		return NULL;
	memcpy(buf, o, n);
	buf[n] = '\0';
	return buf;
}

static void test_strip_prefix(void)
{
	CHECK_STR(strip("/api", "/api"), "/");
	CHECK_STR(strip("/api/", "/api"), "/");
	CHECK_STR(strip("/api/x", "/api"), "/x");
	CHECK_STR(strip("/api/x/y/", "/api"), "/x/y/");
	CHECK_STR(strip("/api//x", "/api"), "//x");
	CHECK_STR(strip("/apiary", "/api"), "/apiary");
	CHECK_STR(strip("/apiary/x", "/api"), "/apiary/x");
	CHECK_STR(strip("/API/x", "/api"), "/API/x"); /* paths are case-sensitive */
	CHECK_STR(strip("/other/api/x", "/api"), "/other/api/x");
	CHECK_STR(strip("/ap", "/api"), "/ap");
	CHECK_STR(strip("/", "/api"), "/");

	/* A trailing slash on the prefix strips like without it. */
	CHECK_STR(strip("/api/x", "/api/"), "/x");
	CHECK_STR(strip("/api", "/api/"), "/");
	CHECK_STR(strip("/api/", "/api/"), "/");
	CHECK_STR(strip("/apiary", "/api/"), "/apiary");
	CHECK_STR(strip("/api/x", "/api//"), "/x");

	/* Nested prefixes. */
	CHECK_STR(strip("/a/b/c", "/a/b"), "/c");
	CHECK_STR(strip("/a/bc", "/a/b"), "/a/bc");

	/* No prefix. */
	CHECK_STR(strip("/api/x", NULL), "/api/x");
	CHECK_STR(strip("/api/x", ""), "/api/x");

	/* The result points into the path (no copy), or at a static "/". */
	const char *path = "/api/x", *o = NULL;
	CHECK(headers_strip_prefix(path, 6, "/api", &o) == 2 && o == path + 4);
	CHECK(headers_strip_prefix(path, 6, "/zzz", &o) == 6 && o == path);
	/* The length is honoured: path bytes past len are not looked at. */
	CHECK(headers_strip_prefix("/apiary", 4, "/api", &o) == 1 && o[0] == '/');

	/*
	 * BUG (headers.c, headers_strip_prefix): strip_prefix "/" is accepted by
	 * the tenant loader (tenant_url_path only requires a leading '/'), but
	 * here it removes the path's leading slash: "/x" under "/" becomes "x",
	 * and headers_compose_upstream then sends "GET x HTTP/1.1", an invalid
	 * request-target. The cause is the `prefix[plen - 1] != '/'` test, which
	 * is only reached when the trimmed prefix is "/". Expected: "/" (and "//")
	 * strip nothing. These two CHECKs fail until that is fixed.
	 */
	CHECK_STR(strip("/x", "/"), "/x");
	CHECK_STR(strip("/x/y", "//"), "/x/y");
	CHECK_STR(strip("/", "/"), "/");
}

/* ---- headers_compose_upstream ------------------------------------------- */

static void test_upstream_basic(void)
{
	struct h1_header hs[] = {
		H("Host", "Example.com:443"),
		H("User-Agent", "t/1"),
		H("Accept", "*/*"),
		H("Connection", "keep-alive, X-Secret"),
		H("Keep-Alive", "timeout=5"),
		H("TE", "trailers"),
		H("Proxy-Connection", "keep-alive"),
		H("Transfer-Encoding", "chunked"),
		H("Upgrade", "websocket"),
		H("X-Secret", "s"),
		H("Trailer", "X-Sum"),
		H("Proxy-Authorization", "Basic x"),
		H("Content-Length", "5"),
		H("Expect", "100-continue"),
		H("Cookie", "a=1"),
		H("Cookie", "b=2"),
	};
	struct req r;
	req_fill(&r, hs, NHDR(hs));
	test_route.strip_prefix = "/api";

	write_head(&r, -1, false);
	CHECK(out.well_formed);
	CHECK_STR(out.line, "GET /x?q=1 HTTP/1.1");
	CHECK_STR(out_get("Host"), "Example.com:443");
	CHECK(out_count("Host") == 1);
	CHECK_STR(out_get("User-Agent"), "t/1");
	CHECK_STR(out_get("Accept"), "*/*");
	CHECK(out_count("Cookie") == 2);
	/* Original order among the kept fields. */
	CHECK(out.n >= 3 && strcmp(out.h[0].name, "Host") == 0 &&
	      strcmp(out.h[1].name, "User-Agent") == 0 && strcmp(out.h[2].name, "Accept") == 0);
	CHECK(out_count("Connection") == 0);
	CHECK(out_count("Keep-Alive") == 0);
	CHECK(out_count("TE") == 0);
	CHECK(out_count("Proxy-Connection") == 0);
	CHECK(out_count("Transfer-Encoding") == 0);
	CHECK(out_count("Upgrade") == 0);
	CHECK(out_count("X-Secret") == 0);
	CHECK(out_count("Trailer") == 0);
	CHECK(out_count("Proxy-Authorization") == 0);
	CHECK(out_count("Content-Length") == 0);
	CHECK(out_count("Expect") == 0);
	CHECK_STR(out_get("X-Request-Id"), r.id);
	CHECK(out_count("X-Request-Id") == 1);

	/* Our framing: a length, or chunked (which wins), or nothing. */
	write_head(&r, 5, false);
	CHECK(out.well_formed);
	CHECK_STR(out_get("Content-Length"), "5");
	CHECK(out_count("Content-Length") == 1);
	CHECK(out_count("Transfer-Encoding") == 0);
	write_head(&r, 0, false);
	CHECK_STR(out_get("Content-Length"), "0");
	write_head(&r, 12345678901LL, false);
	CHECK_STR(out_get("Content-Length"), "12345678901");
	write_head(&r, -1, true);
	CHECK_STR(out_get("Transfer-Encoding"), "chunked");
	CHECK(out_count("Transfer-Encoding") == 1);
	CHECK(out_count("Content-Length") == 0);
	write_head(&r, 7, true);
	CHECK(out_count("Transfer-Encoding") == 1 && out_count("Content-Length") == 0);
}

static void test_upstream_request_line(void)
{
	struct h1_header hs[] = { H("Host", "example.com") };
	struct req r;
	req_fill(&r, hs, NHDR(hs));

	/* No strip_prefix: the path as sent. */
	write_head(&r, -1, false);
	CHECK_STR(out.line, "GET /api/x?q=1 HTTP/1.1");

	/* Exact prefix: "/", the query kept. */
	test_route.strip_prefix = "/api";
	r.path = "/api";
	r.path_len = 4;
	write_head(&r, -1, false);
	CHECK_STR(out.line, "GET /?q=1 HTTP/1.1");

	/* No query; an empty query keeps its '?'. */
	r.query = NULL;
	r.query_len = 0;
	write_head(&r, -1, false);
	CHECK_STR(out.line, "GET / HTTP/1.1");
	r.query = "";
	write_head(&r, -1, false);
	CHECK_STR(out.line, "GET /? HTTP/1.1");

	/* Another method, HTTP/1.0 in, HTTP/1.1 out. */
	r.method = "DELETE";
	r.method_len = 6;
	r.path = "/apiary";
	r.path_len = 7;
	r.query = NULL;
	r.protocol = "HTTP/1.0";
	write_head(&r, 0, false);
	CHECK_STR(out.line, "DELETE /apiary HTTP/1.1");
}

static void test_upstream_untrusted(void)
{
	struct h1_header hs[] = {
		H("Host", "example.com"),
		H("X-Forwarded-For", "6.6.6.6"),
		H("x-forwarded-proto", "http"),
		H("X-Forwarded-Host", "evil.example"),
		H("X-Forwarded-Port", "1"),
		H("X-Real-IP", "6.6.6.6"),
		H("X-Forwarded-For", "7.7.7.7"),
		H("Forwarded", "for=6.6.6.6"),
		H("X-Request-Id", "forged"),
	};
	struct req r;
	req_fill(&r, hs, NHDR(hs));
	r.client_trusted = false;
	write_head(&r, -1, false);
	CHECK(out.well_formed);
	CHECK(out_count("X-Forwarded-For") == 1);
	CHECK_STR(out_get("X-Forwarded-For"), "127.0.0.1");
	CHECK(out_count("X-Forwarded-Proto") == 1);
	CHECK_STR(out_get("X-Forwarded-Proto"), "https");
	CHECK(out_count("X-Forwarded-Host") == 1);
	CHECK_STR(out_get("X-Forwarded-Host"), "Example.com:443");
	CHECK(out_count("X-Forwarded-Port") == 1);
	CHECK_STR(out_get("X-Forwarded-Port"), "443");
	CHECK(out_count("X-Real-IP") == 1);
	CHECK_STR(out_get("X-Real-IP"), "127.0.0.1");
	CHECK(out_count("Forwarded") == 0);
	CHECK(out_count("X-Request-Id") == 1);
	CHECK_STR(out_get("X-Request-Id"), r.id);
	CHECK(!strstr(out.text, "6.6.6.6") && !strstr(out.text, "7.7.7.7") &&
	      !strstr(out.text, "evil") && !strstr(out.text, "forged"));

	/* Plain HTTP on port 80, an IPv6 client. */
	r.tls = false;
	r.tls_version = NULL;
	r.local_port = 80;
	strcpy(r.client_ip, "2001:db8::1");
	write_head(&r, -1, false);
	CHECK_STR(out_get("X-Forwarded-Proto"), "http");
	CHECK_STR(out_get("X-Forwarded-Port"), "80");
	CHECK_STR(out_get("X-Forwarded-For"), "2001:db8::1");
	CHECK_STR(out_get("X-Real-IP"), "2001:db8::1");
}

static void test_upstream_trusted(void)
{
	struct h1_header hs[] = {
		H("Host", "example.com"),
		H("X-Forwarded-For", "1.2.3.4"),
		H("X-Forwarded-Proto", "http"),
		H("X-Forwarded-Host", "front.example"),
		H("X-Forwarded-Port", "8080"),
		H("X-Real-IP", "1.2.3.4"),
	};
	struct req r;
	req_fill(&r, hs, NHDR(hs));
	r.client_trusted = true;
	write_head(&r, -1, false);
	CHECK(out.well_formed);
	CHECK(out_count("X-Forwarded-For") == 1);
	CHECK_STR(out_get("X-Forwarded-For"), "1.2.3.4, 127.0.0.1");
	CHECK(out_count("X-Forwarded-Proto") == 1);
	CHECK_STR(out_get("X-Forwarded-Proto"), "http");
	CHECK(out_count("X-Forwarded-Host") == 1);
	CHECK_STR(out_get("X-Forwarded-Host"), "front.example");
	CHECK(out_count("X-Forwarded-Port") == 1);
	CHECK_STR(out_get("X-Forwarded-Port"), "8080");
	CHECK(out_count("X-Real-IP") == 1);
	CHECK_STR(out_get("X-Real-IP"), "1.2.3.4");
	CHECK(out_count("X-Request-Id") == 1);

	/* Trusted but the proxy sent none: ours, as for anyone. */
	struct h1_header bare[] = { H("Host", "example.com") };
	req_fill(&r, bare, NHDR(bare));
	r.client_trusted = true;
	write_head(&r, -1, false);
	CHECK_STR(out_get("X-Forwarded-For"), "127.0.0.1");
	CHECK_STR(out_get("X-Forwarded-Proto"), "https");
	CHECK_STR(out_get("X-Forwarded-Host"), "Example.com:443");
	CHECK_STR(out_get("X-Forwarded-Port"), "443");
	CHECK_STR(out_get("X-Real-IP"), "127.0.0.1");

	/*
	 * BUG (headers.c, headers_write_forwarding): a trusted proxy's
	 * X-Forwarded-For spread over two field lines (equivalent to one
	 * comma-joined line, RFC 9110 5.3) loses every line but the first:
	 * "X-Forwarded-For: 1.1.1.1" + "X-Forwarded-For: 2.2.2.2" from a trusted
	 * peer is sent as "1.1.1.1, 127.0.0.1", dropping the 2.2.2.2 hop.
	 * Expected "1.1.1.1, 2.2.2.2, 127.0.0.1". This CHECK fails until fixed.
	 */
	struct h1_header two[] = {
		H("Host", "example.com"),
		H("X-Forwarded-For", "1.1.1.1"),
		H("X-Forwarded-For", "2.2.2.2"),
	};
	req_fill(&r, two, NHDR(two));
	r.client_trusted = true;
	write_head(&r, -1, false);
	CHECK(out_count("X-Forwarded-For") == 1);
	CHECK_STR(out_get("X-Forwarded-For"), "1.1.1.1, 2.2.2.2, 127.0.0.1");
}

static void test_upstream_upgrade(void)
{
	struct h1_header hs[] = {
		H("Host", "example.com"),
		H("Connection", "Upgrade"),
		H("Upgrade", "websocket"),
		H("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
		H("Sec-WebSocket-Version", "13"),
	};
	struct req r;
	req_fill(&r, hs, NHDR(hs));
	r.path = "/ws";
	r.path_len = 3;
	r.query = NULL;
	r.upgrade = true;
	write_head(&r, -1, false);
	CHECK(out.well_formed);
	CHECK_STR(out.line, "GET /ws HTTP/1.1");
	CHECK(out_count("Connection") == 1);
	CHECK_STR(out_get("Connection"), "upgrade");
	CHECK(out_count("Upgrade") == 1);
	CHECK_STR(out_get("Upgrade"), "websocket");
	CHECK_STR(out_get("Sec-WebSocket-Key"), "dGhlIHNhbXBsZSBub25jZQ==");
	CHECK_STR(out_get("Sec-WebSocket-Version"), "13");
	CHECK(out_count("Content-Length") == 0 && out_count("Transfer-Encoding") == 0);

	/* The same head when the front did not accept the upgrade. */
	r.upgrade = false;
	write_head(&r, -1, false);
	CHECK(out_count("Connection") == 0);
	CHECK(out_count("Upgrade") == 0);
}

static void test_upstream_http10_no_host(void)
{
	struct h1_header hs[] = { H("Accept", "*/*") };
	struct req r;
	req_fill(&r, hs, NHDR(hs));
	r.protocol = "HTTP/1.0";
	r.keep_alive = false;
	r.authority = NULL;
	r.authority_len = 0;
	write_head(&r, -1, false);
	CHECK(out.well_formed);
	CHECK(out_count("Host") == 1);
	CHECK_STR(out_get("Host"), "example.com");
	CHECK_STR(out_get("Accept"), "*/*");

	/*
	 * BUG (headers.c, headers_write_forwarding): without a Host
	 * (authority NULL) X-Forwarded-Host is printed with "%.*s" from a NULL
	 * pointer (undefined behaviour; glibc happens to print nothing), so the
	 * backend gets an empty "X-Forwarded-Host: ". Expected the host portier
	 * sends in Host (r->host). This CHECK fails until fixed.
	 */
	CHECK(out_count("X-Forwarded-Host") == 1);
	CHECK_STR(out_get("X-Forwarded-Host"), "example.com");
}

static void test_upstream_connection_names_host(void)
{
	/*
	 * BUG (headers.c, headers_is_hop_by_hop / headers_compose_upstream): a
	 * client can name end-to-end fields in Connection; "Connection: host"
	 * removes Host, and since r->authority is set no Host is added back, so
	 * the backend gets an HTTP/1.1 request without Host (RFC 9112 3.2: a
	 * client MUST send Host), against "original Host kept" (DESIGN 7).
	 * Request: "GET / HTTP/1.1\r\nHost: example.com\r\nConnection: host\r\n\r\n".
	 * Expected: "Host: example.com" forwarded exactly once. Fails until fixed.
	 */
	struct h1_header hs[] = {
		H("Host", "example.com"),
		H("Connection", "host"),
	};
	struct req r;
	req_fill(&r, hs, NHDR(hs));
	r.authority = "example.com";
	r.authority_len = 11;
	write_head(&r, -1, false);
	CHECK(out.well_formed);
	CHECK(out_count("Host") == 1);
	CHECK_STR(out_get("Host"), "example.com");

	/* Naming our own framing or forwarding fields cannot remove ours. */
	struct h1_header hs2[] = {
		H("Host", "example.com"),
		H("Connection", "x-forwarded-for, x-request-id, content-length"),
	};
	req_fill(&r, hs2, NHDR(hs2));
	write_head(&r, 3, false);
	CHECK_STR(out_get("X-Forwarded-For"), "127.0.0.1");
	CHECK_STR(out_get("X-Request-Id"), r.id);
	CHECK_STR(out_get("Content-Length"), "3");
}

/* ---- req_make_id ------------------------------------------------------- */

static bool is_hex32(const char *s)
{
	if (strlen(s) != 32)
		return false;
	for (size_t i = 0; i < 32; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* make_id: req_make_id for a request whose only header is X-Request-Id: v
 * (none when v is NULL), into id. */
static void make_id(const char *v, size_t vlen, char id[40])
{
	struct h1_header h = { "x-REQUEST-id", 12, v, vlen };
	struct req r;
	req_fill(&r, &h, v ? 1 : 0);
	memset(r.id, 'Z', sizeof r.id);
	req_make_id(&r);
	memcpy(id, r.id, 40);
}

static void test_make_id(void)
{
	char a[40], b[40];
	make_id(NULL, 0, a);
	CHECK(is_hex32(a));
	make_id(NULL, 0, b);
	CHECK(is_hex32(b));
	CHECK(strcmp(a, b) != 0);

	/* Many in a row (past the per-thread refill) stay distinct and hex. */
	char prev[40];
	memcpy(prev, b, sizeof prev);
	bool all_ok = true;
	for (int i = 0; i < 200; i++) {
		make_id(NULL, 0, a);
		if (!is_hex32(a) || strcmp(a, prev) == 0)
			all_ok = false;
		memcpy(prev, a, sizeof prev);
	}
	CHECK(all_ok);

	/* Sane ids are kept as sent. */
	make_id("abc-123_X.y", 11, a);
	CHECK_STR(a, "abc-123_X.y");
	static const char max36[] = "123456789012345678901234567890123456";
	make_id(max36, 36, a);
	CHECK_STR(a, max36);
	make_id("550e8400-e29b-41d4-a716-446655440000", 36, a);
	CHECK_STR(a, "550e8400-e29b-41d4-a716-446655440000");

	/* Insane ones are replaced. */
	static const char len37[] = "1234567890123456789012345678901234567";
	make_id(len37, 37, a);
	CHECK(is_hex32(a));
	make_id("has space", 9, a);
	CHECK(is_hex32(a));
	make_id("ctl\001x", 5, a);
	CHECK(is_hex32(a));
	make_id("nul\0x", 5, a);
	CHECK(is_hex32(a));
	make_id("del\177", 4, a);
	CHECK(is_hex32(a));
	make_id("\xc3\xa9t\xc3\xa9", 6, a);
	CHECK(is_hex32(a));
	make_id("a\"b", 3, a);
	CHECK(is_hex32(a));
	make_id("a\r\nX-Evil: 1", 12, a);
	CHECK(is_hex32(a));
	make_id("", 0, a);
	CHECK(is_hex32(a));

	/* The first X-Request-Id decides. */
	struct h1_header two[] = { H("X-Request-Id", "bad id"), H("X-Request-Id", "good") };
	struct req r;
	req_fill(&r, two, NHDR(two));
	req_make_id(&r);
	CHECK(is_hex32(r.id));
}

/* ---- req_header, req_rule_view ---------------------------------------- */

static void test_req_header(void)
{
	struct h1_header hs[] = {
		H("Host", "example.com"),
		H("Accept", "a"),
		H("accept", "b"),
		H("ACCEPT-Encoding", "gzip"),
		H("Accept", ""),
	};
	struct req r;
	req_fill(&r, hs, NHDR(hs));
	const char *v = NULL;
	size_t len = 99;
	CHECK(req_header(&r, "accept", 0, &v, &len) && len == 1 && v[0] == 'a');
	CHECK(req_header(&r, "ACCEPT", 1, &v, &len) && len == 1 && v[0] == 'b');
	CHECK(req_header(&r, "Accept", 2, &v, &len) && len == 0);
	v = "untouched";
	len = 9;
	CHECK(!req_header(&r, "accept", 3, &v, &len));
	CHECK(strcmp(v, "untouched") == 0 && len == 9);
	CHECK(!req_header(&r, "accep", 0, &v, &len));
	CHECK(!req_header(&r, "accept-encodings", 0, &v, &len));
	CHECK(req_header(&r, "accept-encoding", 0, &v, &len) && len == 4 && !memcmp(v, "gzip", 4));
	CHECK(req_header(&r, "host", 0, &v, &len) && len == 11);

	r.n_headers = 0;
	CHECK(!req_header(&r, "host", 0, &v, &len));
}

static void test_rule_view(void)
{
	struct h1_header hs[] = {
		H("Host", "example.com"),
		H("X-Tag", "one"),
		H("x-tag", "two"),
	};
	struct req r;
	req_fill(&r, hs, NHDR(hs));
	struct rule_req v;
	memset(&v, 0, sizeof v);
	req_rule_view(&r, &v);
	CHECK(v.host == r.host && v.host_len == 11);
	CHECK(v.path == r.path && v.path_len == 6);
	CHECK(v.method == r.method && v.method_len == 3);
	CHECK(v.client == (const struct sockaddr *)&r.client);
	CHECK(v.client->sa_family == AF_INET);
	CHECK(v.header_get != NULL && v.header_ud == &r);

	const char *val = NULL;
	size_t len = 0;
	/* name_len bounds the name: "X-Tagged" with length 5 is "X-Tag". */
	CHECK(v.header_get(v.header_ud, "X-Tagged", 5, 0, &val, &len) && len == 3 &&
	      !memcmp(val, "one", 3));
	CHECK(v.header_get(v.header_ud, "X-TAG", 5, 1, &val, &len) && len == 3 &&
	      !memcmp(val, "two", 3));
	CHECK(!v.header_get(v.header_ud, "x-tag", 5, 2, &val, &len));
	CHECK(!v.header_get(v.header_ud, "x-ta", 4, 0, &val, &len));
	CHECK(!v.header_get(v.header_ud, "x-tags", 6, 0, &val, &len));
}

int main(void)
{
	test_hop_fixed();
	test_hop_connection_listed();
	test_end_to_end();
	test_strip_prefix();
	test_upstream_basic();
	test_upstream_request_line();
	test_upstream_untrusted();
	test_upstream_trusted();
	test_upstream_upgrade();
	test_upstream_http10_no_host();
	test_upstream_connection_names_host();
	test_make_id();
	test_req_header();
	test_rule_view();
	return check_done();
}
