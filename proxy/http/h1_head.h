/*
 * h1_head.h - strict parsing of HTTP/1.x message heads (request from a
 * client, response from a backend). A strict pre-scan rejects what
 * http-parser tolerates but smuggling relies on (bare LF, obs-fold,
 * whitespace before a colon, control bytes); a request is then parsed
 * again by libhttp-parser and both views compared; the framing rules of
 * RFC 9112 are checked on both.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <http_parser.h>

struct h1_header {
	const char *name;
	size_t name_len;
	const char *value; /* optional whitespace trimmed on both sides */
	size_t value_len;
};

struct h1_limits {
	size_t header_size;   /* bytes of the whole head; beyond: 431 */
	unsigned header_count; /* beyond: 431 */
};

struct h1_request_head {
	enum http_method method;
	const char *method_str;
	size_t method_len;
	const char *target;   /* the request-target as sent */
	size_t target_len;
	const char *path;     /* absolute path (origin-form, or the path of absolute-form), "/" at least */
	size_t path_len;
	const char *query;    /* after '?', without it; NULL when none */
	size_t query_len;
	unsigned version_minor; /* HTTP/1.0 or HTTP/1.1 */
	const char *host;     /* Host value (or the authority of an absolute-form target); NULL if absent (1.0 only) */
	size_t host_len;
	struct h1_header *headers; /* every header, in order, pointing into the buffer */
	size_t n_headers;
	int64_t content_length;    /* -1 when none */
	bool chunked;              /* Transfer-Encoding: chunked */
	bool keep_alive;           /* per version and Connection */
	bool expect_continue;      /* Expect: 100-continue */
	bool upgrade;              /* Upgrade + Connection: upgrade */
};

struct h1_response_head {
	unsigned status;
	unsigned version_minor;
	struct h1_header *headers;
	size_t n_headers;
	int64_t content_length;    /* -1 when none */
	bool chunked;
	bool keep_alive;
};

/* h1_request_head_parse: parse the request head in buf[0..len), which ends
 * with the blank line (CRLF CRLF); leading empty lines (CRLF) are skipped.
 * headers[] (capacity cap) receives the headers. `parser` is initialised
 * here (HTTP_REQUEST) and left just past the head, so the caller can keep
 * feeding it body bytes. Returns 0, or the status to answer (400, 431, 501,
 * 505) with *why a static reason. Nothing is allocated. */
int h1_request_head_parse(const char *buf, size_t len, const struct h1_limits *lim,
			  http_parser *parser, struct h1_header *headers, size_t cap,
			  struct h1_request_head *out, const char **why);

/* h1_response_head_parse: the same for a backend's response head, by the
 * pre-scan alone (see h1_head.c); `is_head_request` makes the response
 * bodiless. Returns 0, or 502 with *why. */
int h1_response_head_parse(const char *buf, size_t len, const struct h1_limits *lim,
			   bool is_head_request, struct h1_header *headers, size_t cap,
			   struct h1_response_head *out, const char **why);

/* h1_ieq: the n bytes at a and b are equal but for ASCII case. */
bool h1_ieq(const char *a, const char *b, size_t n);

/* h1_token_eq: case-insensitive comparison of a header name or token with
 * the string b. Inline so that the length test comes first and, b being a
 * literal at most call sites, its strlen folds to a constant. */
static inline bool h1_token_eq(const char *a, size_t alen, const char *b)
{
	return alen == strlen(b) && h1_ieq(a, b, alen);
}
