/*
 * test_h1_head.c - strict HTTP/1.x head parsing: good requests field by
 * field, bad requests with their exact status, the parser left ready for
 * the body, and backend response heads.
 */
#include "proxy/http/h1_head.h"
#include "tests/unit/check.h"

#include <stdlib.h>

#define CAP 32

static const struct h1_limits test_lim = { .header_size = 8192, .header_count = 24 };

/* One parse: everything a caller keeps on its side. */
struct req_run {
	http_parser parser;
	struct h1_header headers[CAP];
	struct h1_request_head head;
	const char *why;
	const char *buf;
	size_t len;
	int rc;
};

struct res_run {
	struct h1_header headers[CAP];
	struct h1_response_head head;
	const char *why;
	int rc;
};

/* A body consumer standing in for the front end that streams bodies. */
struct body_sink {
	char data[256];
	size_t len;
	int complete;
};

static int req_parse_lim(struct req_run *r, const char *buf, size_t len,
			 const struct h1_limits *lim, size_t cap)
{
	r->buf = buf;
	r->len = len;
	r->why = NULL;
	r->rc = h1_request_head_parse(buf, len, lim, &r->parser, r->headers, cap, &r->head, &r->why);
	return r->rc;
}

static int req_parse(struct req_run *r, const char *s)
{
	return req_parse_lim(r, s, strlen(s), &test_lim, CAP);
}

static int res_parse(struct res_run *r, const char *s, bool head)
{
	r->why = NULL;
	r->rc = h1_response_head_parse(s, strlen(s), &test_lim, head, r->headers, CAP, &r->head,
				       &r->why);
	return r->rc;
}

/* span: a NUL-terminated copy of (p, n) for CHECK_STR; NULL stays NULL. */
static const char *span(const char *p, size_t n)
{
	static char bufs[8][512];
	static unsigned next;
	char *b;

	if (!p)
		return NULL;
	b = bufs[next++ % 8];
	if (n >= sizeof(bufs[0]))
		n = sizeof(bufs[0]) - 1;
	memcpy(b, p, n);
	b[n] = '\0';
	return b;
}

static bool inside(const char *p, size_t n, const char *buf, size_t len)
{
	return p >= buf && p + n <= buf + len;
}

static bool headers_inside(const struct req_run *r)
{
	for (size_t i = 0; i < r->head.n_headers; i++) {
		const struct h1_header *h = &r->head.headers[i];
		if (!inside(h->name, h->name_len, r->buf, r->len)
		    || !inside(h->value, h->value_len, r->buf, r->len))
			return false;
	}
	return true;
}

static int sink_on_body(http_parser *p, const char *at, size_t n)
{
	struct body_sink *s = p->data;
	if (s->len + n > sizeof(s->data))
		return -1;
	memcpy(s->data + s->len, at, n);
	s->len += n;
	return 0;
}

static int sink_on_message_complete(http_parser *p)
{
	struct body_sink *s = p->data;
	s->complete++;
	return 0;
}

/* feed: go on with the parser h1_*_head_parse left, as the caller does. */
static size_t feed(http_parser *p, struct body_sink *s, const char *data)
{
	http_parser_settings st;

	http_parser_settings_init(&st);
	st.on_body = sink_on_body;
	st.on_message_complete = sink_on_message_complete;
	memset(s, 0, sizeof(*s));
	p->data = s;
	return http_parser_execute(p, &st, data, strlen(data));
}

/* ---- good requests ------------------------------------------------------ */

static void test_get_with_query(void)
{
	struct req_run r;
	const char *s = "GET /search/x?q=a%20b&n=2 HTTP/1.1\r\nHost: Example.com\r\n"
			"User-Agent: t/1\r\nX-Pad: \t v v \t\r\nX-Empty:\r\n\r\n";

	CHECK(req_parse(&r, s) == 0);
	CHECK(r.head.method == HTTP_GET);
	CHECK_STR(span(r.head.method_str, r.head.method_len), "GET");
	CHECK_STR(span(r.head.target, r.head.target_len), "/search/x?q=a%20b&n=2");
	CHECK_STR(span(r.head.path, r.head.path_len), "/search/x");
	CHECK_STR(span(r.head.query, r.head.query_len), "q=a%20b&n=2");
	CHECK(r.head.version_minor == 1);
	CHECK_STR(span(r.head.host, r.head.host_len), "Example.com");
	CHECK(r.head.headers == r.headers);
	CHECK(r.head.n_headers == 4);
	CHECK_STR(span(r.head.headers[1].name, r.head.headers[1].name_len), "User-Agent");
	CHECK_STR(span(r.head.headers[1].value, r.head.headers[1].value_len), "t/1");
	CHECK_STR(span(r.head.headers[2].value, r.head.headers[2].value_len), "v v");
	CHECK_STR(span(r.head.headers[3].name, r.head.headers[3].name_len), "X-Empty");
	CHECK(r.head.headers[3].value_len == 0);
	CHECK(headers_inside(&r));
	CHECK(r.head.content_length == -1);
	CHECK(!r.head.chunked);
	CHECK(r.head.keep_alive);
	CHECK(!r.head.expect_continue);
	CHECK(!r.head.upgrade);
}

static void test_origin_without_query(void)
{
	struct req_run r;

	CHECK(req_parse(&r, "DELETE /a/b HTTP/1.1\r\nHost: 10.0.0.1:8080\r\n\r\n") == 0);
	CHECK(r.head.method == HTTP_DELETE);
	CHECK_STR(span(r.head.path, r.head.path_len), "/a/b");
	CHECK(r.head.query == NULL);
	CHECK_STR(span(r.head.host, r.head.host_len), "10.0.0.1:8080");

	CHECK(req_parse(&r, "GET /? HTTP/1.1\r\nHost: a\r\n\r\n") == 0);
	CHECK_STR(span(r.head.path, r.head.path_len), "/");
	CHECK(r.head.query != NULL && r.head.query_len == 0);
}

static void test_post_content_length(void)
{
	struct req_run r;
	struct body_sink sink;
	const char *s = "POST /api HTTP/1.1\r\nHost: api-t.example.com\r\nContent-Length: 5\r\n\r\n";

	CHECK(req_parse(&r, s) == 0);
	CHECK(r.head.method == HTTP_POST);
	CHECK(r.head.content_length == 5);
	CHECK(!r.head.chunked);
	CHECK(feed(&r.parser, &sink, "hello") == 5);
	CHECK(sink.len == 5 && memcmp(sink.data, "hello", 5) == 0);
	CHECK(sink.complete == 1);
	CHECK(HTTP_PARSER_ERRNO(&r.parser) == HPE_OK);

	/* Content-Length on a GET is allowed; leading zeros are digits. */
	CHECK(req_parse(&r, "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n") == 0);
	CHECK(r.head.content_length == 7);
	CHECK(req_parse(&r, "GET / HTTP/1.1\r\nHost: a\r\ncontent-length: 0\r\n\r\n") == 0);
	CHECK(r.head.content_length == 0);
	CHECK(req_parse(&r, "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n") == 0);
	CHECK(r.head.content_length == INT64_MAX);
}

static void test_post_chunked(void)
{
	struct req_run r;
	struct body_sink sink;
	const char *s = "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  Chunked \r\n\r\n";

	CHECK(req_parse(&r, s) == 0);
	CHECK(r.head.chunked);
	CHECK(r.head.content_length == -1);
	CHECK(feed(&r.parser, &sink, "5\r\nhello\r\n0\r\n\r\n") == 15);
	CHECK(sink.len == 5 && memcmp(sink.data, "hello", 5) == 0);
	CHECK(sink.complete == 1);
	CHECK(HTTP_PARSER_ERRNO(&r.parser) == HPE_OK);
}

static void test_keep_alive(void)
{
	struct req_run r;

	CHECK(req_parse(&r, "GET / HTTP/1.0\r\n\r\n") == 0);
	CHECK(r.head.version_minor == 0);
	CHECK(r.head.host == NULL);
	CHECK(r.head.n_headers == 0);
	CHECK(!r.head.keep_alive);

	CHECK(req_parse(&r, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") == 0);
	CHECK(r.head.keep_alive);
	CHECK(req_parse(&r, "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n") == 0);
	CHECK(!r.head.keep_alive);
	CHECK(req_parse(&r, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n") == 0);
	CHECK(!r.head.keep_alive);
	CHECK(req_parse(&r, "GET / HTTP/1.1\r\nHost: a\r\nConnection: te,, CLOSE\r\n\r\n") == 0);
	CHECK(!r.head.keep_alive);
	CHECK(req_parse(&r, "GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n") == 0);
	CHECK(r.head.keep_alive);
}

static void test_expect(void)
{
	struct req_run r;

	CHECK(req_parse(&r, "PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
			"Expect: 100-Continue\r\n\r\n") == 0);
	CHECK(r.head.expect_continue);
	CHECK(r.head.content_length == 3);
	/* RFC 9110 10.1.1: ignored from an HTTP/1.0 client. */
	CHECK(req_parse(&r, "PUT /f HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n") == 0);
	CHECK(!r.head.expect_continue);
}

static void test_upgrade(void)
{
	struct req_run r;
	const char *s = "GET /chat HTTP/1.1\r\nHost: chat.example.com\r\nUpgrade: websocket\r\n"
			"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n"
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

	CHECK(req_parse(&r, s) == 0);
	CHECK(r.head.upgrade);
	CHECK(r.head.keep_alive);
	CHECK(r.head.n_headers == 5);
	CHECK_STR(span(r.head.headers[4].value, r.head.headers[4].value_len),
		  "dGhlIHNhbXBsZSBub25jZQ==");

	CHECK(req_parse(&r, "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n") == 0);
	CHECK(!r.head.upgrade);
	CHECK(req_parse(&r, "GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n") == 0);
	CHECK(!r.head.upgrade);
}

static void test_absolute_form(void)
{
	struct req_run r;
	const char *s = "GET http://Example.com:8080/p/q?x=1 HTTP/1.1\r\nHost: example.COM:8080\r\n\r\n";

	CHECK(req_parse(&r, s) == 0);
	CHECK_STR(span(r.head.host, r.head.host_len), "Example.com:8080");
	CHECK(r.head.host == s + 11);
	CHECK_STR(span(r.head.path, r.head.path_len), "/p/q");
	CHECK_STR(span(r.head.query, r.head.query_len), "x=1");

	CHECK(req_parse(&r, "GET https://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n") == 0);
	CHECK_STR(span(r.head.path, r.head.path_len), "/");
	CHECK(r.head.query == NULL);

	/* HTTP/1.0 without Host: the authority names the origin. */
	CHECK(req_parse(&r, "GET http://b.example/x HTTP/1.0\r\n\r\n") == 0);
	CHECK_STR(span(r.head.host, r.head.host_len), "b.example");
	CHECK_STR(span(r.head.path, r.head.path_len), "/x");
}

static void test_asterisk_and_hosts(void)
{
	struct req_run r;

	CHECK(req_parse(&r, "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n") == 0);
	CHECK(r.head.method == HTTP_OPTIONS);
	CHECK_STR(span(r.head.target, r.head.target_len), "*");
	CHECK_STR(span(r.head.path, r.head.path_len), "*");

	CHECK(req_parse(&r, "GET / HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n") == 0);
	CHECK_STR(span(r.head.host, r.head.host_len), "[::1]:8443");
	CHECK(req_parse(&r, "GET / HTTP/1.1\r\nHost: my_svc.local\r\n\r\n") == 0);
	CHECK(req_parse(&r, "GET / HTTP/1.1\r\nhost:a.b\r\n\r\n") == 0);
	CHECK_STR(span(r.head.host, r.head.host_len), "a.b");
}

static void test_leading_crlf_and_bytes(void)
{
	struct req_run r;
	const char *s = "\r\n\r\nPATCH /x HTTP/1.1\r\nHost: a\r\nX-Name: caf\xc3\xa9\r\n\r\n";

	CHECK(req_parse(&r, s) == 0);
	CHECK(r.head.method == HTTP_PATCH);
	CHECK(r.head.method_str == s + 4);
	CHECK_STR(span(r.head.headers[1].value, r.head.headers[1].value_len), "caf\xc3\xa9");
	CHECK(headers_inside(&r));

	/* HTAB is fine inside a value; odd but legal target bytes too. */
	CHECK(req_parse(&r, "GET /a|b{c}'!$~ HTTP/1.1\r\nHost: a\r\nX-T: a\tb\r\n\r\n") == 0);
	CHECK_STR(span(r.head.headers[1].value, r.head.headers[1].value_len), "a\tb");
}

/* ---- bad requests ------------------------------------------------------- */

struct bad_case {
	const char *name;
	const char *raw;
	size_t len; /* 0: strlen(raw) */
	int status;
};

#define H "Host: a\r\n"
#define NUL_REQ "GET / HTTP/1.1\r\n" H "X-A: a\0b\r\n\r\n"

static const struct bad_case bad_requests[] = {
	{ "CL+TE", "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 400 },
	{ "TE+CL", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 0, 400 },
	{ "TE identity+CL", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: identity\r\nContent-Length: 5\r\n\r\n", 0, 400 },
	{ "double CL same", "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", 0, 400 },
	{ "double CL different", "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 0, 400 },
	{ "CL list", "POST / HTTP/1.1\r\n" H "Content-Length: 5, 5\r\n\r\n", 0, 400 },
	{ "CL plus", "POST / HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\n", 0, 400 },
	{ "CL minus", "POST / HTTP/1.1\r\n" H "Content-Length: -1\r\n\r\n", 0, 400 },
	{ "CL junk", "POST / HTTP/1.1\r\n" H "Content-Length:  5x\r\n\r\n", 0, 400 },
	{ "CL inner space", "POST / HTTP/1.1\r\n" H "Content-Length: 5 5\r\n\r\n", 0, 400 },
	{ "CL empty", "POST / HTTP/1.1\r\n" H "Content-Length:\r\n\r\n", 0, 400 },
	{ "CL overflow u64", "POST / HTTP/1.1\r\n" H "Content-Length: 99999999999999999999999\r\n\r\n", 0, 400 },
	{ "CL overflow i64", "POST / HTTP/1.1\r\n" H "Content-Length: 9223372036854775808\r\n\r\n", 0, 400 },
	{ "TE chunked, identity", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, identity\r\n\r\n", 0, 400 },
	{ "TE identity", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: identity\r\n\r\n", 0, 501 },
	{ "TE gzip, chunked", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n", 0, 501 },
	{ "TE gzip lines", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 501 },
	{ "TE chunked twice", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 400 },
	{ "TE chunked, chunked", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, chunked\r\n\r\n", 0, 400 },
	{ "TE empty element", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked,\r\n\r\n", 0, 400 },
	{ "TE empty", "POST / HTTP/1.1\r\n" H "Transfer-Encoding:\r\n\r\n", 0, 400 },
	{ "TE chunked HTAB", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\t\r\n\r\n", 0, 400 },
	{ "TE on 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 400 },
	{ "obs-fold", "GET / HTTP/1.1\r\n" H "X-A: b\r\n c\r\n\r\n", 0, 400 },
	{ "obs-fold tab", "GET / HTTP/1.1\r\n" H "X-A: b\r\n\tc\r\n\r\n", 0, 400 },
	{ "space before first field", "GET / HTTP/1.1\r\n " H "\r\n", 0, 400 },
	{ "bare LF request line", "GET / HTTP/1.1\n" H "\r\n", 0, 400 },
	{ "bare LF field", "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 0, 400 },
	{ "bare LF end", "GET / HTTP/1.1\r\n" H "\n", 0, 400 },
	{ "bare LF leading", "\nGET / HTTP/1.1\r\n" H "\r\n", 0, 400 },
	{ "bare CR value", "GET / HTTP/1.1\r\n" H "X-A: a\rb\r\n\r\n", 0, 400 },
	{ "bare CR request line", "GET /\r HTTP/1.1\r\n" H "\r\n", 0, 400 },
	{ "NUL in value", NUL_REQ, sizeof(NUL_REQ) - 1, 400 },
	{ "DEL in value", "GET / HTTP/1.1\r\n" H "X-A: a\x7f" "b\r\n\r\n", 0, 400 },
	{ "SOH in value", "GET / HTTP/1.1\r\n" H "X-A: a\x01" "b\r\n\r\n", 0, 400 },
	{ "ESC in name", "GET / HTTP/1.1\r\n" H "X\x1b" "A: b\r\n\r\n", 0, 400 },
	{ "space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 0, 400 },
	{ "tab before colon", "GET / HTTP/1.1\r\n" H "Content-Length\t: 0\r\n\r\n", 0, 400 },
	{ "empty field name", "GET / HTTP/1.1\r\n" H ": x\r\n\r\n", 0, 400 },
	{ "non-token name", "GET / HTTP/1.1\r\n" H "X(A): b\r\n\r\n", 0, 400 },
	{ "8-bit name", "GET / HTTP/1.1\r\n" H "X\xc3\xa9: b\r\n\r\n", 0, 400 },
	{ "no colon", "GET / HTTP/1.1\r\n" H "Xyz\r\n\r\n", 0, 400 },
	{ "no Host on 1.1", "GET / HTTP/1.1\r\nX: y\r\n\r\n", 0, 400 },
	{ "two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 0, 400 },
	{ "Host bad char", "GET / HTTP/1.1\r\nHost: ex$ample.com\r\n\r\n", 0, 400 },
	{ "Host slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 0, 400 },
	{ "Host userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 0, 400 },
	{ "Host empty", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 0, 400 },
	{ "Host empty port", "GET / HTTP/1.1\r\nHost: a:\r\n\r\n", 0, 400 },
	{ "Host big port", "GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n", 0, 400 },
	{ "Host bad IPv6", "GET / HTTP/1.1\r\nHost: [::g]\r\n\r\n", 0, 400 },
	{ "Host open bracket", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 0, 400 },
	{ "absolute other host", "GET http://b.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", 0, 400 },
	{ "absolute other port", "GET http://a:81/ HTTP/1.1\r\nHost: a:80\r\n\r\n", 0, 400 },
	{ "absolute userinfo", "GET http://u@a/ HTTP/1.1\r\n" H "\r\n", 0, 400 },
	{ "absolute ftp", "GET ftp://a/ HTTP/1.1\r\n" H "\r\n", 0, 400 },
	{ "absolute empty authority", "GET http:/// HTTP/1.1\r\n" H "\r\n", 0, 400 },
	{ "target no slash", "GET index.html HTTP/1.1\r\n" H "\r\n", 0, 400 },
	{ "authority-form GET", "GET a:443 HTTP/1.1\r\n" H "\r\n", 0, 400 },
	{ "asterisk GET", "GET * HTTP/1.1\r\n" H "\r\n", 0, 400 },
	{ "target space", "GET /a b HTTP/1.1\r\n" H "\r\n", 0, 400 },
	{ "target tab", "GET /a\tb HTTP/1.1\r\n" H "\r\n", 0, 400 },
	{ "target control", "GET /a\x01 HTTP/1.1\r\n" H "\r\n", 0, 400 },
	{ "target DEL", "GET /a\x7f HTTP/1.1\r\n" H "\r\n", 0, 400 },
	{ "target fragment", "GET /a#b HTTP/1.1\r\n" H "\r\n", 0, 400 },
	{ "target 8-bit", "GET /caf\xc3\xa9 HTTP/1.1\r\n" H "\r\n", 0, 400 },
	{ "two spaces", "GET  / HTTP/1.1\r\n" H "\r\n", 0, 400 },
	{ "trailing space", "GET / HTTP/1.1 \r\n" H "\r\n", 0, 400 },
	{ "HTTP/1.2", "GET / HTTP/1.2\r\n" H "\r\n", 0, 505 },
	{ "HTTP/2.0", "GET / HTTP/2.0\r\n" H "\r\n", 0, 505 },
	{ "HTTP/0.9 version", "GET / HTTP/0.9\r\n\r\n", 0, 505 },
	{ "HTTP/0.9 style", "GET /\r\n\r\n", 0, 400 },
	{ "lowercase version", "GET / http/1.1\r\n" H "\r\n", 0, 400 },
	{ "long version", "GET / HTTP/1.10\r\n" H "\r\n", 0, 400 },
	{ "lowercase method", "get / HTTP/1.1\r\n" H "\r\n", 0, 400 },
	{ "mixed-case method", "Get / HTTP/1.1\r\n" H "\r\n", 0, 400 },
	{ "non-token method", "G(T / HTTP/1.1\r\n" H "\r\n", 0, 400 },
	{ "unknown method", "BREW /pot HTTP/1.1\r\n" H "\r\n", 0, 501 },
	{ "CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 0, 501 },
	{ "Expect other", "PUT / HTTP/1.1\r\n" H "Expect: something-else\r\n\r\n", 0, 417 },
	{ "Expect list", "PUT / HTTP/1.1\r\n" H "Expect: 100-continue, x\r\n\r\n", 0, 417 },
	{ "bytes after head", "GET / HTTP/1.1\r\n" H "\r\nGET", 0, 400 },
	{ "unterminated head", "GET / HTTP/1.1\r\n" H, 0, 400 },
	{ "only CRLFs", "\r\n\r\n", 0, 400 },
	{ "empty", "", 0, 400 },
};

static void test_bad_requests(void)
{
	size_t n = sizeof(bad_requests) / sizeof(bad_requests[0]);

	for (size_t i = 0; i < n; i++) {
		const struct bad_case *c = &bad_requests[i];
		size_t len = c->len ? c->len : strlen(c->raw);
		struct req_run r;

		req_parse_lim(&r, c->raw, len, &test_lim, CAP);
		if (r.rc != c->status)
			fprintf(stderr, "bad request \"%s\": got %d (%s), want %d\n", c->name, r.rc,
				r.why ? r.why : "-", c->status);
		CHECK(r.rc == c->status);
		CHECK(r.why != NULL);
	}
}

static void test_limits(void)
{
	struct req_run r;
	const char *s = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
	const struct h1_limits three = { .header_size = 8192, .header_count = 3 };
	const struct h1_limits four = { .header_size = 8192, .header_count = 4 };
	const struct h1_limits small = { .header_size = 40, .header_count = 100 };
	const struct h1_limits big = { .header_size = 1u << 20, .header_count = 100 };

	CHECK(req_parse_lim(&r, s, strlen(s), &three, CAP) == 431);
	CHECK(req_parse_lim(&r, s, strlen(s), &four, CAP) == 0);
	CHECK(req_parse_lim(&r, s, strlen(s), &small, CAP) == 431);
	/* The table the caller gives is a limit too. */
	CHECK(req_parse_lim(&r, s, strlen(s), &four, 3) == 431);
	CHECK(req_parse_lim(&r, s, strlen(s), &four, 4) == 0);

	/* Beyond http-parser's own 80 KiB cap: still 431, not 400. */
	size_t vlen = 90 * 1024;
	char *huge = malloc(vlen + 64);
	if (!huge)
		return;
	int off = snprintf(huge, 64, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
	memset(huge + off, 'v', vlen);
	memcpy(huge + off + vlen, "\r\n\r\n", 4);
	CHECK(req_parse_lim(&r, huge, (size_t)off + vlen + 4, &big, CAP) == 431);
	free(huge);
}

/* ---- responses ---------------------------------------------------------- */

static void test_responses(void)
{
	struct res_run r;

	CHECK(res_parse(&r, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A:  b \r\n\r\n", false) == 0);
	CHECK(r.head.status == 200);
	CHECK(r.head.version_minor == 1);
	CHECK(r.head.content_length == 5);
	CHECK(!r.head.chunked);
	CHECK(r.head.keep_alive);
	CHECK(r.head.n_headers == 2);
	CHECK_STR(span(r.head.headers[0].name, r.head.headers[0].name_len), "Content-Length");
	CHECK_STR(span(r.head.headers[0].value, r.head.headers[0].value_len), "5");
	CHECK_STR(span(r.head.headers[1].name, r.head.headers[1].name_len), "X-A");
	CHECK_STR(span(r.head.headers[1].value, r.head.headers[1].value_len), "b");

	CHECK(res_parse(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false) == 0);
	CHECK(r.head.chunked);
	CHECK(r.head.content_length == -1);
	CHECK(r.head.keep_alive);

	/* HEAD: the length describes a body that never comes; the next
	 * response follows at once. */
	CHECK(res_parse(&r, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", true) == 0);
	CHECK(r.head.content_length == 0);
	CHECK(!r.head.chunked);
	CHECK(r.head.keep_alive);
	CHECK(res_parse(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true) == 0);
	CHECK(r.head.content_length == 0 && !r.head.chunked);

	CHECK(res_parse(&r, "HTTP/1.1 204 No Content\r\n\r\n", false) == 0);
	CHECK(r.head.status == 204 && r.head.content_length == 0 && r.head.keep_alive);
	CHECK(res_parse(&r, "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", false) == 0);
	CHECK(r.head.status == 304 && r.head.content_length == 0 && r.head.keep_alive);

	CHECK(res_parse(&r, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
			"Connection: Upgrade\r\n\r\n", false) == 0);
	CHECK(r.head.status == 101 && r.head.content_length == 0 && !r.head.chunked);
	CHECK(res_parse(&r, "HTTP/1.1 100 Continue\r\n\r\n", false) == 0);
	CHECK(r.head.status == 100 && r.head.content_length == 0 && r.head.n_headers == 0);

	CHECK(res_parse(&r, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", false) == 0);
	CHECK(r.head.version_minor == 0 && !r.head.keep_alive);
	CHECK(res_parse(&r, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n", false) == 0);
	CHECK(r.head.keep_alive);
	CHECK(res_parse(&r, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", false) == 0);
	CHECK(r.head.content_length == -1 && !r.head.keep_alive);
	CHECK(res_parse(&r, "HTTP/1.1 200 OK\r\n\r\n", false) == 0);
	CHECK(r.head.content_length == -1 && !r.head.keep_alive);
	CHECK(res_parse(&r, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", false) == 0);
	CHECK(!r.head.keep_alive);
	CHECK(res_parse(&r, "HTTP/1.1 503\r\nContent-Length: 0\r\n\r\n", false) == 0);
	CHECK(r.head.status == 503);
	CHECK(res_parse(&r, "HTTP/1.1 404 Not\tFound \xc3\xa9\r\nContent-Length: 0\r\n\r\n", false) == 0);
}

static const char *const bad_responses[] = {
	"HTTP/1.1 20 OK\r\n\r\n",
	"HTTP/1.1 2000 OK\r\n\r\n",
	"HTTP/1.1 600 X\r\n\r\n",
	"HTTP/1.1 099 X\r\n\r\n",
	"HTTP/1.1 abc OK\r\n\r\n",
	"HTTP/1.1  200 OK\r\n\r\n",
	"HTTP/2.0 200 OK\r\n\r\n",
	"HTTP/1.1 200 OK\x01\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
	"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
	"HTTP/1.1 200 OK\nContent-Length: 5\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
	"\r\nHTTP/1.1 200 OK\r\n\r\n",
	"HTTP/1.1 200 OK\r\n",
	"ICY 200 OK\r\n\r\n",
};

static void test_bad_responses(void)
{
	struct res_run r;
	size_t n = sizeof(bad_responses) / sizeof(bad_responses[0]);
	const char *many = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
	const struct h1_limits two = { .header_size = 8192, .header_count = 2 };

	for (size_t i = 0; i < n; i++) {
		res_parse(&r, bad_responses[i], false);
		if (r.rc != 502)
			fprintf(stderr, "bad response %zu: got %d\n", i, r.rc);
		CHECK(r.rc == 502);
		CHECK(r.why != NULL);
	}
	CHECK(h1_response_head_parse(many, strlen(many), &two, false, r.headers, CAP, &r.head,
				     &r.why) == 502);
}

static void test_token_eq(void)
{
	CHECK(h1_token_eq("Content-Length", 14, "content-length"));
	CHECK(h1_token_eq("chunked", 7, "CHUNKED"));
	CHECK(!h1_token_eq("chunked", 6, "chunked"));
	CHECK(!h1_token_eq("chunkex", 7, "chunked"));
	CHECK(h1_token_eq(NULL, 0, ""));
	CHECK(!h1_token_eq("a@", 2, "a`"));
}

/* rfc_tchar, rfc_field_byte: RFC 9110 5.6.2 and 5.5, written out here
 * independently of the parser's table. */
static bool rfc_tchar(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool rfc_field_byte(int c)
{
	return c == '\t' || (c >= 0x20 && c <= 0x7e) || c >= 0x80;
}

/* Every byte value in a field name and in a field value, of a request and
 * of a response: accepted exactly when the RFC allows it there. */
static void test_every_byte(void)
{
	int name_wrong = 0, value_wrong = 0;
	for (int c = 0; c < 256; c++) {
		char buf[128];
		int n = snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: a\r\nX%cY: v\r\n\r\n", c ? c : '!');
		if (c == 0)
			buf[strlen("GET / HTTP/1.1\r\nHost: a\r\nX")] = '\0';
		struct req_run r;
		bool ok = req_parse_lim(&r, buf, (size_t)n, &test_lim, CAP) == 0;
		bool want = rfc_tchar(c) || c == ':'; /* "X:Y: v" is field X */
		name_wrong += ok != want;
		if (ok != want)
			fprintf(stderr, "name byte 0x%02x: %s\n", c, ok ? "accepted" : r.why);

		n = snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nX: a%cb\r\nContent-Length: 0\r\n\r\n",
			     c ? c : '!');
		if (c == 0)
			buf[strlen("HTTP/1.1 200 OK\r\nX: a")] = '\0';
		struct res_run rs;
		rs.why = NULL;
		rs.rc = h1_response_head_parse(buf, (size_t)n, &test_lim, false, rs.headers, CAP,
					       &rs.head, &rs.why);
		value_wrong += (rs.rc == 0) != rfc_field_byte(c);
		if ((rs.rc == 0) != rfc_field_byte(c))
			fprintf(stderr, "value byte 0x%02x: %s\n", c, rs.rc ? rs.why : "accepted");
	}
	CHECK(name_wrong == 0);
	CHECK(value_wrong == 0);
}

int main(void)
{
	test_get_with_query();
	test_origin_without_query();
	test_post_content_length();
	test_post_chunked();
	test_keep_alive();
	test_expect();
	test_upgrade();
	test_absolute_form();
	test_asterisk_and_hosts();
	test_leading_crlf_and_bytes();
	test_bad_requests();
	test_limits();
	test_responses();
	test_bad_responses();
	test_token_eq();
	test_every_byte();
	return check_done();
}
