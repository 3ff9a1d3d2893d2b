/*
 * h2_request.c - an HTTP/2 request's header block becomes the
 * protocol-neutral request (RFC 9113 8.3): pseudo-headers, :authority or
 * Host (which must agree), cookies joined into one field (8.2.3), :path and
 * :authority restricted to what an HTTP/1.1 request line may carry, and
 * RFC 8441 extended CONNECT turned into a WebSocket upgrade. nghttp2 has
 * already checked names, values and pseudo-header rules.
 */
#include "proxy/http/h2_request.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "config/hostname.h"

static bool h2_grow(void **p, size_t *cap, size_t need, size_t elem, size_t min)
{
	if (need <= *cap)
		return true;
	size_t n = *cap ? *cap : min;
	while (n < need)
		n *= 2;
	void *q = realloc(*p, n * elem);
	if (!q)
		return false;
	*p = q;
	*cap = n;
	return true;
}

int h2_head_add(struct h2_head *h, const char *name, size_t namelen, const char *value,
		size_t valuelen)
{
	if (namelen > UINT32_MAX / 4 || valuelen > UINT32_MAX / 4 ||
	    h->len > UINT32_MAX / 4 ||
	    !h2_grow((void **)&h->buf, &h->cap, h->len + namelen + valuelen, 1, 512) ||
	    !h2_grow((void **)&h->fields, &h->cap_fields, h->n_fields + 1, sizeof *h->fields, 16))
		return -1;
	struct h2_field *f = &h->fields[h->n_fields++];
	f->name_off = (uint32_t)h->len;
	f->name_len = (uint32_t)namelen;
	memcpy(h->buf + h->len, name, namelen);
	h->len += namelen;
	f->value_off = (uint32_t)h->len;
	f->value_len = (uint32_t)valuelen;
	memcpy(h->buf + h->len, value, valuelen);
	h->len += valuelen;
	return 0;
}

void h2_head_reset(struct h2_head *h)
{
	h->len = 0;
	h->n_fields = 0;
	h->list_size = 0;
}

void h2_head_clear(struct h2_head *h)
{
	free(h->buf);
	free(h->fields);
	memset(h, 0, sizeof *h);
}

static bool h2_name_is(const struct h2_head *h, const struct h2_field *f, const char *name)
{
	size_t n = strlen(name);
	return f->name_len == n && memcmp(h->buf + f->name_off, name, n) == 0;
}

/* h2_visible: bytes an HTTP/1.1 request line or Host may carry as they are. */
static bool h2_visible(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f)
			return false;
	return n > 0;
}

/* h2_token: an RFC 9110 token (a method); nghttp2 checks it too, this
 * keeps the request line safe whoever parsed the block. */
static bool h2_token(const char *p, size_t n)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch && strchr(extra, ch))))
			return false;
	}
	return n > 0;
}

struct h2_pseudo {
	int method, path, authority, protocol, host, content_length, expect;
	size_t n_regular, n_cookies, cookie_bytes;
};

/* h2_join_cookies: RFC 9113 8.2.3: the cookie fields become one, "; "
 * separated, appended to buf; its offset in *off. */
static bool h2_join_cookies(struct h2_head *h, const struct h2_pseudo *ps, uint32_t *off)
{
	if (!h2_grow((void **)&h->buf, &h->cap, h->len + ps->cookie_bytes, 1, 512))
		return false;
	*off = (uint32_t)h->len;
	size_t n_fields = h->n_fields;
	bool first = true;
	for (size_t i = 0; i < n_fields; i++) {
		const struct h2_field *f = &h->fields[i];
		if (!h2_name_is(h, f, "cookie"))
			continue;
		if (!first) {
			memcpy(h->buf + h->len, "; ", 2);
			h->len += 2;
		}
		memmove(h->buf + h->len, h->buf + f->value_off, f->value_len);
		h->len += f->value_len;
		first = false;
	}
	return true;
}

static void h2_make_ws_key(char key[H2_WS_KEY_SIZE])
{
	unsigned char raw[16];
	if (RAND_bytes(raw, sizeof raw) != 1)
		memset(raw, 0x5a, sizeof raw);
	EVP_EncodeBlock((unsigned char *)key, raw, sizeof raw);
}

int h2_request_build(struct h2_head *h, bool end_stream, struct req *r, bool *ws,
		     char ws_key[H2_WS_KEY_SIZE], const char **why)
{
	struct h2_pseudo ps = {-1, -1, -1, -1, -1, -1, -1, 0, 0, 0};
	for (size_t i = 0; i < h->n_fields; i++) {
		const struct h2_field *f = &h->fields[i];
		if (h2_name_is(h, f, ":method"))
			ps.method = (int)i;
		else if (h2_name_is(h, f, ":path"))
			ps.path = (int)i;
		else if (h2_name_is(h, f, ":authority"))
			ps.authority = (int)i;
		else if (h2_name_is(h, f, ":protocol"))
			ps.protocol = (int)i;
		else if (h->buf[f->name_off] == ':')
			continue; /* :scheme, checked by nghttp2 */
		else if (h2_name_is(h, f, "host"))
			ps.host = (int)i;
		else if (h2_name_is(h, f, "cookie"))
			ps.n_cookies++, ps.cookie_bytes += f->value_len + 2;
		else
			ps.n_regular++;
		if (h2_name_is(h, f, "content-length"))
			ps.content_length = (int)i;
		else if (h2_name_is(h, f, "expect"))
			ps.expect = (int)i;
	}
	uint32_t cookie_off = 0;
	if (ps.n_cookies > 1 && !h2_join_cookies(h, &ps, &cookie_off))
		return *why = "out of memory", -1;

	/* Strings resolve now that buf no longer moves. */
	const char *b = h->buf;
#define H2_VAL(i) (b + h->fields[i].value_off)
#define H2_LEN(i) ((size_t)h->fields[i].value_len)
	if (ps.method < 0)
		return *why = "no :method", -1;
	int auth = ps.authority >= 0 ? ps.authority : ps.host;
	if (auth < 0)
		return *why = "no :authority or Host", -1;
	if (!h2_visible(H2_VAL(auth), H2_LEN(auth)))
		return *why = "bad :authority", -1;
	int n = host_normalise(H2_VAL(auth), H2_LEN(auth), r->host, sizeof r->host);
	if (n < 0)
		return *why = "bad :authority", -1;
	r->host_len = (size_t)n;
	if (ps.authority >= 0 && ps.host >= 0) {
		char other[256];
		int m = host_normalise(H2_VAL(ps.host), H2_LEN(ps.host), other, sizeof other);
		if (m != n || memcmp(other, r->host, (size_t)n) != 0)
			return *why = "Host and :authority differ", -1;
	}
	r->authority = H2_VAL(auth);
	r->authority_len = H2_LEN(auth);

	if (!h2_token(H2_VAL(ps.method), H2_LEN(ps.method)))
		return *why = "bad :method", -1;
	bool connect = H2_LEN(ps.method) == 7 && !memcmp(H2_VAL(ps.method), "CONNECT", 7);
	int status = 0;
	if (connect) {
		if (ps.protocol < 0 || H2_LEN(ps.protocol) != 9 ||
		    strncasecmp(H2_VAL(ps.protocol), "websocket", 9) != 0)
			status = 501; /* not a forward proxy; no other protocol is tunnelled */
		*ws = status == 0;
		r->method = "GET";
		r->method_len = 3;
		r->upgrade = *ws;
	} else {
		r->method = H2_VAL(ps.method);
		r->method_len = H2_LEN(ps.method);
	}
	if (ps.path >= 0) {
		const char *p = H2_VAL(ps.path);
		size_t len = H2_LEN(ps.path);
		if (!h2_visible(p, len) || p[0] != '/')
			return *why = "bad :path", -1;
		const char *q = memchr(p, '?', len);
		r->path = p;
		r->path_len = q ? (size_t)(q - p) : len;
		if (q) {
			r->query = q + 1;
			r->query_len = len - r->path_len - 1;
		}
	} else {
		r->path = "/";
		r->path_len = 1;
	}

	r->content_length = -1;
	if (ps.content_length >= 0) {
		int64_t v = 0;
		if (H2_LEN(ps.content_length) == 0)
			return *why = "bad content-length", -1;
		for (size_t i = 0; i < H2_LEN(ps.content_length); i++) {
			char ch = H2_VAL(ps.content_length)[i];
			if (ch < '0' || ch > '9' || v > (INT64_MAX - 9) / 10)
				return *why = "bad content-length", -1;
			v = v * 10 + (ch - '0');
		}
		r->content_length = v;
	}
	r->chunked = !end_stream && r->content_length < 0 && !*ws;
	r->expect_continue = ps.expect >= 0 && H2_LEN(ps.expect) == 12 &&
			     !strncasecmp(H2_VAL(ps.expect), "100-continue", 12);
	r->keep_alive = true;
	r->is_head = r->method_len == 4 && !memcmp(r->method, "HEAD", 4);

	/* The header list the backend sees: Host first (from :authority),
	 * the client's fields, one cookie, and a WebSocket's upgrade fields. */
	size_t cap = ps.n_regular + 5;
	r->headers = malloc(cap * sizeof *r->headers); /* filled below, k of them */
	if (!r->headers)
		return *why = "out of memory", -1;
	size_t k = 0;
	r->headers[k++] = (struct h1_header){"host", 4, r->authority, r->authority_len};
	for (size_t i = 0; i < h->n_fields; i++) {
		const struct h2_field *f = &h->fields[i];
		if (b[f->name_off] == ':' || h2_name_is(h, f, "host") ||
		    (ps.n_cookies > 1 && h2_name_is(h, f, "cookie")))
			continue;
		r->headers[k++] = (struct h1_header){b + f->name_off, f->name_len, b + f->value_off,
						     f->value_len};
	}
	if (ps.n_cookies > 1)
		r->headers[k++] = (struct h1_header){"cookie", 6, b + cookie_off,
						     h->len - cookie_off};
	if (*ws) {
		h2_make_ws_key(ws_key);
		r->headers[k++] = (struct h1_header){"upgrade", 7, "websocket", 9};
		r->headers[k++] = (struct h1_header){"sec-websocket-key", 17, ws_key,
						     strlen(ws_key)};
	}
	r->n_headers = k;
#undef H2_VAL
#undef H2_LEN
	/* The request owns the strings from here on. */
	r->head_buf = h->buf;
	h->buf = NULL;
	h->len = h->cap = 0;
	h->n_fields = 0;
	r->protocol = "h2";
	return status;
}
