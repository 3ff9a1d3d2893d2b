/*
 * h2_front.c - the HTTP/2 connection: nghttp2 session over a conn_io
 * (TLS or h2c), the frames' callbacks, flow of output with backpressure,
 * the defences a hostile client meets (budgets for resets, control and
 * empty frames, header blocks, timeouts) and graceful shutdown with two
 * GOAWAYs. h2_stream.c serves the requests.
 *
 * Output is only ever produced from the loop (h2_read, the write callback
 * and the kick event), never from inside an exchange's callback: sending
 * may close a stream and free its exchange, which must not happen under it.
 */
#include "proxy/http/h2_front.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "proxy/core/clock.h"
#include "proxy/core/log.h"
#include "proxy/edge.h"
#include "proxy/http/h2_conn.h"
#include "proxy/http/h2_mem.h"
#include "proxy/net/conn_io.h"
#include "proxy/net/direct_write.h"
#include "proxy/net/peer.h"

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_LEN (sizeof h2_preface - 1)

static void h2_flush(struct h2_conn *c);

bool h2_preface_prefix(const char *p, size_t n)
{
	return memcmp(p, h2_preface, n < H2_PREFACE_LEN ? n : H2_PREFACE_LEN) == 0;
}

struct h2_conn *h2_conn_next(const struct h2_conn *c)
{
	return c->next;
}

static struct timeval h2_tv(uint64_t ms)
{
	return (struct timeval){.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
}

bool h2_budget_take(struct h2_budget *b, unsigned burst, unsigned per_s)
{
	int64_t now = clock_mono_ms();
	int64_t leaked = (now - b->at_ms) * (int64_t)per_s;
	b->at_ms = now;
	b->level = b->level > leaked ? b->level - leaked : 0;
	b->level += 1000;
	return b->level <= (int64_t)burst * 1000;
}

size_t h2_queued(struct h2_conn *c)
{
	return evbuffer_get_length(c->stage) + evbuffer_get_length(conn_io_output(c->io));
}

void h2_schedule(struct h2_conn *c)
{
	event_active(c->kick, 0, 0);
}

/* h2_free: the one place a connection ends. */
static void h2_free(struct h2_conn *c, const char *why)
{
	log_debug("client %s: h2 closed (%s)", c->peer.ip, why);
	while (c->streams)
		h2_stream_free(c->streams);
	nghttp2_session_del(c->session);
	conn_io_free(c->io);
	conn_peer_clear(&c->peer);
	evbuffer_free(c->stage);
	event_free(c->timer);
	event_free(c->kick);
	event_free(c->goaway);
	struct worker *w = c->w;
	if (c->prev)
		c->prev->next = c->next;
	else
		w->h2_conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	worker_conn_removed(w);
	free(c);
	worker_maybe_finish(w);
}

void h2_conn_close_now(struct h2_conn *c)
{
	h2_free(c, "stopped");
}

/* h2_close: send what is queued (a GOAWAY, usually), then free. */
static void h2_close(struct h2_conn *c, const char *why)
{
	if (c->closing)
		return;
	log_debug("client %s: h2 closing (%s)", c->peer.ip, why);
	c->closing = true;
	conn_io_read_off(c->io);
	conn_io_write_low(c->io, 0);
	struct timeval tv = {5, 0}; /* a peer that reads nothing is not waited for */
	conn_io_timeouts(c->io, NULL, &tv);
	evtimer_del(c->timer);
	h2_schedule(c);
}

void h2_conn_violation(struct h2_conn *c, uint32_t code, const char *why)
{
	if (c->closing || c->violated)
		return;
	log_info("client %s: h2 connection error: %s", c->peer.ip, why);
	c->violated = true;
	nghttp2_session_terminate_session(c->session, code);
}

/* h2_arm_timer: before the SETTINGS exchange completes, its deadline runs;
 * afterwards the idle deadline runs while no stream is open. */
static void h2_arm_timer(struct h2_conn *c)
{
	if (!c->settled) {
		if (!c->settings_seen || !c->settings_acked)
			return;
		c->settled = true;
		evtimer_del(c->timer);
	}
	bool idle = c->n_streams == 0;
	if (idle && !c->idle_armed) {
		struct timeval tv = h2_tv(c->w->cfg->timeouts_ms.client_idle);
		evtimer_add(c->timer, &tv);
		c->idle_armed = true;
	} else if (!idle && c->idle_armed) {
		evtimer_del(c->timer);
		c->idle_armed = false;
	}
}

/* h2_run_drains: streams whose response buffer emptied ask their backend
 * for more. True when any did (more may be ready to send). */
static bool h2_run_drains(struct h2_conn *c)
{
	bool any = false;
	for (struct h2_stream *s = c->streams, *next; s; s = next) {
		next = s->next;
		if (!s->want_drain)
			continue;
		s->want_drain = false;
		if (s->in_exchange) {
			exchange_response_drained(&s->ex);
			any = true;
		}
	}
	return any;
}

static void h2_flush(struct h2_conn *c)
{
	if (c->closing)
		return;
	/* Frames are composed in the stage, in one contiguous chain (a TLS
	 * record and a write(2) per chain), then written straight to the
	 * socket: through the output each flush would cost an EPOLLOUT
	 * registration and its removal. */
	evbuffer_expand(c->stage, DIRECT_WRITE_COALESCE);
	for (int pass = 0;; pass++) {
		int rv = nghttp2_session_send(c->session);
		conn_io_write(c->io, c->stage);
		if (rv < 0) {
			h2_close(c, nghttp2_strerror(rv));
			return;
		}
		bool drained = h2_run_drains(c);
		if (evbuffer_get_length(conn_io_output(c->io)))
			break; /* the socket is full: the write callback resumes */
		if (!drained && !nghttp2_session_want_write(c->session))
			break;
		if (pass == 8) {
			h2_schedule(c); /* more to send: after the other connections' turn */
			break;
		}
	}
	if (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session)) {
		h2_close(c, c->violated ? "connection error" : "session over");
		return;
	}
	h2_arm_timer(c);
}

static void h2_read(struct conn_io *io, void *arg)
{
	struct h2_conn *c = arg;
	struct evbuffer *in = conn_io_input(io);
	while (evbuffer_get_length(in) && !c->closing && !c->violated) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		ssize_t rv = nghttp2_session_mem_recv(c->session, v.iov_base, v.iov_len);
		if (rv < 0) {
			/* A limit of ours (GOAWAY already queued) or a fatal error of
			 * nghttp2's: either way the client hears why before the close. */
			if (!c->violated)
				h2_conn_violation(c, rv == NGHTTP2_ERR_FLOODED ||
							     rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS
							     ? NGHTTP2_ENHANCE_YOUR_CALM
							     : NGHTTP2_PROTOCOL_ERROR,
						  nghttp2_strerror((int)rv));
			break;
		}
		evbuffer_drain(in, (size_t)rv);
	}
	if (c->violated)
		evbuffer_drain(in, evbuffer_get_length(in));
	h2_flush(c);
}

static void h2_write(struct conn_io *io, void *arg)
{
	struct h2_conn *c = arg;
	if (c->closing) {
		if (evbuffer_get_length(conn_io_output(io)) == 0)
			h2_schedule(c);
		return;
	}
	h2_flush(c);
}

static void h2_event(struct conn_io *io, short what, void *arg)
{
	struct h2_conn *c = arg;
	(void)io;
	h2_free(c, what & CONN_IO_TIMEOUT ? "timeout" : what & CONN_IO_EOF ? "eof" : "error");
}

static void h2_kick(evutil_socket_t fd, short what, void *arg)
{
	struct h2_conn *c = arg;
	(void)fd;
	(void)what;
	if (c->closing) {
		if (evbuffer_get_length(conn_io_output(c->io)) == 0)
			h2_free(c, "closed");
		return;
	}
	h2_flush(c);
}

/* h2_timer: the SETTINGS exchange did not complete, or the connection idled. */
static void h2_timer(evutil_socket_t fd, short what, void *arg)
{
	struct h2_conn *c = arg;
	(void)fd;
	(void)what;
	if (!c->settled) {
		if (!c->settings_seen) {
			h2_free(c, "no preface in time");
			return;
		}
		h2_conn_violation(c, NGHTTP2_SETTINGS_TIMEOUT, "SETTINGS not acknowledged");
	} else {
		c->idle_armed = false;
		nghttp2_session_terminate_session(c->session, NGHTTP2_NO_ERROR);
	}
	h2_flush(c);
}

/* h2_goaway_final: a grace period after the shutdown notice, the GOAWAY
 * naming the last stream that will be served. */
static void h2_goaway_final(evutil_socket_t fd, short what, void *arg)
{
	struct h2_conn *c = arg;
	(void)fd;
	(void)what;
	if (c->closing)
		return;
	nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE,
			      nghttp2_session_get_last_proc_stream_id(c->session), NGHTTP2_NO_ERROR,
			      NULL, 0);
	h2_flush(c);
}

void h2_conn_drain(struct h2_conn *c)
{
	if (c->draining || c->closing)
		return;
	c->draining = true;
	nghttp2_submit_shutdown_notice(c->session);
	struct timeval tv = h2_tv(H2_GOAWAY_GRACE_MS);
	evtimer_add(c->goaway, &tv);
	h2_schedule(c);
}

void h2_conn_routes_changed(struct h2_conn *c)
{
	const char *host = c->peer.sni[0] ? c->peer.sni : c->last_host;
	size_t len = c->peer.sni[0] ? strlen(c->peer.sni) : c->last_host_len;
	if (len == 0 || snapshot_tenant_for_host(c->w->routes, host, len))
		return;
	h2_conn_drain(c); /* its tenant is gone: finish the open streams, then close */
}

/* ---- nghttp2 callbacks ------------------------------------------------- */

static ssize_t h2_send_cb(nghttp2_session *session, const uint8_t *data, size_t length,
			  int flags, void *user_data)
{
	struct h2_conn *c = user_data;
	(void)session;
	(void)flags;
	if (h2_queued(c) >= H2_OUT_HIGH)
		return NGHTTP2_ERR_WOULDBLOCK;
	if (evbuffer_add(c->stage, data, length) < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	return (ssize_t)length;
}

/* h2_begin_frame: every frame's header, before its payload: the budgets. */
static int h2_begin_frame_cb(nghttp2_session *session, const nghttp2_frame_hd *hd,
			     void *user_data)
{
	struct h2_conn *c = user_data;
	(void)session;
	if (c->violated)
		return 0;
	bool empty = false;
	switch (hd->type) {
	case NGHTTP2_HEADERS:
		c->block_frames = 1;
		empty = hd->length == 0 && !(hd->flags & NGHTTP2_FLAG_END_HEADERS);
		break;
	case NGHTTP2_CONTINUATION:
		if (++c->block_frames > H2_BLOCK_FRAMES_MAX) {
			h2_conn_violation(c, NGHTTP2_ENHANCE_YOUR_CALM, "CONTINUATION flood");
			return NGHTTP2_ERR_CALLBACK_FAILURE;
		}
		empty = hd->length == 0 && !(hd->flags & NGHTTP2_FLAG_END_HEADERS);
		break;
	case NGHTTP2_DATA:
		empty = hd->length == 0 && !(hd->flags & NGHTTP2_FLAG_END_STREAM);
		break;
	case NGHTTP2_SETTINGS:
	case NGHTTP2_PING:
	case NGHTTP2_PRIORITY:
		if ((hd->type == NGHTTP2_PRIORITY || !(hd->flags & NGHTTP2_FLAG_ACK)) &&
		    !h2_budget_take(&c->control, H2_CONTROL_BURST, H2_CONTROL_PER_S))
			h2_conn_violation(c, NGHTTP2_ENHANCE_YOUR_CALM, "control frame flood");
		break;
	case NGHTTP2_RST_STREAM:
		if (!h2_budget_take(&c->resets, H2_RESET_BURST, H2_RESET_PER_S))
			h2_conn_violation(c, NGHTTP2_ENHANCE_YOUR_CALM, "too many stream resets");
		break;
	default:
		break;
	}
	if (empty && !h2_budget_take(&c->empty, H2_EMPTY_BURST, H2_EMPTY_PER_S))
		h2_conn_violation(c, NGHTTP2_ENHANCE_YOUR_CALM, "empty frame flood");
	/* Stop reading at once: the rest of a flood costs nothing. */
	return c->violated ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static int h2_begin_headers_cb(nghttp2_session *session, const nghttp2_frame *frame,
			       void *user_data)
{
	struct h2_conn *c = user_data;
	if (frame->hd.type != NGHTTP2_HEADERS || c->violated)
		return 0;
	int32_t id = frame->hd.stream_id;
	if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
		struct h2_stream *s = h2_stream_new(c, id);
		if (!s)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		nghttp2_session_set_stream_user_data(session, id, s);
		return 0;
	}
	struct h2_stream *s = nghttp2_session_get_stream_user_data(session, id);
	if (s && frame->headers.cat == NGHTTP2_HCAT_HEADERS) {
		s->trailers_phase = true;
		h2_head_reset(&s->head);
	}
	return 0;
}

static int h2_header_cb(nghttp2_session *session, const nghttp2_frame *frame,
			const uint8_t *name, size_t namelen, const uint8_t *value, size_t valuelen,
			uint8_t flags, void *user_data)
{
	struct h2_conn *c = user_data;
	(void)flags;
	if (c->violated || frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	struct h2_stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	return s ? h2_stream_header(s, name, namelen, value, valuelen) : 0;
}

static int h2_frame_recv_cb(nghttp2_session *session, const nghttp2_frame *frame,
			    void *user_data)
{
	struct h2_conn *c = user_data;
	if (c->violated)
		return 0;
	struct h2_stream *s;
	switch (frame->hd.type) {
	case NGHTTP2_SETTINGS:
		if (frame->hd.flags & NGHTTP2_FLAG_ACK)
			c->settings_acked = true;
		else
			c->settings_seen = true;
		break;
	case NGHTTP2_HEADERS:
		s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
		if (s)
			h2_stream_headers_done(s, frame->hd.flags & NGHTTP2_FLAG_END_STREAM);
		break;
	case NGHTTP2_DATA:
		s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
		if (s && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
			h2_stream_end(s);
		break;
	default:
		break;
	}
	return 0;
}

static int h2_data_chunk_cb(nghttp2_session *session, uint8_t flags, int32_t stream_id,
			    const uint8_t *data, size_t len, void *user_data)
{
	struct h2_conn *c = user_data;
	(void)flags;
	/* The connection window is given back at once: per-stream windows
	 * bound what waits for a slow backend, and no stream stalls another. */
	nghttp2_session_consume_connection(session, len);
	struct h2_stream *s = nghttp2_session_get_stream_user_data(session, stream_id);
	if (!s || c->violated) {
		nghttp2_session_consume_stream(session, stream_id, len);
		return 0;
	}
	h2_stream_data(s, data, len);
	return 0;
}

static int h2_stream_close_cb(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
			      void *user_data)
{
	(void)user_data;
	(void)error_code;
	struct h2_stream *s = nghttp2_session_get_stream_user_data(session, stream_id);
	if (s)
		h2_stream_free(s);
	return 0;
}

/* h2_frame_send: once our END_STREAM is out, a client still sending its
 * body is told to stop (RFC 9113 8.1). */
static int h2_frame_send_cb(nghttp2_session *session, const nghttp2_frame *frame,
			    void *user_data)
{
	(void)user_data;
	if ((frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS) ||
	    !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	struct h2_stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (s && !s->req_ended)
		nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
					  NGHTTP2_NO_ERROR);
	return 0;
}

/* h2_invalid_frame: nghttp2 reset a stream the client got wrong (a
 * malformed request, say); those count against the reset budget too. */
static int h2_invalid_frame_cb(nghttp2_session *session, const nghttp2_frame *frame,
			       int lib_error_code, void *user_data)
{
	struct h2_conn *c = user_data;
	(void)session;
	log_debug("client %s: h2 stream %d: %s", c->peer.ip, frame->hd.stream_id,
		  nghttp2_strerror(lib_error_code));
	if (!h2_budget_take(&c->resets, H2_RESET_BURST, H2_RESET_PER_S))
		h2_conn_violation(c, NGHTTP2_ENHANCE_YOUR_CALM, "too many malformed streams");
	return c->violated ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static nghttp2_session_callbacks *h2_callbacks;
static nghttp2_option *h2_options;
static pthread_once_t h2_once = PTHREAD_ONCE_INIT;

static void h2_init_once(void)
{
	nghttp2_session_callbacks *cb;
	if (nghttp2_session_callbacks_new(&cb) != 0)
		return;
	nghttp2_session_callbacks_set_send_callback(cb, h2_send_cb);
	nghttp2_session_callbacks_set_send_data_callback(cb, h2_send_data_cb);
	nghttp2_session_callbacks_set_on_begin_frame_callback(cb, h2_begin_frame_cb);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, h2_begin_headers_cb);
	nghttp2_session_callbacks_set_on_header_callback(cb, h2_header_cb);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, h2_frame_recv_cb);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, h2_data_chunk_cb);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2_stream_close_cb);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, h2_frame_send_cb);
	nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, h2_invalid_frame_cb);
	nghttp2_option *opt;
	if (nghttp2_option_new(&opt) != 0) {
		nghttp2_session_callbacks_del(cb);
		return;
	}
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_option_set_max_settings(opt, 16);
	nghttp2_option_set_max_outbound_ack(opt, 1000);
	/* Closed streams are kept only for RFC 7540's priority tree, which RFC
	 * 9113 deprecates: up to max_concurrent_streams of them (a stream and
	 * its state, 1.5 KiB per idle connection after its first requests). */
	nghttp2_option_set_no_closed_streams(opt, 1);
	h2_callbacks = cb;
	h2_options = opt;
}

/* h2_conn_start: the connection around io (callbacks not yet set). */
static struct h2_conn *h2_conn_start(struct worker *w, struct conn_io *io, SSL *ssl,
				     const char *sni, const struct conn_origin *o)
{
	pthread_once(&h2_once, h2_init_once);
	struct h2_conn *c = calloc(1, sizeof *c);
	if (!c || !h2_callbacks) {
		free(c);
		conn_io_free(io);
		return NULL;
	}
	c->w = w;
	c->io = io;
	conn_peer_init(&c->peer, w->edge, o, ssl, sni);
	c->timer = evtimer_new(w->base, h2_timer, c);
	c->kick = event_new(w->base, -1, 0, h2_kick, c);
	c->goaway = evtimer_new(w->base, h2_goaway_final, c);
	c->stage = evbuffer_new();
	const struct cfg_static *cfg = w->cfg;
	nghttp2_settings_entry iv[] = {
		{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cfg->http2.max_concurrent_streams},
		{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW},
		{NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)cfg->limits.header_size},
		{NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
	};
	if (!c->timer || !c->kick || !c->goaway || !c->stage ||
	    nghttp2_session_server_new3(&c->session, h2_callbacks, c, h2_options, h2_mem()) != 0 ||
	    nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) ||
	    nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW)) {
		if (c->session)
			nghttp2_session_del(c->session);
		event_free(c->timer);
		event_free(c->kick);
		event_free(c->goaway);
		if (c->stage)
			evbuffer_free(c->stage);
		conn_io_free(io);
		conn_peer_clear(&c->peer);
		free(c);
		return NULL;
	}
	conn_io_setcb(io, h2_read, h2_write, h2_event, c);
	conn_io_read_high(io, 0); /* nghttp2 takes all; its windows bound it */
	conn_io_write_low(io, H2_OUT_LOW);
	/* Output that makes no progress this long means a peer that stopped reading. */
	struct timeval wt = h2_tv(cfg->timeouts_ms.client_idle);
	conn_io_timeouts(io, NULL, &wt);
	struct timeval hs = h2_tv(cfg->timeouts_ms.client_header);
	evtimer_add(c->timer, &hs); /* preface and SETTINGS ACK */
	c->next = w->h2_conns;
	if (w->h2_conns)
		w->h2_conns->prev = c;
	w->h2_conns = c;
	worker_conn_added(w);
	conn_io_read_on(io); /* frames read ahead with the client's Finished come from the loop */
	if (w->draining)
		h2_conn_drain(c);
	return c;
}

struct h2_conn *h2_conn_new(struct worker *w, int fd, SSL *ssl, const char *sni,
			    const struct conn_origin *o)
{
	/* From here io owns ssl and fd, or freed them (as h1_conn_new). */
	struct conn_io *io = conn_io_new(w->base, fd, ssl);
	if (!io)
		return NULL;
	struct h2_conn *c = h2_conn_start(w, io, ssl, sni, o);
	if (c)
		h2_schedule(c); /* our SETTINGS go first */
	return c;
}

struct h2_conn *h2_conn_adopt(struct worker *w, struct conn_io *io, const struct conn_origin *o)
{
	struct h2_conn *c = h2_conn_start(w, io, NULL, NULL, o);
	if (c && evbuffer_get_length(conn_io_input(io)))
		h2_read(io, c);
	return c;
}
