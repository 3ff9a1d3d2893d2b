/*
 * exchange.h - one request's trip to a backend and back: pick a backend,
 * resolve, take a pooled connection or connect (one retry on another
 * backend), send the head and stream the body, parse the response and
 * stream it to the front. Protocol-neutral: the front (h1 now, h2 later)
 * embeds a struct exchange and implements front_ops.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <http_parser.h>

#include "proxy/http/chunked.h"
#include "proxy/http/h1_head.h"
#include "proxy/http/req.h"

struct exchange;
struct worker;
struct resolver_req;

struct front_ops {
	/* response_head: the backend's head (hop-by-hop already removed);
	 * content_length -1 when the body is chunked or runs until close, 0
	 * for bodiless responses. */
	void (*response_head)(struct exchange *ex, unsigned status, const struct h1_header *hs,
			      size_t n, int64_t content_length, bool bodiless);
	/* response_data: move n bytes of body from src. */
	void (*response_data)(struct exchange *ex, struct evbuffer *src, size_t n);
	/* response_copy: copy n bytes of body. */
	void (*response_copy)(struct exchange *ex, const char *p, size_t n);
	/* response_end: the whole response was delivered to the front. */
	void (*response_end)(struct exchange *ex);
	/* upgraded: the backend switched protocols; bytes now flow raw both ways. */
	void (*upgraded)(struct exchange *ex);
	/* send_continue: the backend is reached; an Expect: 100-continue client may send. */
	void (*send_continue)(struct exchange *ex);
	/* failed: the exchange cannot complete. status is what to answer when no
	 * response head went out yet (502, 503, 504); after a head, the front aborts. */
	void (*failed)(struct exchange *ex, int status, const char *why);
	/* response_backlog: bytes the front still has queued to its client. */
	size_t (*response_backlog)(struct exchange *ex);
	/* request_resume: the backend drained; the front may read more body. */
	void (*request_resume)(struct exchange *ex);
	/* response_trailers: optional; the trailer fields of a chunked response,
	 * just before response_end. Without it trailers are dropped. */
	void (*response_trailers)(struct exchange *ex, const struct h1_header *hs, size_t n);
	/* response_high_water: the front's backlog above which the backend is
	 * not read (0: the default, 256 KiB). */
	size_t response_high_water;
};

enum exchange_state {
	EX_IDLE,
	EX_CONNECTING,
	EX_RESPONSE_HEAD,
	EX_RESPONSE_BODY,
	EX_TUNNEL,
	EX_DONE,
};

struct exchange {
	struct worker *w;
	struct req *req;
	const struct front_ops *ops;
	enum exchange_state state;

	struct cfg_service *svc;
	int backend;        /* index in svc->backends, -1 before the pick */
	bool acquired;      /* balancer_acquire done */
	bool retried;       /* the one retry on another backend is spent */
	bool pooled;        /* the connection came from the pool */
	bool fresh_only;    /* a pooled one failed: connect anew */
	char key[280];      /* "host:port" of the backend: pool key and log */
	struct resolver_req *resolving;
	struct bufferevent *up;
	struct evbuffer *pending; /* request bytes waiting for the connection */
	bool connected, request_done;

	struct chunked rchunk; /* chunked response body */
	char *rtrailers;       /* its trailer section, when the front takes trailers */
	int64_t resp_remaining; /* Content-Length bytes still due, -1 otherwise */
	bool resp_until_close, resp_keep_alive, resp_head_seen;
	size_t resp_scanned;
	int64_t connect_start_ms, sent_ms;
};

/* exchange_start: route ex->req (already routed to a proxy service) to a
 * backend. Calls back through ops, possibly before returning (a failure
 * found at once calls ops->failed from inside). */
void exchange_start(struct exchange *ex, struct worker *w, struct req *r,
		    const struct front_ops *ops);

/* exchange_request_body: n body bytes from src (decoded from the client's
 * framing; raw in a tunnel). */
void exchange_request_body(struct exchange *ex, struct evbuffer *src, size_t n);
void exchange_request_copy(struct exchange *ex, const char *p, size_t n);
/* exchange_request_end: the request body is complete. */
void exchange_request_end(struct exchange *ex);
/* exchange_request_end_trailers: the same, with trailer fields: sent when
 * the body is chunked toward the backend, dropped otherwise. */
void exchange_request_end_trailers(struct exchange *ex, const struct h1_header *hs, size_t n);
/* exchange_request_backlog: bytes queued toward the backend. */
size_t exchange_request_backlog(const struct exchange *ex);
/* exchange_response_drained: the front's client output fell below its low mark. */
void exchange_response_drained(struct exchange *ex);
/* exchange_finish: release everything (after response_end, failed, or an
 * abort by the front). Safe to call more than once. */
void exchange_finish(struct exchange *ex);
