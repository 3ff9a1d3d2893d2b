/*
 * h2_conn.h - the HTTP/2 client connection shared by h2_front.c (the
 * connection: I/O, nghttp2 session, defences, shutdown) and h2_stream.c
 * (one request per stream: its head, dispatch, body both ways, and the
 * exchange's callbacks). Internal to proxy/http.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include "proxy/http/exchange.h"
#include "proxy/http/h2_request.h"
#include "proxy/http/req.h"
#include "proxy/net/conn_io.h"
#include "proxy/net/peer.h"
#include "proxy/worker.h"

#define H2_STREAM_WINDOW 65535          /* per stream: bounds an unread request body */
#define H2_CONN_WINDOW (4 * 1024 * 1024) /* consumed at once: never the bottleneck */
#define H2_RESP_HIGH (64 * 1024)        /* a stream's response bytes held at most ... */
#define H2_RESP_LOW (16 * 1024)         /* ... and where the backend is read again */
#define H2_OUT_HIGH (64 * 1024)         /* connection output: no more frames above */
#define H2_OUT_LOW (16 * 1024)
#define H2_BODY_HIGH (64 * 1024)        /* request body queued toward a backend */
#define H2_GOAWAY_GRACE_MS 1000         /* between the shutdown notice and the last GOAWAY */

/* Defence budgets: a leaky bucket each; an event adds one, `per_s` leak
 * per second, more than `burst` in the bucket closes the connection. */
#define H2_RESET_BURST 200   /* client RST_STREAMs and streams it made us reset */
#define H2_RESET_PER_S 20
#define H2_CONTROL_BURST 1000 /* SETTINGS, PING, PRIORITY */
#define H2_CONTROL_PER_S 100
#define H2_EMPTY_BURST 100   /* DATA, HEADERS or CONTINUATION frames that carry nothing */
#define H2_EMPTY_PER_S 10
#define H2_BLOCK_FRAMES_MAX 8 /* frames of one header block (HEADERS + CONTINUATIONs) */

struct h2_budget {
	int64_t level; /* thousandths of an event */
	int64_t at_ms;
};

struct h2_stream;

struct h2_conn {
	struct h2_conn *next, *prev;
	struct worker *w;
	struct conn_io *io;
	struct evbuffer *stage; /* frames of this flush, before the socket */
	nghttp2_session *session;
	struct event *timer;  /* preface, SETTINGS ACK and idle deadlines */
	struct event *kick;   /* deferred flush, or free once closed */
	struct event *goaway; /* the last GOAWAY after the shutdown notice */

	struct conn_peer peer;

	struct h2_stream *streams; /* every stream with state of ours */
	unsigned n_streams;
	char last_host[256];       /* of the last request, for tenant removal */
	size_t last_host_len;

	bool settings_seen;   /* the client's first SETTINGS arrived */
	bool settings_acked;  /* ours were acknowledged */
	bool draining;        /* shutdown notice sent */
	bool settled;         /* SETTINGS seen and acknowledged: the idle deadline runs */
	bool idle_armed;
	bool violated;        /* a connection error is queued: read nothing more */
	bool closing;         /* flushing what is queued, then free */

	struct h2_budget resets, control, empty;
	unsigned block_frames; /* of the header block being received */
};

/* One stream: a request and its exchange. */
struct h2_stream {
	struct h2_stream *next, *prev;
	struct h2_conn *c;
	int32_t id;

	struct h2_head head; /* the block under collection (request head, then trailers) */
	bool trailers_phase;

	bool has_req;     /* req holds a dispatched request (to log) */
	bool req_ended;   /* the client's END_STREAM arrived */
	bool in_exchange;
	bool ws;          /* extended CONNECT for a WebSocket (RFC 8441) */
	bool tunnel;      /* the backend switched protocols */
	char ws_key[H2_WS_KEY_SIZE];
	uint64_t body_seen, max_body;
	size_t unconsumed; /* request bytes not yet given back as window */
	struct req req;
	struct exchange ex;

	/* The response: head submitted, body bytes waiting for DATA frames. */
	struct evbuffer *resp;
	bool resp_head_sent, resp_eof, deferred, want_drain;
	nghttp2_nv *trailers;
	size_t n_trailers;
	char *trailer_buf;
};

/* h2_front.c side, used by streams: */
void h2_schedule(struct h2_conn *c);                /* flush from the loop soon */
size_t h2_queued(struct h2_conn *c);                /* output bytes not yet in the socket */
bool h2_budget_take(struct h2_budget *b, unsigned burst, unsigned per_s);
/* h2_conn_violation: the client broke a limit: GOAWAY with code, then close. */
void h2_conn_violation(struct h2_conn *c, uint32_t code, const char *why);

/* h2_stream.c side, used by the connection: */
/* h2_send_data_cb: nghttp2's send_data_callback: a DATA frame whose
 * payload moves from the stream's response buffer without a copy. */
int h2_send_data_cb(nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd,
		    size_t length, nghttp2_data_source *source, void *user_data);
extern const struct front_ops h2_ops;
struct h2_stream *h2_stream_new(struct h2_conn *c, int32_t id);
void h2_stream_free(struct h2_stream *s);
/* h2_stream_header: one field of the block under collection; an nghttp2
 * error code to return from the callback, or 0. */
int h2_stream_header(struct h2_stream *s, const uint8_t *name, size_t namelen,
		     const uint8_t *value, size_t valuelen);
/* h2_stream_headers_done: the block is complete (request head or trailers). */
void h2_stream_headers_done(struct h2_stream *s, bool end_stream);
void h2_stream_data(struct h2_stream *s, const uint8_t *data, size_t len);
void h2_stream_end(struct h2_stream *s);
