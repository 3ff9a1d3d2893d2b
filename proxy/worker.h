/*
 * worker.h - one worker thread: its own event loop, listeners (SO_REUSEPORT),
 * resolver, backend pool, and its references to the current routing and
 * certificate snapshots. It never blocks and never mutates shared state
 * beyond atomics; the main thread (edge.c) talks to it through its mailbox.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "config/model.h"
#include "config/snapshot.h"
#include "proxy/core/mailbox.h"
#include "proxy/tls/cert_index.h"

struct edge;
struct pool;
struct resolver;
struct access_log;
struct access_log_buf;
struct tls_conn;
struct h1_conn;
struct h2_conn;
struct proxy_accept;

enum listener_kind { LISTENER_HTTP, LISTENER_HTTPS };

#define WORKER_SPARE_BUFS 64

struct worker {
	unsigned id;
	pthread_t thread;
	struct edge *edge;
	const struct cfg_static *cfg; /* the edge's static config, immutable while running */
	struct event_base *base;
	struct mailbox *mailbox;
	struct evdns_base *dns;
	struct resolver *resolver;
	struct pool *pool;
	struct evbuffer *scratch; /* a backend request head before it is written */
	/* Timeouts re-armed per request, as common timeouts of base (see
	 * loop_timeout.h). */
	struct {
		struct timeval client_header, client_idle, backend_response;
	} tv;
	struct access_log *alog_sink; /* set by the edge */
	struct access_log_buf *alog;

	struct route_snapshot *routes; /* this worker's reference to the current table */
	struct cert_index *certs;

	struct worker_listener *listeners;
	size_t n_listeners;
	uint16_t https_port; /* for redirects: the first HTTPS listener's port */

	struct h1_conn *conns;          /* every HTTP/1 client connection, for draining */
	struct h1_txn *h1_spare;        /* ended HTTP/1 transactions kept for reuse */
	struct evbuffer *spare_bufs[WORKER_SPARE_BUFS]; /* empty, for worker_buf_take */
	unsigned n_spare_bufs;
	unsigned n_h1_spare;
	struct h2_conn *h2_conns;       /* every HTTP/2 client connection */
	struct h2_stream *h2_spare;     /* freed streams kept for reuse */
	unsigned n_h2_spare;
	struct tls_conn *handshakes;    /* connections still in their TLS handshake */
	struct proxy_accept *pp_waiting; /* connections still awaiting their PROXY header */
	_Atomic unsigned long n_conns;  /* read by the main thread for status */
	bool draining;
};

/* worker_start: create the loop and listeners (fds pre-bound by the edge,
 * ownership taken) and start the thread. fds and kinds follow the config:
 * listen.http's addresses, then listen.https's (each one's proxy_protocol
 * is read from w->cfg by that position). */
int worker_start(struct worker *w, const int *fds, const enum listener_kind *kinds, size_t n);

/* Messages from the main thread (run on the worker through its mailbox). */
void worker_post_routes(struct worker *w, struct route_snapshot *snap); /* takes a reference */
void worker_post_certs(struct worker *w, struct cert_index *ix);        /* takes a reference */
void worker_post_drain(struct worker *w);
/* worker_post_stop: end the loop now, whatever is still open. */
void worker_post_stop(struct worker *w);
/* worker_post_cert_result: the answer to a certificate request for host. */
void worker_post_cert_result(struct worker *w, const char *host, bool ok, const char *err);

/* worker_join: wait for the thread to end and free the worker's state. */
void worker_join(struct worker *w);

/* worker_buf_take: an empty evbuffer, one kept by worker_buf_give if any
 * (no allocation); NULL when out of memory. A buffer a connection needs
 * only while it answers is taken and given back, so idle connections hold
 * none. */
struct evbuffer *worker_buf_take(struct worker *w);
/* worker_buf_give: b (emptied here) back, kept or freed. */
void worker_buf_give(struct worker *w, struct evbuffer *b);

/* Used by connections: */
void worker_conn_added(struct worker *w);
void worker_conn_removed(struct worker *w);
/* worker_request_cert: ask the main thread for host's certificate; the
 * answer comes back as worker_post_cert_result. */
void worker_request_cert(struct worker *w, const char *host, enum cfg_tls_mode mode);
/* worker_maybe_finish: when draining and nothing is left, stop the loop. */
void worker_maybe_finish(struct worker *w);
