#include "proxy/http/exchange.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "config/values.h"
#include "proxy/core/clock.h"
#include "proxy/core/log.h"
#include "proxy/http/headers.h"
#include "proxy/net/socket_read.h"
#include "proxy/upstream/balancer.h"
#include "proxy/upstream/health.h"
#include "proxy/upstream/pool.h"
#include "proxy/upstream/resolver.h"
#include "proxy/worker.h"

/* Stop reading the source while this much waits for the sink. */
#define EXCHANGE_HIGH_WATER (256 * 1024)
#define EXCHANGE_LOW_WATER (64 * 1024)
#define EXCHANGE_MAX_RESPONSE_HEAD (64 * 1024)
#define EXCHANGE_MAX_RESPONSE_HEADERS 256

static void exchange_connect(struct exchange *ex);
static void exchange_up_read(struct bufferevent *bev, void *arg);

static struct timeval exchange_tv(uint64_t ms)
{
	return (struct timeval){.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
}

static void exchange_drop_up(struct exchange *ex)
{
	if (ex->up) {
		bufferevent_free(ex->up);
		ex->up = NULL;
	}
	ex->connected = false;
}

static void exchange_release_backend(struct exchange *ex)
{
	if (ex->acquired) {
		balancer_release(ex->svc, ex->backend);
		ex->acquired = false;
	}
}

/* exchange_fail: one way out for every failure on the upstream side. */
static void exchange_fail(struct exchange *ex, int status, const char *why)
{
	if (ex->state == EX_DONE)
		return;
	log_debug("request %s: %s (%s)", ex->req->id, why, ex->key);
	ex->state = EX_DONE;
	exchange_drop_up(ex);
	exchange_release_backend(ex);
	ex->ops->failed(ex, status, why);
}

/* exchange_set_key: backend a's "host:port" (made when the config was
 * loaded) into ex->key, the pool's key, and the request's upstream, the
 * access log's; cut to fit. */
static void exchange_set_key(struct exchange *ex, const struct cfg_addr *a)
{
	char buf[sizeof ex->key];
	const char *text = cfg_addr_text(a, buf, sizeof buf);
	size_t n = strnlen(text, sizeof ex->key - 1);
	memcpy(ex->key, text, n);
	ex->key[n] = '\0';
	_Static_assert(sizeof ex->key <= sizeof ex->req->upstream, "upstream holds the key");
	memcpy(ex->req->upstream, ex->key, n + 1);
}

/* exchange_pick: choose a backend, excluding the one that just failed. */
static bool exchange_pick(struct exchange *ex, int exclude)
{
	int idx = balancer_pick(ex->svc, (const struct sockaddr *)&ex->req->client, exclude,
				clock_mono_ms());
	if (idx < 0)
		return false;
	exchange_release_backend(ex);
	ex->backend = idx;
	balancer_acquire(ex->svc, idx);
	ex->acquired = true;
	exchange_set_key(ex, &ex->svc->backends[idx]);
	return true;
}

/* exchange_connect_failed: no connection: one retry on another backend, else 502. */
static void exchange_connect_failed(struct exchange *ex, const char *why)
{
	health_report_failure(ex->svc, ex->backend, clock_mono_ms());
	exchange_drop_up(ex);
	if (!ex->retried && ex->svc->n_backends > 1 && exchange_pick(ex, ex->backend)) {
		ex->retried = true;
		log_debug("request %s: %s, retrying on %s", ex->req->id, why, ex->key);
		exchange_connect(ex);
		return;
	}
	exchange_fail(ex, 502, why);
}

static void exchange_up_write(struct bufferevent *bev, void *arg)
{
	struct exchange *ex = arg;
	(void)bev;
	if (ex->state != EX_DONE && !ex->request_done)
		ex->ops->request_resume(ex);
	else if (ex->state == EX_TUNNEL)
		ex->ops->request_resume(ex);
}

static void exchange_up_event(struct bufferevent *bev, short what, void *arg);

/* exchange_replayable: a request without a body can be sent again as is. */
static bool exchange_replayable(const struct exchange *ex)
{
	return !ex->req->chunked && ex->req->content_length <= 0 && !ex->req->upgrade;
}

/* exchange_connected: send the head and whatever body arrived meanwhile. */
static void exchange_connected(struct exchange *ex)
{
	struct worker *w = ex->w;
	ex->connected = true;
	ex->state = EX_RESPONSE_HEAD;
	ex->sent_ms = clock_mono_ms();
	socket_read_install(ex->up);
	bufferevent_set_timeouts(ex->up, &w->tv.backend_response, &w->tv.backend_response);
	bufferevent_setcb(ex->up, exchange_up_read, exchange_up_write, exchange_up_event, ex);
	bufferevent_setwatermark(ex->up, EV_WRITE, EXCHANGE_LOW_WATER, 0);
	/* Enabling what is enabled is not free: a bufferevent re-adds its write
	 * event even with nothing to write (an EPOLLOUT on, then off). */
	short off = (short)((EV_READ | EV_WRITE) & ~bufferevent_get_enabled(ex->up));
	if (off)
		bufferevent_enable(ex->up, off);

	struct req *r = ex->req;
	int64_t body_len = r->chunked ? -1 : r->content_length;
	/* The head goes straight to the socket: through the output buffer it
	 * would cost an EPOLLOUT registration and its removal per request, and
	 * a buffer chain allocated and freed. What the socket does not take (or
	 * an error, found by the next write) waits in the output buffer as
	 * usual. */
	struct evbuffer *spill = w->scratch;
	evbuffer_drain(spill, evbuffer_get_length(spill));
	struct head_out h;
	head_out_begin(&h, spill);
	headers_compose_upstream(&h, r, body_len, r->chunked);
	int fd = bufferevent_getfd(ex->up);
	bool body_waits = ex->pending && evbuffer_get_length(ex->pending);
	if (!h.failed && !body_waits && evbuffer_get_length(spill) == 0) {
		/* The usual case: the head alone, whole in h's stack buffer. */
		ssize_t n = send(fd, h.buf, h.len, MSG_NOSIGNAL);
		size_t sent = n > 0 ? (size_t)n : 0;
		if (sent < h.len && bufferevent_write(ex->up, h.buf + sent, h.len - sent) != 0) {
			exchange_fail(ex, 502, "out of memory");
			return;
		}
	} else {
		if (head_out_end(&h) != 0 ||
		    (ex->pending && evbuffer_add_buffer(spill, ex->pending) != 0)) {
			evbuffer_drain(spill, evbuffer_get_length(spill));
			exchange_fail(ex, 502, "out of memory");
			return;
		}
		evbuffer_write(spill, fd);
		if (evbuffer_get_length(spill))
			bufferevent_write_buffer(ex->up, spill);
	}
	if (r->expect_continue)
		ex->ops->send_continue(ex);
}

static void exchange_up_event(struct bufferevent *bev, short what, void *arg)
{
	struct exchange *ex = arg;
	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		health_report_success(ex->svc, ex->backend);
		exchange_connected(ex);
		return;
	}
	if (!ex->connected) {
		exchange_connect_failed(ex, what & BEV_EVENT_TIMEOUT ? "backend connect timeout"
								     : "backend refused the connection");
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (ex->state == EX_TUNNEL)
			return; /* tunnels have no response timeout */
		health_report_failure(ex->svc, ex->backend, clock_mono_ms());
		exchange_fail(ex, 504, "backend response timeout");
		return;
	}
	/* EOF or error after connecting. */
	if (what & BEV_EVENT_EOF) {
		/* Data may still sit in the input: deliver it first. */
		if (evbuffer_get_length(bufferevent_get_input(ex->up)))
			exchange_up_read(ex->up, ex);
		if (ex->state == EX_DONE)
			return;
		if ((ex->state == EX_RESPONSE_BODY && ex->resp_until_close) || ex->state == EX_TUNNEL) {
			ex->state = EX_DONE;
			exchange_drop_up(ex);
			exchange_release_backend(ex);
			ex->ops->response_end(ex);
			return;
		}
	}
	if (ex->state == EX_RESPONSE_HEAD && !ex->resp_head_seen && ex->pooled && exchange_replayable(ex)) {
		/* The backend closed a pooled connection as we reused it: once more, fresh. */
		exchange_drop_up(ex);
		ex->pooled = false;
		ex->fresh_only = true;
		exchange_connect(ex);
		return;
	}
	if (ex->state == EX_RESPONSE_HEAD)
		health_report_failure(ex->svc, ex->backend, clock_mono_ms());
	exchange_fail(ex, 502, "backend closed the connection");
}

/* exchange_resolved: connect to the backend's address. */
static void exchange_resolved(int err, const char *errmsg, const struct sockaddr *sa,
			      socklen_t salen, void *arg)
{
	struct exchange *ex = arg;
	ex->resolving = NULL;
	if (err) {
		exchange_connect_failed(ex, errmsg ? errmsg : "cannot resolve backend");
		return;
	}
	struct worker *w = ex->w;
	ex->up = bufferevent_socket_new(w->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!ex->up) {
		exchange_fail(ex, 502, "out of memory");
		return;
	}
	struct timeval tv = exchange_tv(w->cfg->timeouts_ms.backend_connect);
	bufferevent_set_timeouts(ex->up, NULL, &tv); /* the write timeout bounds connect() */
	bufferevent_setcb(ex->up, NULL, NULL, exchange_up_event, ex);
	ex->connect_start_ms = clock_mono_ms();
	if (bufferevent_socket_connect(ex->up, sa, (int)salen) < 0) {
		/* Immediate failure (e.g. no route): the socket is already gone. */
		exchange_connect_failed(ex, "cannot connect to backend");
		return;
	}
	int one = 1;
	setsockopt(bufferevent_getfd(ex->up), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void exchange_connect(struct exchange *ex)
{
	ex->state = EX_CONNECTING;
	if (!ex->fresh_only) {
		ex->up = pool_take(ex->w->pool, ex->key);
		if (ex->up) {
			ex->pooled = true;
			exchange_connected(ex);
			return;
		}
	}
	const struct cfg_addr *a = &ex->svc->backends[ex->backend];
	/* A cached answer calls back before returning (NULL then): ex may
	 * already have moved on, so store only a request still pending. */
	struct resolver_req *rq =
		resolver_lookup(ex->w->resolver, a->host, a->port, exchange_resolved, ex);
	if (rq)
		ex->resolving = rq;
}

void exchange_start(struct exchange *ex, struct worker *w, struct req *r,
		    const struct front_ops *ops)
{
	memset(ex, 0, sizeof *ex);
	ex->w = w;
	ex->req = r;
	ex->ops = ops;
	ex->backend = -1;
	ex->resp_remaining = -1;
	ex->svc = r->route.service;
	if (!exchange_pick(ex, -1)) {
		exchange_fail(ex, 503, "no backend available");
		return;
	}
	exchange_connect(ex);
}

/* Request body toward the backend, framed as announced in the head. */

static void exchange_sink_prefix(struct exchange *ex, struct evbuffer *dst, size_t n)
{
	if (ex->req->chunked && ex->state != EX_TUNNEL)
		evbuffer_add_printf(dst, "%zx\r\n", n);
}

/* exchange_sink: where request body goes now: the backend's output, or
 * until it is connected a buffer made on first use (most requests have no
 * body, and making it always was an allocation each). NULL when out of
 * memory: the exchange has failed. */
static struct evbuffer *exchange_sink(struct exchange *ex)
{
	if (ex->connected)
		return bufferevent_get_output(ex->up);
	if (!ex->pending && !(ex->pending = evbuffer_new())) {
		exchange_fail(ex, 502, "out of memory");
		return NULL;
	}
	return ex->pending;
}

void exchange_request_body(struct exchange *ex, struct evbuffer *src, size_t n)
{
	if (ex->state == EX_DONE || n == 0) {
		evbuffer_drain(src, n);
		return;
	}
	struct evbuffer *dst = exchange_sink(ex);
	if (!dst) {
		evbuffer_drain(src, n);
		return;
	}
	exchange_sink_prefix(ex, dst, n);
	evbuffer_remove_buffer(src, dst, n);
	if (ex->req->chunked && ex->state != EX_TUNNEL)
		evbuffer_add(dst, "\r\n", 2);
}

void exchange_request_copy(struct exchange *ex, const char *p, size_t n)
{
	if (ex->state == EX_DONE || n == 0)
		return;
	struct evbuffer *dst = exchange_sink(ex);
	if (!dst)
		return;
	exchange_sink_prefix(ex, dst, n);
	evbuffer_add(dst, p, n);
	if (ex->req->chunked && ex->state != EX_TUNNEL)
		evbuffer_add(dst, "\r\n", 2);
}

void exchange_request_end(struct exchange *ex)
{
	ex->request_done = true;
	if (ex->state == EX_DONE)
		return;
	struct evbuffer *dst = ex->req->chunked ? exchange_sink(ex) : NULL;
	if (dst)
		evbuffer_add(dst, "0\r\n\r\n", 5);
}

void exchange_request_end_trailers(struct exchange *ex, const struct h1_header *hs, size_t n)
{
	if (ex->state == EX_DONE || !ex->req->chunked || n == 0) {
		exchange_request_end(ex);
		return;
	}
	ex->request_done = true;
	struct evbuffer *dst = exchange_sink(ex);
	if (!dst)
		return;
	evbuffer_add(dst, "0\r\n", 3);
	for (size_t i = 0; i < n; i++) {
		evbuffer_add(dst, hs[i].name, hs[i].name_len);
		evbuffer_add(dst, ": ", 2);
		evbuffer_add(dst, hs[i].value, hs[i].value_len);
		evbuffer_add(dst, "\r\n", 2);
	}
	evbuffer_add(dst, "\r\n", 2);
}

size_t exchange_request_backlog(const struct exchange *ex)
{
	size_t n = ex->pending ? evbuffer_get_length(ex->pending) : 0;
	if (ex->up && ex->connected)
		n += evbuffer_get_length(bufferevent_get_output(ex->up));
	return n;
}

/* Response from the backend. */

static void exchange_on_chunk_data(void *arg, const char *p, size_t n)
{
	struct exchange *ex = arg;
	ex->ops->response_copy(ex, p, n);
}

/* exchange_response_complete: hand the connection back to the pool when
 * both directions finished cleanly, then tell the front. */
static void exchange_response_complete(struct exchange *ex)
{
	ex->state = EX_DONE;
	struct evbuffer *in = bufferevent_get_input(ex->up);
	if (ex->resp_keep_alive && ex->request_done && evbuffer_get_length(in) == 0 &&
	    evbuffer_get_length(bufferevent_get_output(ex->up)) == 0 && !ex->req->upgrade) {
		pool_put(ex->w->pool, ex->key, ex->up);
		ex->up = NULL;
		ex->connected = false;
	} else {
		exchange_drop_up(ex);
	}
	exchange_release_backend(ex);
	ex->ops->response_end(ex);
}

/* exchange_read_head: find and parse the response head; false to wait. */
static bool exchange_read_head(struct exchange *ex)
{
	struct evbuffer *in = bufferevent_get_input(ex->up);
	for (;;) {
		size_t avail = evbuffer_get_length(in);
		struct evbuffer_ptr start;
		evbuffer_ptr_set(in, &start, ex->resp_scanned > 3 ? ex->resp_scanned - 3 : 0,
				 EVBUFFER_PTR_SET);
		struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, &start);
		if (end.pos < 0) {
			ex->resp_scanned = avail;
			if (avail > EXCHANGE_MAX_RESPONSE_HEAD)
				exchange_fail(ex, 502, "backend response head too large");
			return false;
		}
		size_t head_len = (size_t)end.pos + 4;
		const char *head = (const char *)evbuffer_pullup(in, (ev_ssize_t)head_len);
		struct h1_header hs[EXCHANGE_MAX_RESPONSE_HEADERS];
		struct h1_response_head rh;
		const char *why = "bad response";
		struct h1_limits lim = {.header_size = EXCHANGE_MAX_RESPONSE_HEAD,
					.header_count = EXCHANGE_MAX_RESPONSE_HEADERS};
		int st = h1_response_head_parse(head, head_len, &lim, ex->req->is_head, hs,
						EXCHANGE_MAX_RESPONSE_HEADERS, &rh, &why);
		ex->resp_scanned = 0;
		if (st) {
			evbuffer_drain(in, head_len);
			exchange_fail(ex, 502, why);
			return false;
		}
		if (rh.status >= 100 && rh.status < 200 && rh.status != 101) {
			evbuffer_drain(in, head_len); /* interim responses are not relayed */
			continue;
		}
		if (rh.status == 101 && !ex->req->upgrade) {
			evbuffer_drain(in, head_len);
			exchange_fail(ex, 502, "backend switched protocols unasked");
			return false;
		}
		ex->resp_head_seen = true;
		ex->req->upstream_ms = clock_mono_ms() - ex->sent_ms;
		ex->resp_keep_alive = rh.keep_alive;
		bool bodiless = ex->req->is_head || rh.status == 204 || rh.status == 304 ||
				rh.status == 101;
		int64_t cl = -1;
		if (bodiless) {
			cl = 0;
		} else if (rh.chunked) {
			chunked_init(&ex->rchunk);
			if (ex->ops->response_trailers) {
				if (!ex->rtrailers)
					ex->rtrailers = malloc(CHUNKED_TRAILERS_MAX);
				ex->rchunk.trailers = ex->rtrailers;
			}
		} else if (rh.content_length >= 0) {
			cl = rh.content_length;
			ex->resp_remaining = cl;
		} else {
			ex->resp_until_close = true;
			ex->resp_keep_alive = false;
		}
		/* Drop hop-by-hop headers before the front sees them. */
		struct h1_header keep[EXCHANGE_MAX_RESPONSE_HEADERS];
		size_t nk = headers_end_to_end(rh.headers, rh.n_headers, bodiless, keep);
		if (rh.status == 101) /* a tunnel keeps Upgrade; the front adds Connection */
			for (size_t i = 0; i < rh.n_headers; i++)
				if (h1_token_eq(rh.headers[i].name, rh.headers[i].name_len, "upgrade"))
					keep[nk++] = rh.headers[i];
		ex->state = rh.status == 101 ? EX_TUNNEL : EX_RESPONSE_BODY;
		ex->ops->response_head(ex, rh.status, keep, nk, cl, bodiless);
		evbuffer_drain(in, head_len);
		if (ex->state == EX_TUNNEL) {
			bufferevent_set_timeouts(ex->up, NULL, NULL);
			ex->ops->upgraded(ex);
			return true;
		}
		if (bodiless || cl == 0) {
			exchange_response_complete(ex);
			return false;
		}
		return true;
	}
}

/* exchange_deliver_trailers: a chunked response's trailer fields, minus
 * those that frame or route a message, to a front that takes them. */
static void exchange_deliver_trailers(struct exchange *ex)
{
	if (!ex->rchunk.trailers || ex->rchunk.trailers_len <= 2)
		return;
	static const char *const banned[] = {"content-length", "host", "content-type",
					     "content-encoding", "set-cookie", NULL};
	struct h1_header hs[64], keep[64];
	size_t n = chunked_trailer_fields(ex->rchunk.trailers, ex->rchunk.trailers_len, hs, 64);
	size_t nk = 0;
	for (size_t i = 0; i < n; i++) {
		bool drop = headers_is_hop_by_hop(hs, n, i);
		for (const char *const *b = banned; *b && !drop; b++)
			drop = h1_token_eq(hs[i].name, hs[i].name_len, *b);
		if (!drop)
			keep[nk++] = hs[i];
	}
	if (nk)
		ex->ops->response_trailers(ex, keep, nk);
}

/* exchange_read_body: move what arrived to the front, within its backlog. */
static void exchange_read_body(struct exchange *ex)
{
	struct evbuffer *in = bufferevent_get_input(ex->up);
	size_t high = ex->ops->response_high_water ? ex->ops->response_high_water
						   : EXCHANGE_HIGH_WATER;
	while (ex->state == EX_RESPONSE_BODY || ex->state == EX_TUNNEL) {
		size_t avail = evbuffer_get_length(in);
		if (avail == 0)
			return;
		if (ex->ops->response_backlog(ex) > high) {
			bufferevent_disable(ex->up, EV_READ);
			return;
		}
		size_t chunk = avail < high ? avail : high;
		if (ex->state == EX_TUNNEL || ex->resp_until_close) {
			ex->ops->response_data(ex, in, chunk);
		} else if (ex->resp_remaining >= 0) {
			if ((int64_t)chunk > ex->resp_remaining)
				chunk = (size_t)ex->resp_remaining;
			ex->ops->response_data(ex, in, chunk);
			ex->resp_remaining -= (int64_t)chunk;
			if (ex->resp_remaining == 0) {
				exchange_response_complete(ex);
				return;
			}
		} else {
			/* Chunked: decoded strictly, the front re-frames. */
			struct evbuffer_iovec v;
			if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
				return;
			const char *why = "bad chunked encoding from backend";
			ptrdiff_t used = chunked_decode(&ex->rchunk, v.iov_base, v.iov_len,
							exchange_on_chunk_data, ex, &why);
			if (ex->state == EX_DONE)
				return;
			if (used < 0) {
				exchange_fail(ex, 502, why);
				return;
			}
			evbuffer_drain(in, (size_t)used);
			if (ex->rchunk.done) {
				exchange_deliver_trailers(ex);
				exchange_response_complete(ex);
				return;
			}
		}
	}
}

static void exchange_up_read(struct bufferevent *bev, void *arg)
{
	struct exchange *ex = arg;
	(void)bev;
	if (ex->state == EX_RESPONSE_HEAD && !exchange_read_head(ex))
		return;
	if (ex->state == EX_RESPONSE_BODY || ex->state == EX_TUNNEL)
		exchange_read_body(ex);
}

void exchange_response_drained(struct exchange *ex)
{
	if (!ex->up || (ex->state != EX_RESPONSE_BODY && ex->state != EX_TUNNEL))
		return;
	bufferevent_enable(ex->up, EV_READ);
	exchange_read_body(ex);
}

void exchange_finish(struct exchange *ex)
{
	if (ex->resolving) {
		resolver_cancel(ex->resolving);
		ex->resolving = NULL;
	}
	exchange_drop_up(ex);
	exchange_release_backend(ex);
	if (ex->pending) {
		evbuffer_free(ex->pending);
		ex->pending = NULL;
	}
	free(ex->rtrailers);
	ex->rtrailers = NULL;
	ex->rchunk.trailers = NULL;
	ex->state = EX_DONE;
}
