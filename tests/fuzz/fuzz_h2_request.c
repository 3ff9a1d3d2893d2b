/*
 * fuzz_h2_request.c - libFuzzer harness for the HTTP/2 header block to
 * request conversion. The input is a list of fields, each [name length]
 * [value length] [name] [value]; the first byte's low bit says whether the
 * block ended the stream. Fields pass the checks nghttp2 applies before
 * portier sees them (nghttp2_check_header_name/value; pseudo-headers by
 * name). Checks what becomes an HTTP/1.1 request line and Host is safe
 * whatever the block: visible ASCII path, token method, a normalised host,
 * and every string inside the request's own buffer.
 */
#include "proxy/http/h2_request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "config/hostname.h"

#define FUZZ_ASSERT(c) do { if (!(c)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fuzz_pseudo[] = {":method", ":path", ":authority", ":scheme",
					  ":protocol", NULL};

static bool fuzz_pseudo_ok(const uint8_t *name, size_t n)
{
	for (const char *const *p = fuzz_pseudo; *p; p++)
		if (strlen(*p) == n && !memcmp(*p, name, n))
			return true;
	return false;
}

static bool fuzz_visible(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f)
			return false;
	return true;
}

static bool fuzz_inside(const char *p, size_t n, const char *buf, size_t len)
{
	return p >= buf && n <= len && p - buf <= (ptrdiff_t)(len - n);
}

static void fuzz_check(const struct req *r, size_t buf_len, bool ws)
{
	FUZZ_ASSERT(r->method_len > 0 && fuzz_visible(r->method, r->method_len));
	FUZZ_ASSERT(r->path_len > 0 && r->path[0] == '/' && fuzz_visible(r->path, r->path_len));
	if (r->query)
		FUZZ_ASSERT(fuzz_visible(r->query, r->query_len));
	FUZZ_ASSERT(fuzz_visible(r->authority, r->authority_len));
	FUZZ_ASSERT(fuzz_inside(r->authority, r->authority_len, r->head_buf, buf_len));
	char again[256], bracketed[260];
	int bl = snprintf(bracketed, sizeof bracketed, memchr(r->host, ':', r->host_len) ? "[%.*s]" : "%.*s",
			  (int)r->host_len, r->host);
	int n = host_normalise(bracketed, (size_t)bl, again, sizeof again);
	FUZZ_ASSERT(n == (int)r->host_len && !memcmp(again, r->host, r->host_len));
	FUZZ_ASSERT(r->n_headers >= 1 && !strcmp(r->headers[0].name, "host"));
	for (size_t i = 1; i < r->n_headers; i++) {
		const struct h1_header *h = &r->headers[i];
		FUZZ_ASSERT(!(h->name_len == 4 && !memcmp(h->name, "host", 4)));
		FUZZ_ASSERT(h->name_len > 0 && h->name[0] != ':');
		FUZZ_ASSERT(!memchr(h->value, '\r', h->value_len) && !memchr(h->value, '\n', h->value_len));
	}
	FUZZ_ASSERT(r->content_length >= -1);
	FUZZ_ASSERT(!(r->chunked && r->content_length >= 0));
	FUZZ_ASSERT(r->upgrade == ws);
	if (ws)
		FUZZ_ASSERT(r->method_len == 3 && !memcmp(r->method, "GET", 3) && !r->chunked);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	bool end_stream = data[0] & 1;
	struct h2_head h = {0};
	size_t i = 1;
	while (i + 2 <= size) {
		size_t nl = data[i], vl = data[i + 1];
		i += 2;
		if (nl > size - i || vl > size - i - nl)
			break;
		const uint8_t *name = data + i, *value = data + i + nl;
		i += nl + vl;
		bool name_ok = nl && name[0] == ':' ? fuzz_pseudo_ok(name, nl)
						    : nghttp2_check_header_name(name, nl);
		if (!name_ok || !nghttp2_check_header_value(value, vl))
			continue;
		if (h2_head_add(&h, (const char *)name, nl, (const char *)value, vl) < 0)
			break;
	}
	struct req r = {0};
	bool ws = false;
	char key[H2_WS_KEY_SIZE];
	const char *why = NULL;
	size_t buf_len = h.len;
	int st = h2_request_build(&h, end_stream, &r, &ws, key, &why);
	FUZZ_ASSERT(st == 0 || st == 501 || st == -1);
	if (st < 0)
		FUZZ_ASSERT(why != NULL);
	if (st == 0) {
		FUZZ_ASSERT(r.head_buf != NULL || buf_len == 0);
		fuzz_check(&r, buf_len, ws);
	}
	free(r.head_buf);
	free(r.headers);
	h2_head_clear(&h);
	return 0;
}
