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

#include "proxy/core/clock.h"
#include "proxy/core/log.h"
#include "proxy/http/dispatch.h"
#include "proxy/http/h2_conn.h"
#include "proxy/http/h2_front.h"
#include "proxy/http/h2_request.h"
#include "proxy/http/head_out.h"
#include "proxy/http/response.h"
#include "proxy/log/access_log.h"
#include "proxy/net/direct_write.h"

static struct h2_stream *h2_of(struct exchange *ex)
{
	return (struct h2_stream *)((char *)ex - offsetof(struct h2_stream, ex));
}

/* Freed streams are kept per worker for the next ones, with their response
 * buffer and header table: each was an allocation per request (the stream
 * alone a 2 KiB calloc). Bounded in count, and a stream whose table grew
 * past the usual is freed instead. */
#define H2_SPARE_MAX 64
#define H2_SPARE_HEAD_BYTES 4096
#define H2_SPARE_FIELDS 64

static struct h2_stream *h2_spare_take(struct worker *w)
{
	struct h2_stream *s = w->h2_spare;
	if (!s)
		return NULL;
	w->h2_spare = s->next;
	w->n_h2_spare--;
	struct evbuffer *resp = s->resp;
	struct h2_head head = s->head;
	memset(s, 0, sizeof *s);
	s->resp = resp;
	s->head = head;
	return s;
}

static bool h2_spare_keep(struct worker *w, struct h2_stream *s)
{
	if (w->n_h2_spare >= H2_SPARE_MAX || s->head.cap > H2_SPARE_HEAD_BYTES ||
	    s->head.cap_fields > H2_SPARE_FIELDS)
		return false;
	evbuffer_drain(s->resp, evbuffer_get_length(s->resp));
	h2_head_reset(&s->head);
	s->next = w->h2_spare;
	w->h2_spare = s;
	w->n_h2_spare++;
	return true;
}

void h2_spares_free(struct worker *w)
{
	while (w->h2_spare) {
		struct h2_stream *s = w->h2_spare;
		w->h2_spare = s->next;
		h2_head_clear(&s->head);
		evbuffer_free(s->resp);
		free(s);
	}
	w->n_h2_spare = 0;
}

struct h2_stream *h2_stream_new(struct h2_conn *c, int32_t id)
{
	struct h2_stream *s = h2_spare_take(c->w);
	if (!s) {
		s = calloc(1, sizeof *s);
		if (!s)
			return NULL;
		s->resp = evbuffer_new();
		if (!s->resp) {
			free(s);
			return NULL;
		}
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
	free(s->trailers);
	free(s->trailer_buf);
	if (s->prev)
		s->prev->next = s->next;
	else
		c->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	c->n_streams--;
	if (h2_spare_keep(c->w, s))
		return;
	h2_head_clear(&s->head);
	evbuffer_free(s->resp);
	free(s);
}

/* ---- the request head -------------------------------------------------- */

int h2_stream_header(struct h2_stream *s, const uint8_t *name, size_t namelen,
		     const uint8_t *value, size_t valuelen)
{
	struct h2_conn *c = s->c;
	const struct cfg_static *cfg = c->w->cfg;
	struct h2_head *h = &s->head;
	h->list_size += namelen + valuelen + 32;
	if (h->list_size > cfg->limits.header_size || h->n_fields >= cfg->limits.header_count + 6) {
		h2_conn_violation(c, NGHTTP2_ENHANCE_YOUR_CALM, "header list too large");
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	if (h2_head_add(h, (const char *)name, namelen, (const char *)value, valuelen) < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	return 0;
}

/* h2_stream_build: the request from the collected head, with what the
 * connection knows. Returns 0, a status to answer, or -1 (malformed). */
static int h2_stream_build(struct h2_stream *s, bool end_stream, const char **why)
{
	struct h2_conn *c = s->c;
	struct req *r = &s->req;
	int status = h2_request_build(&s->head, end_stream, r, &s->ws, s->ws_key, why);
	if (status < 0)
		return status;
	req_set_peer(r, &c->peer);
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
	struct evbuffer *out = c->stage;
	if (h2_queued(c) >= H2_OUT_HIGH)
		return NGHTTP2_ERR_WOULDBLOCK;
	evbuffer_add(out, framehd, 9);
	direct_write_move(out, s->resp, length);
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

static nghttp2_nv h2_nv(const char *name, size_t nlen, const char *value, size_t vlen)
{
	return (nghttp2_nv){(uint8_t *)(uintptr_t)name, (uint8_t *)(uintptr_t)value, nlen, vlen,
			    NGHTTP2_NV_FLAG_NONE};
}

/* h2_nv_unique: a field whose value differs in every response (a request id, a
 * cookie) is sent without indexing: in the HPACK table it would only evict useful
 * entries, and nghttp2's encoder walks one hash chain per field name, which such
 * entries make as long as the table is (5% of the CPU under h2load before). */
static nghttp2_nv h2_nv_unique(const char *name, size_t nlen, const char *value, size_t vlen)
{
	nghttp2_nv nv = h2_nv(name, nlen, value, vlen);
	nv.flags = NGHTTP2_NV_FLAG_NO_INDEX;
	return nv;
}

static bool h2_value_unique(const char *name, size_t nlen)
{
	return h1_token_eq(name, nlen, "x-request-id") || h1_token_eq(name, nlen, "set-cookie");
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
		nv[n++] = h2_nv_unique("x-request-id", 12, r->id, strlen(r->id));
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
	log_debug("client %s: h2 stream %d: malformed: %s", c->peer.ip, s->id, why);
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
	if (dispatch_route(w, r, c->peer.tls ? c->peer.sni : NULL, &d) == DISPATCH_ANSWER ||
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
	const struct h2_head *h = &s->head;
	for (size_t i = 0; i < h->n_fields && n < 64; i++) {
		const struct h2_field *f = &h->fields[i];
		if (h->buf[f->name_off] == ':')
			continue;
		hs[n++] = (struct h1_header){h->buf + f->name_off, f->name_len,
					     h->buf + f->value_off, f->value_len};
	}
	s->req_ended = true;
	if (s->in_exchange && s->ex.state != EX_DONE && !s->tunnel)
		exchange_request_end_trailers(&s->ex, hs, n);
	h2_head_reset(&s->head);
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
	/* Most heads fit the stack arrays; a larger one takes the heap. */
	char pool_stack[1024];
	nghttp2_nv nv_stack[32];
	size_t pool_len = 64;
	for (size_t i = 0; i < n; i++)
		pool_len += hs[i].name_len;
	char *pool = pool_len <= sizeof pool_stack ? pool_stack : malloc(pool_len), *pp = pool;
	nghttp2_nv *nv = n + 5 <= sizeof nv_stack / sizeof nv_stack[0]
				 ? nv_stack
				 : calloc(n + 5, sizeof *nv);
	if (!pool || !nv) {
		if (pool != pool_stack)
			free(pool);
		if (nv != nv_stack)
			free(nv);
		nghttp2_submit_rst_stream(s->c->session, NGHTTP2_FLAG_NONE, s->id,
					  NGHTTP2_INTERNAL_ERROR);
		h2_schedule(s->c);
		return;
	}
	char stbuf[HEAD_UINT_MAX], clbuf[HEAD_UINT_MAX];
	size_t k = 0;
	nv[k++] = h2_nv(":status", 7, stbuf, head_uint_text(stbuf, st, 10));
	bool has_id = false;
	for (size_t i = 0; i < n; i++) {
		if (h1_token_eq(hs[i].name, hs[i].name_len, "x-request-id"))
			has_id = true;
		if (upgraded && (h1_token_eq(hs[i].name, hs[i].name_len, "upgrade") ||
				 h1_token_eq(hs[i].name, hs[i].name_len, "sec-websocket-accept")))
			continue;
		nv[k] = h2_nv(h2_lower(&pp, hs[i].name, hs[i].name_len), hs[i].name_len,
			      hs[i].value, hs[i].value_len);
		if (h2_value_unique(hs[i].name, hs[i].name_len))
			nv[k].flags = NGHTTP2_NV_FLAG_NO_INDEX;
		k++;
	}
	if (!has_id)
		nv[k++] = h2_nv_unique("x-request-id", 12, r->id, strlen(r->id));
	if (r->tls && r->route.tenant->hsts)
		nv[k++] = h2_nv("strict-transport-security", 25, "max-age=31536000", 16);
	if (!bodiless && content_length >= 0) {
		nv[k++] = h2_nv("content-length", 14, clbuf,
				head_uint_text(clbuf, (uint64_t)content_length, 10));
	}
	r->status = (int)st;
	h2_submit(s, nv, k, upgraded || !bodiless);
	if (pool != pool_stack)
		free(pool);
	if (nv != nv_stack)
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
