/*
 * h1_front.c - the HTTP/1.1 front's connection half: accepting, reading
 * request heads and bodies, and dispatching each request (an ACME http-01
 * answer, a redirect, a respond service or an exchange with a backend);
 * h1_response.c writes the answers.
 */
#include "proxy/http/h1_front.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "acme/challenges.h"
#include "config/hostname.h"
#include "proxy/core/clock.h"
#include "proxy/core/log.h"
#include "proxy/edge.h"
#include "proxy/http/chunked.h"
#include "proxy/http/exchange.h"
#include "proxy/http/dispatch.h"
#include "proxy/http/h1_conn.h"
#include "proxy/http/h2_front.h"
#include "proxy/log/access_log.h"
#include "proxy/net/conn_io.h"
#include "proxy/net/peer.h"

static void h1_start_next(struct h1_conn *c);

struct h1_conn *h1_of(struct exchange *ex)
{
	return ((struct h1_txn *)((char *)ex - offsetof(struct h1_txn, ex)))->c;
}

/* Ended transactions are kept per worker for the next requests: each was a
 * calloc of several KiB and its free, beyond the sizes malloc keeps at
 * hand per thread. At most 64, and idle connections still hold none. */
#define H1_SPARE_MAX 64

struct h1_txn *h1_txn_begin(struct h1_conn *c)
{
	if (c->txn)
		return c->txn;
	struct worker *w = c->w;
	struct h1_txn *t = w->h1_spare;
	if (t) {
		w->h1_spare = t->next_spare;
		w->n_h1_spare--;
		memset(t, 0, offsetof(struct h1_txn, fields));
	} else if (!(t = calloc(1, sizeof *t))) {
		return NULL;
	}
	t->c = c;
	c->txn = t;
	return t;
}

void h1_txn_end(struct h1_conn *c)
{
	if (!c->txn || c->in_request || c->in_exchange)
		return;
	struct worker *w = c->w;
	if (w->n_h1_spare < H1_SPARE_MAX) {
		c->txn->next_spare = w->h1_spare;
		w->h1_spare = c->txn;
		w->n_h1_spare++;
	} else {
		free(c->txn);
	}
	c->txn = NULL;
	if (c->stage && evbuffer_get_length(c->stage) == 0) {
		worker_buf_give(w, c->stage); /* between requests no stage is needed */
		c->stage = NULL;
		c->staging = false;
	}
}

void h1_spares_free(struct worker *w)
{
	while (w->h1_spare) {
		struct h1_txn *t = w->h1_spare;
		w->h1_spare = t->next_spare;
		free(t);
	}
	w->n_h1_spare = 0;
}

/* h1_keep_host: remember the request's host for h1_conn_routes_changed;
 * the copy is kept while the host stays the same, as it does on most
 * keep-alive connections. */
static void h1_keep_host(struct h1_conn *c, const struct req *r)
{
	if (r->host_len == 0 || (c->last_host && strcmp(c->last_host, r->host) == 0))
		return;
	free(c->last_host);
	c->last_host = strdup(r->host); /* NULL: routes_changed then skips it */
}

struct h1_conn *h1_conn_next(const struct h1_conn *c)
{
	return c->next;
}

/* h1_free: the one place a client connection ends. */
static void h1_free(struct h1_conn *c, const char *why)
{
	log_debug("client %s: closed (%s)", c->peer.ip, why);
	if (c->in_exchange) {
		exchange_finish(&c->txn->ex);
		c->in_exchange = false;
	}
	if (c->in_request) {
		req_clear(&c->txn->req);
		c->in_request = false;
	}
	h1_txn_end(c);
	conn_peer_clear(&c->peer);
	free(c->last_host);
	if (c->io)
		conn_io_free(c->io);
	if (c->stage)
		evbuffer_free(c->stage);
	event_free(c->timer);
	event_free(c->kick);
	struct worker *w = c->w;
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	worker_conn_removed(w);
	free(c);
	worker_maybe_finish(w);
}

void h1_conn_close_now(struct h1_conn *c)
{
	h1_free(c, "stopped");
}

/* h1_close_after_flush: send what is queued, then close. The client's
 * unread bytes are read and dropped meanwhile (lingering close), so a client
 * still sending a refused body sees the answer instead of a reset. Never
 * frees at once: callers up the stack may still hold c. */
void h1_close_after_flush(struct h1_conn *c)
{
	c->state = H1_CLOSING;
	c->linger = c->linger_wanted && !c->w->draining;
	if (c->linger)
		conn_io_read_on(c->io);
	else
		conn_io_read_off(c->io);
	conn_io_write_low(c->io, 0);
	conn_io_timeouts(c->io, NULL, &c->w->tv.client_idle);
	if (evbuffer_get_length(conn_io_output(c->io)) == 0)
		event_active(c->kick, 0, 0);
}

/* h1_closing_flushed: everything is sent; linger a little, or close. */
static void h1_closing_flushed(struct h1_conn *c)
{
	if (c->aborted || !c->linger) {
		h1_free(c, c->aborted ? "aborted" : "done");
		return;
	}
	if (!c->peer.tls) /* tell the client we are done; a TLS peer hears close_notify at the close */
		shutdown(conn_io_fd(c->io), SHUT_WR);
	if (!evtimer_pending(c->timer, NULL)) {
		struct timeval tv = {H1_LINGER_S, 0};
		evtimer_add(c->timer, &tv);
	}
}

/* h1_abort: close without flushing, from the loop (see h1_close_after_flush). */
void h1_abort(struct h1_conn *c)
{
	h1_end_request(c);
	c->state = H1_CLOSING;
	c->aborted = true;
	conn_io_stop(c->io);
	event_active(c->kick, 0, 0);
}

static void h1_log(struct h1_conn *c)
{
	struct req *r = &c->txn->req;
	req_account(r);
	access_log_record(c->w->alog, r);
}

/* h1_end_request: account, log and forget the current request. */
void h1_end_request(struct h1_conn *c)
{
	if (c->in_exchange) {
		exchange_finish(&c->txn->ex);
		c->in_exchange = false;
	}
	if (c->in_request) {
		h1_log(c);
		h1_keep_host(c, &c->txn->req);
		req_clear(&c->txn->req);
		c->in_request = false;
	}
	/* The txn itself goes in h1_kick, from the loop: callers up the stack
	 * (an exchange failing inside exchange_start) may still touch it. */
}

/* Request body: chunked bodies are decoded strictly (chunked.h) and
 * re-framed toward the backend by the exchange. */

static void h1_on_chunk_data(void *arg, const char *p, size_t n)
{
	struct h1_conn *c = arg;
	if (c->body_too_large)
		return;
	c->body_seen += n;
	c->txn->req.bytes_in += n;
	if (c->max_body && c->body_seen > c->max_body) {
		c->body_too_large = true;
		return;
	}
	exchange_request_copy(&c->txn->ex, p, n);
}

static void h1_ignore_chunk_data(void *arg, const char *p, size_t n)
{
	(void)arg;
	(void)p;
	(void)n;
}

/* h1_chunked_precheck: whether the body bytes that came with the head are
 * well-formed, so a bad first chunk is refused before a backend sees the head. */
static bool h1_chunked_precheck(struct h1_conn *c)
{
	struct evbuffer *in = conn_io_input(c->io);
	struct evbuffer_iovec v[8];
	int n = evbuffer_peek(in, -1, NULL, v, 8);
	struct chunked probe;
	chunked_init(&probe);
	for (int i = 0; i < n && i < 8 && !probe.done; i++) {
		const char *why;
		ptrdiff_t used = chunked_decode(&probe, v[i].iov_base, v[i].iov_len,
						h1_ignore_chunk_data, NULL, &why);
		if (used < 0)
			return false;
	}
	return true;
}

static void h1_body_done(struct h1_conn *c)
{
	c->state = H1_WAIT;
	conn_io_timeouts(c->io, NULL, NULL);
	exchange_request_end(&c->txn->ex);
}

/* h1_read_body: feed the backend while it keeps up. */
static void h1_read_body(struct h1_conn *c)
{
	struct evbuffer *in = conn_io_input(c->io);
	while (c->state == H1_BODY && evbuffer_get_length(in)) {
		if (exchange_request_backlog(&c->txn->ex) > H1_HIGH_WATER) {
			conn_io_read_off(c->io);
			return;
		}
		size_t avail = evbuffer_get_length(in);
		if (!c->txn->req.chunked) {
			size_t n = (int64_t)avail < c->body_left ? avail : (size_t)c->body_left;
			c->body_seen += n;
			c->txn->req.bytes_in += n;
			c->body_left -= (int64_t)n;
			exchange_request_body(&c->txn->ex, in, n);
			if (c->body_left == 0)
				h1_body_done(c);
			continue;
		}
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			return;
		const char *why = "bad chunked body";
		ptrdiff_t used = chunked_decode(&c->txn->chunk, v.iov_base, v.iov_len, h1_on_chunk_data, c,
						&why);
		if (used >= 0 && !c->body_too_large) {
			evbuffer_drain(in, (size_t)used);
			if (c->txn->chunk.done)
				h1_body_done(c);
			continue;
		}
		log_debug("client %s: %s", c->peer.ip, c->body_too_large ? "body too large" : why);
		int status = c->body_too_large ? 413 : 400;
		exchange_finish(&c->txn->ex);
		c->in_exchange = false;
		if (c->resp_head_sent) {
			h1_abort(c);
			return;
		}
		h1_error(c, status, true);
		h1_finish_response(c);
		return;
	}
}

#define H1_ACME_PREFIX "/.well-known/acme-challenge/"

/* h1_acme_http01: on the plain HTTP listener, answer the CA's http-01
 * validator (RFC 8555 section 8.3) for a token portier holds with its key
 * authorization. Ahead of routing, redirects and limits, and whatever the
 * Host: the name may be routed by no tenant yet. False for anything else,
 * unknown tokens included: those are routed as usual, so a tenant running
 * its own ACME client behind portier (tls "off") still gets its validations. */
static bool h1_acme_http01(struct h1_conn *c)
{
	struct req *r = &c->txn->req;
	size_t plen = sizeof H1_ACME_PREFIX - 1;
	if (c->peer.tls || r->path_len < plen || memcmp(r->path, H1_ACME_PREFIX, plen) != 0)
		return false;
	char keyauth[CHALLENGES_KEYAUTH_MAX];
	int n = challenges_get_http01(edge_challenges(c->w->edge), r->path + plen,
				      r->path_len - plen, keyauth, sizeof keyauth);
	if (n < 0)
		return false;
	c->close_after |= r->content_length > 0 || r->chunked; /* left unread */
	h1_respond(c, 200, "text/plain", keyauth, (size_t)n, NULL);
	h1_finish_response(c);
	return true;
}

/* h1_answer: portier's own answer from the dispatcher. A body left unread
 * closes the connection (read away first: lingering close). */
static void h1_answer(struct h1_conn *c, const struct dispatch *d)
{
	const struct req *r = &c->txn->req;
	if (r->content_length > 0 || r->chunked || d->status == 413 || d->status == 414) {
		c->close_after = true;
		c->linger_wanted = r->content_length > 0 || r->chunked;
	}
	h1_respond(c, d->status, d->content_type, d->body, d->body_len,
		   d->extra[0] ? d->extra : NULL);
	h1_finish_response(c);
}

/* h1_dispatch: route the request and answer it or start its exchange. */
static void h1_dispatch(struct h1_conn *c)
{
	struct worker *w = c->w;
	struct req *r = &c->txn->req;
	if (h1_acme_http01(c))
		return;
	struct dispatch d;
	if (dispatch_route(w, r, c->peer.tls ? c->peer.sni : NULL, &d) == DISPATCH_ANSWER) {
		h1_answer(c, &d);
		return;
	}
	c->max_body = d.max_body;
	if (r->chunked && !h1_chunked_precheck(c)) {
		h1_error(c, 400, true);
		h1_finish_response(c);
		return;
	}
	if (dispatch_admit(w, r, &d) == DISPATCH_ANSWER) {
		h1_answer(c, &d);
		return;
	}
	c->state = r->content_length > 0 || r->chunked ? H1_BODY : H1_WAIT;
	c->body_left = r->content_length > 0 ? r->content_length : 0;
	c->body_seen = 0;
	c->body_too_large = false;
	chunked_init(&c->txn->chunk);
	c->in_exchange = true;
	if (c->state == H1_BODY)
		conn_io_timeouts(c->io, &w->tv.client_idle, NULL);
	/* In H1_WAIT reading stays on (toggling it costs two epoll_ctl a
	 * request): pipelined bytes wait in the input, bounded by its high
	 * watermark, and a client that leaves is noticed at once. */
	exchange_start(&c->txn->ex, w, r, &h1_ops);
	if (!c->in_exchange)
		return; /* failed at once, already answered */
	if (c->state == H1_BODY)
		h1_read_body(c);
	else
		exchange_request_end(&c->txn->ex);
}

/* h1_fill_req: the protocol-neutral request from a parsed head. */
static int h1_fill_req(struct h1_conn *c, const struct h1_request_head *h)
{
	struct req *r = &c->txn->req;
	r->method = h->method_str;
	r->method_len = h->method_len;
	r->path = h->path;
	r->path_len = h->path_len;
	r->query = h->query;
	r->query_len = h->query_len;
	r->authority = h->host;
	r->authority_len = h->host_len;
	r->n_headers = h->n_headers;
	r->content_length = h->chunked ? -1 : h->content_length;
	r->chunked = h->chunked;
	r->expect_continue = h->expect_continue;
	r->upgrade = h->upgrade;
	r->keep_alive = h->keep_alive;
	r->is_head = h->method == HTTP_HEAD;
	r->protocol = h->version_minor ? "HTTP/1.1" : "HTTP/1.0";
	if (!r->keep_alive)
		c->close_after = true;
	int n;
	if (h->host) {
		n = host_normalise(h->host, h->host_len, r->host, sizeof r->host);
	} else if (c->peer.sni[0]) { /* HTTP/1.0 without Host: the TLS name stands in */
		n = (int)strlen(c->peer.sni);
		memcpy(r->host, c->peer.sni, (size_t)n + 1);
	} else {
		n = -1;
	}
	if (n < 0)
		return -1;
	r->host_len = (size_t)n;
	return 0;
}

/* h1_scan_head: the length of the head (through CRLF CRLF) in the first
 * bytes of in, -1 when incomplete, -2 on a bare LF, which would otherwise
 * leave a "\n\n"-terminated head waiting for its deadline. Resumes where
 * the last call stopped. */
static ssize_t h1_scan_head(struct h1_conn *c, struct evbuffer *in, size_t avail, size_t limit)
{
	size_t n = avail < limit + 4 ? avail : limit + 4;
	const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
	if (!p)
		return -1;
	for (size_t i = c->scanned; i < n; i++) {
		const char *lf = memchr(p + i, '\n', n - i);
		if (!lf)
			break;
		i = (size_t)(lf - p);
		if (i == 0 || p[i - 1] != '\r')
			return -2;
		if (i >= 3 && p[i - 2] == '\n' && p[i - 3] == '\r')
			return (ssize_t)i + 1;
	}
	c->scanned = n;
	return -1;
}

/* h1_reject_early: answer before a head could be parsed, then close. */
static void h1_reject_early(struct h1_conn *c, int status)
{
	if (!h1_txn_begin(c)) {
		h1_abort(c); /* out of memory */
		return;
	}
	memset(&c->txn->req, 0, sizeof c->txn->req);
	c->in_request = true;
	c->txn->req.start_ms = clock_mono_ms();
	memcpy(c->txn->req.client_ip, c->peer.ip, sizeof c->txn->req.client_ip);
	c->txn->req.protocol = "HTTP/1.1";
	req_make_id(&c->txn->req);
	h1_error(c, status, true);
	h1_finish_response(c);
}

/* h1_h2c_adopt: HTTP/2 with prior knowledge (RFC 9113 3.3) on the plain
 * listener: once the client preface is in, the connection goes to the h2
 * front with everything it sent. True when the input is (the start of) it;
 * c may be gone then. */
static bool h1_h2c_adopt(struct h1_conn *c, struct evbuffer *in, size_t avail)
{
	size_t n = avail < 24 ? avail : 24;
	const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
	if (!p || !h2_preface_prefix(p, n))
		return false;
	if (n < 24)
		return true; /* wait for the rest, within the header deadline */
	struct conn_io *io = c->io;
	struct worker *w = c->w;
	struct conn_origin o;
	conn_peer_origin(&c->peer, &o);
	c->io = NULL;
	h1_free(c, "h2c");
	h2_conn_adopt(w, io, &o);
	return true;
}

/* h1_read_head: wait for a whole head, parse it strictly, dispatch it. */
static void h1_read_head(struct h1_conn *c)
{
	struct worker *w = c->w;
	struct evbuffer *in = conn_io_input(c->io);
	size_t avail = evbuffer_get_length(in);
	if (avail == 0)
		return;
	if (c->n_requests == 0 && !c->peer.tls && w->cfg->http2.h2c && h1_h2c_adopt(c, in, avail))
		return;
	size_t limit = w->cfg->limits.header_size;
	ssize_t end = h1_scan_head(c, in, avail, limit);
	if (end == -2) {
		h1_reject_early(c, 400);
		return;
	}
	if (end < 0) {
		if (avail > limit) {
			h1_reject_early(c, 431);
		} else if (!c->head_timer_armed) {
			/* The first byte of a request starts the client_header
			 * deadline; a head whole in its first read needs none. */
			evtimer_add(c->timer, &w->tv.client_header);
			c->head_timer_armed = true;
		}
		return;
	}
	size_t head_len = (size_t)end;
	c->scanned = 0;
	c->head_timer_armed = false;
	evtimer_del(c->timer);

	if (!h1_txn_begin(c)) {
		h1_abort(c); /* out of memory */
		return;
	}
	struct req *r = &c->txn->req;
	memset(r, 0, sizeof *r);
	c->in_request = true;
	c->n_requests++;
	r->start_ms = clock_mono_ms();
	req_set_peer(r, &c->peer);
	r->protocol = "HTTP/1.1";
	unsigned cap = w->cfg->limits.header_count + 1; /* the parser fills what it counts */
	struct h1_txn *t = c->txn;
	if (head_len < sizeof t->head && cap <= H1_TXN_FIELDS) {
		r->head_buf = t->head;
		r->headers = t->fields;
		r->borrowed = true;
	} else {
		r->head_buf = malloc(head_len + 1);
		r->headers = malloc(cap * sizeof *r->headers);
	}
	if (!r->head_buf || !r->headers) {
		req_make_id(r);
		h1_error(c, 500, true);
		h1_finish_response(c);
		return;
	}
	evbuffer_remove(in, r->head_buf, head_len);
	r->head_buf[head_len] = '\0';
	r->bytes_in = head_len;

	struct h1_limits lim = {.header_size = limit, .header_count = w->cfg->limits.header_count};
	struct h1_request_head h;
	const char *why = "bad request";
	int status = h1_request_head_parse(r->head_buf, head_len, &lim, &c->txn->parser, r->headers, cap,
					   &h, &why);
	if (status == 0 && h1_fill_req(c, &h) < 0) {
		status = 400;
		why = "invalid Host";
	}
	req_make_id(r);
	if (status) {
		log_debug("client %s: %d %s", c->peer.ip, status, why);
		h1_error(c, status, true);
		h1_finish_response(c);
		return;
	}
	h1_dispatch(c);
}

void h1_read(struct conn_io *io, void *arg)
{
	struct h1_conn *c = arg;
	(void)io;
	switch (c->state) {
	case H1_HEAD:
		h1_read_head(c);
		break;
	case H1_BODY:
		h1_read_body(c);
		break;
	case H1_TUNNEL: {
		struct evbuffer *in = conn_io_input(c->io);
		size_t n = evbuffer_get_length(in);
		if (exchange_request_backlog(&c->txn->ex) > H1_HIGH_WATER) {
			conn_io_read_off(c->io);
			return;
		}
		c->txn->req.bytes_in += n;
		exchange_request_body(&c->txn->ex, in, n);
		break;
	}
	case H1_CLOSING: {
		struct evbuffer *in = conn_io_input(c->io);
		c->lingered += evbuffer_get_length(in);
		evbuffer_drain(in, evbuffer_get_length(in));
		if (c->lingered > H1_LINGER_BYTES)
			h1_free(c, "linger limit");
		break;
	}
	case H1_WAIT:
		break;
	}
}

static void h1_write(struct conn_io *io, void *arg)
{
	struct h1_conn *c = arg;
	if (c->state == H1_CLOSING) {
		if (conn_io_flushed(io))
			h1_closing_flushed(c);
		return;
	}
	if (c->in_exchange)
		exchange_response_drained(&c->txn->ex);
}

static void h1_event(struct conn_io *io, short what, void *arg)
{
	struct h1_conn *c = arg;
	(void)io;
	if (c->state == H1_TUNNEL && (what & CONN_IO_EOF)) {
		h1_end_request(c);
		h1_free(c, "tunnel closed by client");
		return;
	}
	if (c->in_request)
		c->txn->req.status = c->txn->req.status ? c->txn->req.status : 499; /* client went away */
	h1_end_request(c);
	h1_free(c, what & CONN_IO_TIMEOUT ? "timeout" : what & CONN_IO_EOF ? "eof" : "error");
}

/* h1_timer: the head did not arrive in time, or the connection idled out. */
static void h1_timer(evutil_socket_t fd, short what, void *arg)
{
	struct h1_conn *c = arg;
	(void)fd;
	(void)what;
	if (c->state == H1_CLOSING) {
		h1_free(c, "linger over");
		return;
	}
	if (c->state != H1_HEAD)
		return;
	if (c->head_timer_armed && evbuffer_get_length(conn_io_input(c->io)) &&
	    h1_txn_begin(c)) {
		c->in_request = true;
		memset(&c->txn->req, 0, sizeof c->txn->req);
		req_make_id(&c->txn->req);
		h1_error(c, 408, true);
		c->in_request = false;
		h1_close_after_flush(c);
		return;
	}
	h1_free(c, "idle");
}

/* h1_start_next: between requests; serve a pipelined one or wait idle. */
static void h1_start_next(struct h1_conn *c)
{
	if (c->state != H1_HEAD)
		return;
	if (c->w->draining) {
		h1_close_after_flush(c);
		return;
	}
	struct worker *w = c->w;
	evtimer_add(c->timer, c->n_requests ? &w->tv.client_idle : &w->tv.client_header);
	c->head_timer_armed = !c->n_requests; /* the first request's deadline runs from accept */
	conn_io_timeouts(c->io, NULL, NULL);
	conn_io_write_low(c->io, H1_LOW_WATER);
	conn_io_read_on(c->io);
	h1_read_head(c);
}

static void h1_kick(evutil_socket_t fd, short what, void *arg)
{
	struct h1_conn *c = arg;
	(void)fd;
	(void)what;
	if (c->state == H1_CLOSING && !c->aborted && !c->linger)
		h1_push_last(c);
	else if (!c->aborted)
		h1_push(c);
	h1_txn_end(c); /* between requests: an idle connection keeps none */
	if (c->state == H1_CLOSING) {
		if (c->aborted || conn_io_flushed(c->io))
			h1_closing_flushed(c);
		return;
	}
	h1_start_next(c); /* returns at once unless between requests */
}

void h1_conn_routes_changed(struct h1_conn *c)
{
	/* The request under way, else the last one. */
	const char *host = c->in_request ? c->txn->req.host : c->last_host;
	if (c->n_requests == 0 || c->state == H1_CLOSING || !host || !host[0] ||
	    snapshot_tenant_for_host(c->w->routes, host, strlen(host)))
		return;
	/* Its tenant is gone: finish what is under way, then close. */
	c->close_after = true;
	if (c->state == H1_HEAD && !c->in_request &&
	    evbuffer_get_length(conn_io_input(c->io)) == 0)
		h1_close_after_flush(c);
}

void h1_conn_drain(struct h1_conn *c)
{
	c->close_after = true;
	if (c->state == H1_HEAD && !c->in_request &&
	    evbuffer_get_length(conn_io_input(c->io)) == 0)
		h1_close_after_flush(c);
}

struct h1_conn *h1_conn_new(struct worker *w, int fd, SSL *ssl, const char *sni,
			    const struct conn_origin *o, enum listener_kind kind)
{
	struct h1_conn *c = calloc(1, sizeof *c);
	if (!c)
		goto fail;
	c->w = w;
	c->kind = kind;
	conn_peer_init(&c->peer, w->edge, o, ssl, sni);
	c->io = conn_io_new(w->base, fd, ssl);
	ssl = NULL; /* owned by c->io now, or freed */
	fd = -1;
	c->timer = evtimer_new(w->base, h1_timer, c);
	c->kick = event_new(w->base, -1, 0, h1_kick, c);
	if (!c->io || !c->timer || !c->kick) {
		if (c->io)
			conn_io_free(c->io);
		event_free(c->timer);
		event_free(c->kick);
		conn_peer_clear(&c->peer);
		free(c);
		return NULL;
	}
	conn_io_setcb(c->io, h1_read, h1_write, h1_event, c);
	size_t high = w->cfg->limits.header_size + 4096; /* a whole head must fit */
	conn_io_read_high(c->io, high > H1_READ_HIGH_WATER ? high : H1_READ_HIGH_WATER);
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	worker_conn_added(w);
	c->state = H1_HEAD;
	h1_start_next(c);
	return c;
fail:
	free(c);
	if (ssl)
		SSL_free(ssl);
	if (fd >= 0)
		close(fd);
	return NULL;
}
