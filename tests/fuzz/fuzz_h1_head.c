/*
 * fuzz_h1_head.c - libFuzzer harness for the HTTP/1.x head parsers. The
 * input is parsed whole and, split at its first blank line, as a head
 * followed by body bytes fed to the parser left behind, both as a request
 * and as a response, under normal and tiny limits. Checks that results
 * only point into the input, tables are never overrun, and statuses stay
 * in the documented sets. A response head, which portier reads with its
 * own scanner alone, must read the same (status, field count, framing)
 * under http-parser whenever that parses it too: the second opinion, kept
 * here instead of at run time.
 */
#include "proxy/http/h1_head.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FUZZ_CAP 64

#define FUZZ_ASSERT(c) do { if (!(c)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct h1_limits fuzz_normal = { .header_size = 16384, .header_count = 100 };
static const struct h1_limits fuzz_tiny = { .header_size = 96, .header_count = 3 };

/* Where body callbacks may point: the bytes fed after the head. */
struct fuzz_body {
	const char *start;
	size_t len;
};

static bool fuzz_inside(const char *p, size_t n, const char *buf, size_t len)
{
	return p >= buf && n <= len && p - buf <= (ptrdiff_t)(len - n);
}

static void fuzz_check_headers(const struct h1_header *h, size_t n, size_t cap,
			       const char *buf, size_t len)
{
	FUZZ_ASSERT(n <= cap);
	for (size_t i = 0; i < n; i++) {
		FUZZ_ASSERT(h[i].name_len > 0);
		FUZZ_ASSERT(fuzz_inside(h[i].name, h[i].name_len, buf, len));
		FUZZ_ASSERT(fuzz_inside(h[i].value, h[i].value_len, buf, len));
		FUZZ_ASSERT(!memchr(h[i].value, '\r', h[i].value_len));
		FUZZ_ASSERT(!memchr(h[i].value, '\n', h[i].value_len));
		FUZZ_ASSERT(!memchr(h[i].name, ':', h[i].name_len));
		if (h[i].value_len)
			FUZZ_ASSERT(h[i].value[0] != ' ' && h[i].value[h[i].value_len - 1] != ' ');
	}
}

static int fuzz_on_body(http_parser *p, const char *at, size_t n)
{
	const struct fuzz_body *b = p->data;
	FUZZ_ASSERT(fuzz_inside(at, n, b->start, b->len));
	return 0;
}

/* fuzz_feed_body: what the front end does after a good head; no bytes
 * means end of stream, where http-parser reports 1 on a truncated body. */
static void fuzz_feed_body(http_parser *p, const char *body, size_t len)
{
	http_parser_settings st;
	struct fuzz_body b = { body, len };
	size_t done;

	http_parser_settings_init(&st);
	st.on_body = fuzz_on_body;
	p->data = &b;
	done = http_parser_execute(p, &st, body, len);
	FUZZ_ASSERT(len == 0 || done <= len);
	p->data = NULL;
}

static void fuzz_request(const char *buf, size_t len, const struct h1_limits *lim, size_t cap,
			 const char *body, size_t body_len)
{
	struct h1_header headers[FUZZ_CAP];
	struct h1_request_head out;
	http_parser parser = { .data = NULL };
	const char *why = NULL;
	int rc = h1_request_head_parse(buf, len, lim, &parser, headers, cap, &out, &why);

	if (rc) {
		FUZZ_ASSERT(rc == 400 || rc == 417 || rc == 431 || rc == 501 || rc == 505);
		FUZZ_ASSERT(why != NULL);
		return;
	}
	FUZZ_ASSERT(len <= lim->header_size);
	FUZZ_ASSERT(out.headers == headers && out.n_headers <= lim->header_count);
	fuzz_check_headers(headers, out.n_headers, cap, buf, len);
	FUZZ_ASSERT(fuzz_inside(out.method_str, out.method_len, buf, len) && out.method_len > 0);
	FUZZ_ASSERT(fuzz_inside(out.target, out.target_len, buf, len) && out.target_len > 0);
	FUZZ_ASSERT(fuzz_inside(out.path, out.path_len, buf, len)
		    || (out.path_len == 1 && out.path[0] == '/'));
	FUZZ_ASSERT(out.path[0] == '/' || (out.path_len == 1 && out.path[0] == '*'));
	FUZZ_ASSERT(!out.query || fuzz_inside(out.query, out.query_len, buf, len));
	FUZZ_ASSERT(out.host ? fuzz_inside(out.host, out.host_len, buf, len) && out.host_len > 0
			     : out.version_minor == 0);
	FUZZ_ASSERT(out.version_minor <= 1);
	FUZZ_ASSERT(out.content_length >= -1);
	FUZZ_ASSERT(!(out.chunked && out.content_length >= 0));
	FUZZ_ASSERT(!memchr(out.target, '#', out.target_len));
	fuzz_feed_body(&parser, body, body_len);
}

static int fuzz_count_field(http_parser *p, const char *at, size_t n)
{
	(void)at;
	(void)n;
	(*(size_t *)p->data)++; /* the scanner refuses split names, so one call a field */
	return 0;
}

/* fuzz_framing_quirk: a field named like "Transfer-Encodingx" makes
 * http-parser 2.9 drop a chunked it had read from a real Transfer-Encoding,
 * or refuse a Content-Length beside it (both found by this harness); the
 * RFC makes it an unrelated field, as portier reads it. Such heads are not
 * compared. */
static bool fuzz_framing_quirk(const struct h1_response_head *out)
{
	static const char *const names[] = {"transfer-encoding", "content-length"};
	for (size_t i = 0; i < out->n_headers; i++)
		for (size_t k = 0; k < 2; k++) {
			size_t n = strlen(names[k]);
			if (out->headers[i].name_len > n && strncasecmp(out->headers[i].name, names[k], n) == 0)
				return true;
		}
	return false;
}

/* fuzz_reference_agrees: where http-parser reads the head accepted by
 * portier's scanner, it reads the same response. */
static void fuzz_reference_agrees(const char *buf, size_t len, const struct h1_response_head *out,
				  bool bodiless)
{
	if (fuzz_framing_quirk(out))
		return;
	http_parser p;
	http_parser_settings st;
	size_t fields = 0;
	http_parser_init(&p, HTTP_RESPONSE);
	http_parser_settings_init(&st);
	st.on_header_field = fuzz_count_field;
	p.data = &fields;
	size_t done = http_parser_execute(&p, &st, buf, len);
	/* http-parser refuses some heads the RFC allows (a Content-Length
	 * followed by HTAB): a refusal is its own strictness, not a second
	 * reading to compare. */
	if (HTTP_PARSER_ERRNO(&p) != HPE_OK || done != len)
		return;
	FUZZ_ASSERT(p.status_code == out->status && p.http_major == 1 &&
		    p.http_minor == out->version_minor && fields == out->n_headers);
	if (bodiless)
		return;
	FUZZ_ASSERT(((p.flags & F_CHUNKED) != 0) == out->chunked);
	if (out->content_length >= 0)
		FUZZ_ASSERT(p.content_length == (uint64_t)out->content_length);
}

/* fuzz_response: a backend's head. Its body is framed by portier's own
 * decoder (fuzz_chunked), not by a parser left after the head. */
static void fuzz_response(const char *buf, size_t len, const struct h1_limits *lim, size_t cap,
			  bool head)
{
	struct h1_header headers[FUZZ_CAP];
	struct h1_response_head out;
	const char *why = NULL;
	int rc = h1_response_head_parse(buf, len, lim, head, headers, cap, &out, &why);

	if (rc) {
		FUZZ_ASSERT(rc == 502 && why != NULL);
		return;
	}
	FUZZ_ASSERT(out.headers == headers && out.n_headers <= lim->header_count);
	fuzz_check_headers(headers, out.n_headers, cap, buf, len);
	FUZZ_ASSERT(out.status >= 100 && out.status <= 599 && out.version_minor <= 1);
	FUZZ_ASSERT(out.content_length >= -1 && !(out.chunked && out.content_length >= 0));
	bool bodiless = head || out.status < 200 || out.status == 204 || out.status == 304;
	if (bodiless)
		FUZZ_ASSERT(out.content_length == 0 && !out.chunked);
	if (out.content_length < 0 && !out.chunked)
		FUZZ_ASSERT(!out.keep_alive);
	fuzz_reference_agrees(buf, len, &out, bodiless);
}

/* fuzz_head_len: length through the first CRLF CRLF, or 0. */
static size_t fuzz_head_len(const char *s, size_t n)
{
	for (size_t i = 0; i + 4 <= n; i++)
		if (memcmp(s + i, "\r\n\r\n", 4) == 0)
			return i + 4;
	return 0;
}

static void fuzz_both(const char *buf, size_t len, const char *body, size_t body_len, bool head)
{
	fuzz_request(buf, len, &fuzz_normal, FUZZ_CAP, body, body_len);
	fuzz_request(buf, len, &fuzz_tiny, 2, body, body_len);
	fuzz_response(buf, len, &fuzz_normal, FUZZ_CAP, head);
	fuzz_response(buf, len, &fuzz_tiny, 2, !head);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Exact-size copies, so reading one byte too far is caught. */
	char *all = malloc(size ? size : 1);
	bool head = size > 0 && (data[0] & 1);
	size_t hlen;

	if (!all)
		return 0;
	memcpy(all, data, size);
	fuzz_both(all, size, all, 0, head);

	hlen = fuzz_head_len(all, size);
	if (hlen && hlen < size) {
		char *h = malloc(hlen);
		char *b = malloc(size - hlen);
		if (h && b) {
			memcpy(h, all, hlen);
			memcpy(b, all + hlen, size - hlen);
			fuzz_both(h, hlen, b, size - hlen, head);
		}
		free(h);
		free(b);
	}
	free(all);
	return 0;
}
