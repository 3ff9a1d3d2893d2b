/*
 * h2_stream.c - one HTTP/2 stream: its header block becomes the
 * protocol-neutral request (RFC 9113 8.3: pseudo-headers, :authority and
 * Host, cookies joined), which goes through the dispatcher like an HTTP/1.1
 * one; its body flows to the exchange with the stream window as the only
 * buffer; the backend's response comes back as HEADERS, DATA frames taken
 * without a copy from a bounded per-stream buffer, and trailers. RFC 8441
 * extended CONNECT becomes an HTTP/1.1 WebSocket upgrade to the backend.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "config/hostname.h"
#include "proxy/core/clock.h"
#include "proxy/core/log.h"
#include "proxy/http/dispatch.h"
#include "proxy/http/h2_conn.h"
#include "proxy/http/response.h"
#include "proxy/log/access_log.h"

#define H2_RESP_HEADERS_MAX 300 /* a backend's (at most 256) plus portier's */

static struct h2_stream *h2_of(struct exchange *ex)
{
	return (struct h2_stream *)((char *)ex - offsetof(struct h2_stream, ex));
}

struct h2_stream *h2_stream_new(struct h2_conn *c, int32_t id)
{
	struct h2_stream *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->resp = evbuffer_new();
	if (!s->resp) {
		free(s);
		return NULL;
	}
	s->c = c;
	s->id = id;
	s->req.start_ms = clock_mono_ms();
	s->next = c->streams;
	if (c->streams)
		c->streams->prev = s;
	c->streams = s;
	c->n_streams++;
	return s;
}

void h2_stream_free(struct h2_stream *s)
{
	struct h2_conn *c = s->c;
	if (s->in_exchange) {
		exchange_finish(&s->ex);
		s->in_exchange = false;
	}
	if (s->has_req) {
		if (!s->req.status)
			s->req.status = 499; /* reset before any answer */
		req_account(&s->req);
		access_log_record(c->w->alog, &s->req);
	}
	req_clear(&s->req);
	nghttp2_session_set_stream_user_data(c->session, s->id, NULL);
	free(s->buf);
	free(s->fields);
	free(s->trailers);
	free(s->trailer_buf);
	evbuffer_free(s->resp);
	if (s->prev)
		s->prev->next = s->next;
	else
		c->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	c->n_streams--;
	free(s);
}

/* ---- the request head -------------------------------------------------- */

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

int h2_stream_header(struct h2_stream *s, const uint8_t *name, size_t namelen,
		     const uint8_t *value, size_t valuelen)
{
	struct h2_conn *c = s->c;
	const struct cfg_static *cfg = c->w->cfg;
	s->list_size += namelen + valuelen + 32;
	if (s->list_size > cfg->limits.header_size || s->n_fields >= cfg->limits.header_count + 6) {
		h2_conn_violation(c, NGHTTP2_ENHANCE_YOUR_CALM, "header list too large");
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	if (!h2_grow((void **)&s->buf, &s->cap, s->len + namelen + valuelen, 1, 512) ||
	    !h2_grow((void **)&s->fields, &s->cap_fields, s->n_fields + 1, sizeof *s->fields, 16))
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	struct h2_field *f = &s->fields[s->n_fields++];
	f->name_off = (uint32_t)s->len;
	f->name_len = (uint32_t)namelen;
	memcpy(s->buf + s->len, name, namelen);
	s->len += namelen;
	f->value_off = (uint32_t)s->len;
	f->value_len = (uint32_t)valuelen;
	memcpy(s->buf + s->len, value, valuelen);
	s->len += valuelen;
	return 0;
}

static bool h2_name_is(const struct h2_stream *s, const struct h2_field *f, const char *name)
{
	size_t n = strlen(name);
	return f->name_len == n && memcmp(s->buf + f->name_off, name, n) == 0;
}

/* h2_visible: bytes an HTTP/1.1 request line or Host may carry as they are. */
static bool h2_visible(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f)
			return false;
	return n > 0;
}

struct h2_pseudo {
	int method, path, authority, protocol, host, content_length, expect;
	size_t n_regular, n_cookies, cookie_bytes;
};

/* h2_join_cookies: RFC 9113 8.2.3: the cookie fields become one, "; "
 * separated, appended to buf; its offset in *off. */
static bool h2_join_cookies(struct h2_stream *s, const struct h2_pseudo *ps, uint32_t *off)
{
	if (!h2_grow((void **)&s->buf, &s->cap, s->len + ps->cookie_bytes, 1, 512))
		return false;
	*off = (uint32_t)s->len;
	size_t n_fields = s->n_fields;
	bool first = true;
	for (size_t i = 0; i < n_fields; i++) {
		const struct h2_field *f = &s->fields[i];
		if (!h2_name_is(s, f, "cookie"))
			continue;
		if (!first) {
			memcpy(s->buf + s->len, "; ", 2);
			s->len += 2;
		}
		memmove(s->buf + s->len, s->buf + f->value_off, f->value_len);
		s->len += f->value_len;
		first = false;
	}
	return true;
}

static void h2_make_ws_key(struct h2_stream *s)
{
	unsigned char raw[16];
	if (RAND_bytes(raw, sizeof raw) != 1)
		memset(raw, 0x5a, sizeof raw);
	EVP_EncodeBlock((unsigned char *)s->ws_key, raw, sizeof raw);
}

/* h2_stream_build: the request from the collected head. Returns 0, a
 * status to answer (501), or -1 when malformed (a stream error). */
static int h2_stream_build(struct h2_stream *s, bool end_stream, const char **why)
{
	struct h2_conn *c = s->c;
	struct req *r = &s->req;
	struct h2_pseudo ps = {-1, -1, -1, -1, -1, -1, -1, 0, 0, 0};
	for (size_t i = 0; i < s->n_fields; i++) {
		const struct h2_field *f = &s->fields[i];
		if (h2_name_is(s, f, ":method"))
			ps.method = (int)i;
		else if (h2_name_is(s, f, ":path"))
			ps.path = (int)i;
		else if (h2_name_is(s, f, ":authority"))
			ps.authority = (int)i;
		else if (h2_name_is(s, f, ":protocol"))
			ps.protocol = (int)i;
		else if (s->buf[f->name_off] == ':')
			continue; /* :scheme, checked by nghttp2 */
		else if (h2_name_is(s, f, "host"))
			ps.host = (int)i;
		else if (h2_name_is(s, f, "cookie"))
			ps.n_cookies++, ps.cookie_bytes += f->value_len + 2;
		else
			ps.n_regular++;
		if (h2_name_is(s, f, "content-length"))
			ps.content_length = (int)i;
		else if (h2_name_is(s, f, "expect"))
			ps.expect = (int)i;
	}
	uint32_t cookie_off = 0;
	if (ps.n_cookies > 1 && !h2_join_cookies(s, &ps, &cookie_off))
		return *why = "out of memory", -1;

	/* Strings resolve now that buf no longer moves. */
	const char *b = s->buf;
#define H2_VAL(i) (b + s->fields[i].value_off)
#define H2_LEN(i) ((size_t)s->fields[i].value_len)
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

	bool connect = H2_LEN(ps.method) == 7 && !memcmp(H2_VAL(ps.method), "CONNECT", 7);
	int status = 0;
	if (connect) {
		if (ps.protocol < 0 || H2_LEN(ps.protocol) != 9 ||
		    strncasecmp(H2_VAL(ps.protocol), "websocket", 9) != 0)
			status = 501; /* not a forward proxy; no other protocol is tunnelled */
		s->ws = status == 0;
		r->method = "GET";
		r->method_len = 3;
		r->upgrade = s->ws;
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
		for (size_t i = 0; i < H2_LEN(ps.content_length); i++) {
			char ch = H2_VAL(ps.content_length)[i];
			if (ch < '0' || ch > '9' || v > (INT64_MAX - 9) / 10)
				return *why = "bad content-length", -1;
			v = v * 10 + (ch - '0');
		}
		r->content_length = v;
	}
	r->chunked = !end_stream && r->content_length < 0 && !s->ws;
	r->expect_continue = ps.expect >= 0 && H2_LEN(ps.expect) == 12 &&
			     !strncasecmp(H2_VAL(ps.expect), "100-continue", 12);
	r->keep_alive = true;
	r->is_head = r->method_len == 4 && !memcmp(r->method, "HEAD", 4);

	/* The header list the backend sees: Host first (from :authority),
	 * the client's fields, one cookie, and a WebSocket's upgrade fields. */
	size_t cap = ps.n_regular + 5;
	r->headers = calloc(cap, sizeof *r->headers);
	if (!r->headers)
		return *why = "out of memory", -1;
	size_t k = 0;
	r->headers[k++] = (struct h1_header){"host", 4, r->authority, r->authority_len};
	for (size_t i = 0; i < s->n_fields; i++) {
		const struct h2_field *f = &s->fields[i];
		if (b[f->name_off] == ':' || h2_name_is(s, f, "host") ||
		    (ps.n_cookies > 1 && h2_name_is(s, f, "cookie")))
			continue;
		r->headers[k++] = (struct h1_header){b + f->name_off, f->name_len, b + f->value_off,
						     f->value_len};
	}
	if (ps.n_cookies > 1)
		r->headers[k++] = (struct h1_header){"cookie", 6, b + cookie_off,
						     s->len - cookie_off};
	if (s->ws) {
		h2_make_ws_key(s);
		r->headers[k++] = (struct h1_header){"upgrade", 7, "websocket", 9};
		r->headers[k++] = (struct h1_header){"sec-websocket-key", 17, s->ws_key,
						     strlen(s->ws_key)};
	}
	r->n_headers = k;
#undef H2_VAL
#undef H2_LEN
	/* The request owns the strings from here on. */
	r->head_buf = s->buf;
	s->buf = NULL;
	s->len = s->cap = 0;
	s->n_fields = 0;

	memcpy(&r->client, &c->peer, sizeof c->peer);
	memcpy(r->client_ip, c->peer_ip, sizeof r->client_ip);
	r->local_port = c->local_port;
	r->tls = c->tls;
	r->tls_version = c->tls_version;
	r->client_trusted = c->peer_trusted;
	r->protocol = "h2";
	return status;
}

/* ---- answers ----------------------------------------------------------- */

static ssize_t h2_body_read_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
			       size_t length, uint32_t *flags, nghttp2_data_source *source,
			       void *user_data)
{
	struct h2_stream *s = source->ptr;
	(void)buf;
	(void)user_data;
	size_t have = evbuffer_get_length(s->resp);
	if (have == 0 && !s->resp_eof) {
		s->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	size_t n = have < length ? have : length;
	*flags |= NGHTTP2_DATA_FLAG_NO_COPY;
	if (s->resp_eof && n == have) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		if (s->n_trailers &&
		    nghttp2_submit_trailer(session, stream_id, s->trailers, s->n_trailers) == 0)
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
	}
	return (ssize_t)n;
}

int h2_send_data_cb(nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd,
		    size_t length, nghttp2_data_source *source, void *user_data)
{
	struct h2_conn *c = user_data;
	struct h2_stream *s = source->ptr;
	(void)session;
	(void)frame;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	if (evbuffer_get_length(out) >= H2_OUT_HIGH)
		return NGHTTP2_ERR_WOULDBLOCK;
	evbuffer_add(out, framehd, 9);
	if (length > H2_COALESCE) {
		evbuffer_remove_buffer(s->resp, out, length);
	} else {
		/* Small payloads join the chain before them: one TLS record. */
		size_t left = length;
		while (left) {
			struct evbuffer_iovec v;
			if (evbuffer_peek(s->resp, (ev_ssize_t)left, NULL, &v, 1) < 1)
				break;
			size_t take = v.iov_len < left ? v.iov_len : left;
			evbuffer_add(out, v.iov_base, take);
			evbuffer_drain(s->resp, take);
			left -= take;
		}
	}
	if (s->in_exchange && !s->resp_eof && evbuffer_get_length(s->resp) < H2_RESP_LOW)
		s->want_drain = true;
	return 0;
}

/* h2_stream_resume: body bytes (or the end) are ready for DATA frames. */
static void h2_stream_resume(struct h2_stream *s)
{
	if (s->deferred) {
		s->deferred = false;
		nghttp2_session_resume_data(s->c->session, s->id);
	}
	h2_schedule(s->c);
}

/* h2_nv_lower: name lowercased into *pool (HTTP/2 field names are lowercase). */
static nghttp2_nv h2_nv(const char *name, size_t nlen, const char *value, size_t vlen)
{
	return (nghttp2_nv){(uint8_t *)(uintptr_t)name, (uint8_t *)(uintptr_t)value, nlen, vlen,
			    NGHTTP2_NV_FLAG_NONE};
}

static char *h2_lower(char **pool, const char *p, size_t n)
{
	char *out = *pool;
	for (size_t i = 0; i < n; i++)
		out[i] = (p[i] >= 'A' && p[i] <= 'Z') ? (char)(p[i] + 32) : p[i];
	*pool += n;
	return out;
}

/* h2_submit: the response head, with a body to come from s->resp or none. */
static void h2_submit(struct h2_stream *s, const nghttp2_nv *nv, size_t n, bool body)
{
	nghttp2_data_provider prd = {.source.ptr = s, .read_callback = h2_body_read_cb};
	s->resp_head_sent = true;
	if (nghttp2_submit_response(s->c->session, s->id, nv, n, body ? &prd : NULL) != 0)
		nghttp2_submit_rst_stream(s->c->session, NGHTTP2_FLAG_NONE, s->id,
					  NGHTTP2_INTERNAL_ERROR);
	h2_schedule(s->c);
}

/* h2_answer: a complete response portier makes itself. */
static void h2_answer(struct h2_stream *s, int status, const char *ctype, const char *body,
		      size_t body_len, const char *extra)
{
	struct req *r = &s->req;
	nghttp2_nv nv[16];
	size_t n = 0;
	char st[4], len[24], pool[2304];
	char *pp = pool;
	snprintf(st, sizeof st, "%d", status);
	snprintf(len, sizeof len, "%zu", body_len);
	nv[n++] = h2_nv(":status", 7, st, strlen(st));
	nv[n++] = h2_nv("content-type", 12, ctype, strlen(ctype));
	nv[n++] = h2_nv("content-length", 14, len, strlen(len));
	if (r->id[0])
		nv[n++] = h2_nv("x-request-id", 12, r->id, strlen(r->id));
	size_t pos = 0;
	const char *hn, *hv;
	size_t hnl, hvl;
	while (extra && n < sizeof nv / sizeof nv[0] &&
	       dispatch_header_next(extra, &pos, &hn, &hnl, &hv, &hvl))
		nv[n++] = h2_nv(h2_lower(&pp, hn, hnl), hnl, hv, hvl);
	r->status = status;
	bool send_body = body_len > 0 && !r->is_head;
	if (send_body) {
		evbuffer_add(s->resp, body, body_len);
		r->bytes_out += body_len;
	}
	s->resp_eof = true;
	h2_submit(s, nv, n, send_body);
}

static void h2_answer_dispatch(struct h2_stream *s, const struct dispatch *d)
{
	h2_answer(s, d->status, d->content_type, d->body, d->body_len,
		  d->extra[0] ? d->extra : NULL);
}

static void h2_answer_error(struct h2_stream *s, int status)
{
	struct dispatch d;
	dispatch_error(&d, &s->req, status);
	h2_answer_dispatch(s, &d);
}

/* h2_stream_malformed: a stream error; they count against the reset budget. */
static void h2_stream_malformed(struct h2_stream *s, const char *why)
{
	struct h2_conn *c = s->c;
	log_debug("client %s: h2 stream %d: malformed: %s", c->peer_ip, s->id, why);
	nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_PROTOCOL_ERROR);
	if (!h2_budget_take(&c->resets, H2_RESET_BURST, H2_RESET_PER_S))
		h2_conn_violation(c, NGHTTP2_ENHANCE_YOUR_CALM, "too many malformed streams");
}

/* ---- dispatch and the request body ------------------------------------- */

static void h2_stream_dispatch(struct h2_stream *s, bool end_stream)
{
	struct h2_conn *c = s->c;
	struct worker *w = c->w;
	struct req *r = &s->req;
	const char *why = "malformed";
	int status = h2_stream_build(s, end_stream, &why);
	if (status < 0) {
		req_clear(r);
		h2_stream_malformed(s, why);
		return;
	}
	s->has_req = true;
	s->req_ended = end_stream;
	req_make_id(r);
	memcpy(c->last_host, r->host, r->host_len);
	c->last_host_len = r->host_len;
	if (status) {
		h2_answer_error(s, status);
		return;
	}
	struct dispatch d;
	if (dispatch_route(w, r, c->tls ? c->sni : NULL, &d) == DISPATCH_ANSWER ||
	    dispatch_admit(w, r, &d) == DISPATCH_ANSWER) {
		h2_answer_dispatch(s, &d);
		return;
	}
	s->max_body = d.max_body;
	s->in_exchange = true;
	exchange_start(&s->ex, w, r, &h2_ops);
	if (end_stream && s->ex.state != EX_DONE)
		exchange_request_end(&s->ex);
}

/* h2_trailer_fields: the collected trailer block as a header list. */
static void h2_stream_trailers(struct h2_stream *s)
{
	struct h1_header hs[64];
	size_t n = 0;
	for (size_t i = 0; i < s->n_fields && n < 64; i++) {
		const struct h2_field *f = &s->fields[i];
		if (s->buf[f->name_off] == ':')
			continue;
		hs[n++] = (struct h1_header){s->buf + f->name_off, f->name_len,
					     s->buf + f->value_off, f->value_len};
	}
	s->req_ended = true;
	if (s->in_exchange && s->ex.state != EX_DONE && !s->tunnel)
		exchange_request_end_trailers(&s->ex, hs, n);
	s->len = 0;
	s->n_fields = 0;
}

void h2_stream_headers_done(struct h2_stream *s, bool end_stream)
{
	if (s->trailers_phase) {
		h2_stream_trailers(s);
		return;
	}
	if (s->has_req)
		return; /* informational HEADERS are not requests */
	h2_stream_dispatch(s, end_stream);
}

void h2_stream_data(struct h2_stream *s, const uint8_t *data, size_t len)
{
	nghttp2_session *session = s->c->session;
	if (!s->in_exchange || s->ex.state == EX_DONE) {
		nghttp2_session_consume_stream(session, s->id, len); /* answered: dropped */
		return;
	}
	s->body_seen += len;
	s->req.bytes_in += len;
	if (s->max_body && s->body_seen > s->max_body && !s->tunnel) {
		exchange_finish(&s->ex);
		nghttp2_session_consume_stream(session, s->id, len);
		if (s->resp_head_sent)
			nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, s->id,
						  NGHTTP2_CANCEL);
		else
			h2_answer_error(s, 413);
		return;
	}
	exchange_request_copy(&s->ex, (const char *)data, len);
	if (exchange_request_backlog(&s->ex) <= H2_BODY_HIGH)
		nghttp2_session_consume_stream(session, s->id, len);
	else
		s->unconsumed += len; /* given back when the backend drains */
}

void h2_stream_end(struct h2_stream *s)
{
	s->req_ended = true;
	if (s->in_exchange && s->ex.state != EX_DONE && !s->tunnel)
		exchange_request_end(&s->ex);
}

/* ---- the exchange's callbacks: the response side ----------------------- */

static void h2_resp_head(struct exchange *ex, unsigned status, const struct h1_header *hs,
			 size_t n, int64_t content_length, bool bodiless)
{
	struct h2_stream *s = h2_of(ex);
	struct req *r = &s->req;
	bool upgraded = status == 101;
	unsigned st = upgraded ? 200 : status; /* RFC 8441 5: the tunnel opens with a 2xx */
	size_t pool_len = 64;
	for (size_t i = 0; i < n; i++)
		pool_len += hs[i].name_len;
	char *pool = malloc(pool_len), *pp = pool;
	nghttp2_nv *nv = calloc(n + 5, sizeof *nv);
	if (!pool || !nv) {
		free(pool);
		free(nv);
		nghttp2_submit_rst_stream(s->c->session, NGHTTP2_FLAG_NONE, s->id,
					  NGHTTP2_INTERNAL_ERROR);
		h2_schedule(s->c);
		return;
	}
	char stbuf[4], clbuf[24];
	snprintf(stbuf, sizeof stbuf, "%u", st);
	size_t k = 0;
	nv[k++] = h2_nv(":status", 7, stbuf, strlen(stbuf));
	bool has_id = false;
	for (size_t i = 0; i < n; i++) {
		if (h1_token_eq(hs[i].name, hs[i].name_len, "x-request-id"))
			has_id = true;
		if (upgraded && (h1_token_eq(hs[i].name, hs[i].name_len, "upgrade") ||
				 h1_token_eq(hs[i].name, hs[i].name_len, "sec-websocket-accept")))
			continue;
		nv[k++] = h2_nv(h2_lower(&pp, hs[i].name, hs[i].name_len), hs[i].name_len,
				hs[i].value, hs[i].value_len);
	}
	if (!has_id)
		nv[k++] = h2_nv("x-request-id", 12, r->id, strlen(r->id));
	if (r->tls && r->route.tenant->hsts)
		nv[k++] = h2_nv("strict-transport-security", 25, "max-age=31536000", 16);
	if (!bodiless && content_length >= 0) {
		snprintf(clbuf, sizeof clbuf, "%lld", (long long)content_length);
		nv[k++] = h2_nv("content-length", 14, clbuf, strlen(clbuf));
	}
	r->status = (int)st;
	h2_submit(s, nv, k, upgraded || !bodiless);
	free(pool);
	free(nv);
}

static void h2_resp_data(struct exchange *ex, struct evbuffer *src, size_t n)
{
	struct h2_stream *s = h2_of(ex);
	evbuffer_remove_buffer(src, s->resp, n);
	s->req.bytes_out += n;
	h2_stream_resume(s);
}

static void h2_resp_copy(struct exchange *ex, const char *p, size_t n)
{
	struct h2_stream *s = h2_of(ex);
	if (n == 0)
		return;
	evbuffer_add(s->resp, p, n);
	s->req.bytes_out += n;
	h2_stream_resume(s);
}

static void h2_resp_trailers(struct exchange *ex, const struct h1_header *hs, size_t n)
{
	struct h2_stream *s = h2_of(ex);
	size_t bytes = 0;
	for (size_t i = 0; i < n; i++)
		bytes += hs[i].name_len + hs[i].value_len;
	free(s->trailers);
	free(s->trailer_buf);
	s->n_trailers = 0;
	s->trailers = calloc(n, sizeof *s->trailers);
	s->trailer_buf = malloc(bytes ? bytes : 1);
	if (!s->trailers || !s->trailer_buf)
		return;
	char *pp = s->trailer_buf;
	for (size_t i = 0; i < n; i++) {
		char *name = h2_lower(&pp, hs[i].name, hs[i].name_len);
		char *value = pp;
		memcpy(pp, hs[i].value, hs[i].value_len);
		pp += hs[i].value_len;
		s->trailers[s->n_trailers++] = h2_nv(name, hs[i].name_len, value, hs[i].value_len);
	}
}

static void h2_resp_end(struct exchange *ex)
{
	struct h2_stream *s = h2_of(ex);
	s->resp_eof = true;
	h2_stream_resume(s);
}

static void h2_upgraded(struct exchange *ex)
{
	h2_of(ex)->tunnel = true;
}

static void h2_send_continue(struct exchange *ex)
{
	struct h2_stream *s = h2_of(ex);
	if (s->resp_head_sent || s->req_ended || s->body_seen)
		return;
	nghttp2_nv nv = h2_nv(":status", 7, "100", 3);
	nghttp2_submit_headers(s->c->session, NGHTTP2_FLAG_NONE, s->id, NULL, &nv, 1, NULL);
	h2_schedule(s->c);
}

static void h2_failed(struct exchange *ex, int status, const char *why)
{
	struct h2_stream *s = h2_of(ex);
	(void)why;
	if (s->resp_head_sent) {
		/* Mid-response: the client must see a broken stream, not a short one. */
		nghttp2_submit_rst_stream(s->c->session, NGHTTP2_FLAG_NONE, s->id,
					  NGHTTP2_INTERNAL_ERROR);
		h2_schedule(s->c);
		return;
	}
	h2_answer_error(s, status);
}

static size_t h2_resp_backlog(struct exchange *ex)
{
	return evbuffer_get_length(h2_of(ex)->resp);
}

static void h2_request_resume(struct exchange *ex)
{
	struct h2_stream *s = h2_of(ex);
	if (!s->unconsumed)
		return;
	nghttp2_session_consume_stream(s->c->session, s->id, s->unconsumed);
	s->unconsumed = 0;
	h2_schedule(s->c);
}

const struct front_ops h2_ops = {
	.response_head = h2_resp_head,
	.response_data = h2_resp_data,
	.response_copy = h2_resp_copy,
	.response_end = h2_resp_end,
	.upgraded = h2_upgraded,
	.send_continue = h2_send_continue,
	.failed = h2_failed,
	.response_backlog = h2_resp_backlog,
	.request_resume = h2_request_resume,
	.response_trailers = h2_resp_trailers,
	.response_high_water = H2_RESP_HIGH,
};
