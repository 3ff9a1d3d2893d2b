/*
 * h1_conn.h - the HTTP/1.1 client connection shared by the front's two
 * halves: h1_front.c (the connection, reading requests, dispatch) and
 * h1_response.c (writing answers: portier's own and the backend's).
 * Internal to proxy/http.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <http_parser.h>

#include "proxy/http/chunked.h"
#include "proxy/http/exchange.h"
#include "proxy/http/req.h"
#include "proxy/net/conn_io.h"
#include "proxy/net/peer.h"
#include "proxy/worker.h"

#define H1_HIGH_WATER (256 * 1024)
#define H1_LOW_WATER (64 * 1024)
#define H1_READ_HIGH_WATER (256 * 1024) /* input held at most, pipelined bytes included */
#define H1_LINGER_S 2                  /* lingering close: at most this long */
#define H1_LINGER_BYTES (1024 * 1024)  /* ... or this much dropped */

enum h1_state {
	H1_HEAD,    /* waiting for (more of) a request head */
	H1_BODY,    /* streaming the request body to the backend */
	H1_WAIT,    /* request complete, response under way */
	H1_TUNNEL,  /* after 101: raw bytes both ways */
	H1_CLOSING, /* flushing the last bytes, then close */
};

/* A request's head copy and field table live in its transaction when they
 * fit: otherwise two allocations a request, the table out of malloc's
 * per-thread cache (limits.header_count's default of 100, plus one, is
 * 3.2 KiB). */
#define H1_TXN_FIELDS 101
#define H1_TXN_HEAD 2048

/* h1_txn: one request's state, taken when a request starts and given back
 * (to the worker's spares) when it is over, so an idle keep-alive
 * connection does not carry it. */
struct h1_txn {
	struct h1_conn *c;
	struct h1_txn *next_spare; /* on the worker's list of ended ones */
	http_parser parser; /* the head's; bodies use chunk */
	struct chunked chunk;
	struct req req;
	struct exchange ex;
	/* Last, so that reuse zeroes only what comes before. */
	struct h1_header fields[H1_TXN_FIELDS];
	char head[H1_TXN_HEAD];
};

struct h1_conn {
	struct h1_conn *next, *prev;
	struct worker *w;
	struct conn_io *io;
	struct event *timer; /* header and idle deadlines */
	struct event *kick;  /* deferred start of the next pipelined request */
	enum listener_kind kind;
	enum h1_state state;
	struct conn_peer peer;

	size_t scanned;       /* head bytes already searched for CRLFCRLF */
	bool head_timer_armed;
	unsigned n_requests;

	struct h1_txn *txn;   /* while in_request or in_exchange, else NULL */
	bool in_request;      /* txn->req holds a request */
	bool in_exchange;     /* txn->ex is live */
	char *last_host;      /* the last request's host: h1_conn_routes_changed */
	bool close_after;     /* close once this response is out */
	bool resp_head_sent, resp_chunked;
	bool staging;         /* the answer is composed in stage, not in the output */
	struct evbuffer *stage;
	int64_t body_left;    /* Content-Length bytes still to read */
	uint64_t body_seen;
	uint64_t max_body;    /* 0 = unlimited */
	bool body_too_large;
	bool aborted;         /* closing without flushing */
	bool linger_wanted;   /* a refused body may still be arriving */
	bool linger;          /* closing: drop what the client still sends */
	size_t lingered;
};

/* The front's callbacks for its exchange (h1_response.c). */
extern const struct front_ops h1_ops;

/* h1_txn_begin: c->txn, allocated (zeroed) if there is none; NULL when
 * out of memory. h1_txn_end ends it (freed, or kept by the worker for
 * reuse) once neither request nor exchange is live; only from a loop
 * callback (h1_kick) or h1_free. */
struct h1_txn *h1_txn_begin(struct h1_conn *c);
void h1_txn_end(struct h1_conn *c);
struct h1_conn *h1_of(struct exchange *ex);
/* h1_read: the read callback, also run to resume reading. */
void h1_read(struct conn_io *io, void *arg);
/* h1_close_after_flush: send what is queued, then close (lingering when a
 * refused body may still arrive); never frees at once. */
void h1_close_after_flush(struct h1_conn *c);
/* h1_abort: close without flushing, from the loop. */
void h1_abort(struct h1_conn *c);
/* h1_end_request: account, log and forget the current request. */
void h1_end_request(struct h1_conn *c);
/* h1_respond: a complete response portier makes itself. */
void h1_respond(struct h1_conn *c, int status, const char *ctype, const char *body,
		size_t body_len, const char *extra);
/* h1_error: status with a short text body; close when the body is unread. */
void h1_error(struct h1_conn *c, int status, bool close);
/* h1_finish_response: after an answer: the next request, or close. */
void h1_finish_response(struct h1_conn *c);
/* h1_out: where the answer's bytes go now: the stage, or the output. An
 * answer that starts with nothing queued is staged and written straight to
 * the socket from the loop (h1_push): through the output each answer
 * would cost an EPOLLOUT registration and its removal. */
struct evbuffer *h1_out(struct h1_conn *c);
/* h1_stage_begin: stage what follows when nothing is queued; h1_out. */
struct evbuffer *h1_stage_begin(struct h1_conn *c);
/* h1_push: write the stage to the socket (what it does not take is queued
 * in the output as usual). Run from the loop (the kick). */
void h1_push(struct h1_conn *c);
void h1_push_last(struct h1_conn *c);
