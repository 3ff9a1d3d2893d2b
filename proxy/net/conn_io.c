#include "proxy/net/conn_io.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event_struct.h> /* the two events live in struct conn_io */
#include <openssl/err.h>

#include "proxy/net/socket_read.h"
#include "proxy/tls/tls_wire.h"

#define CONN_IO_READ_MAX (64 * 1024) /* per turn: then the next connection's */
#define TLS_READ_CHUNK (16 * 1024)   /* a record's payload at most */
/* OpenSSL hands the BIO one record (16 KiB of payload at most) at a time. Output
 * above one record's worth is encrypted corked, up to TLS_WRITE_BATCH, and leaves
 * in one write(2): a 64 KiB answer took six writes and as many TCP pushes,
 * and 1.65x the CPU. */
#define TLS_WRITE_BATCH (64 * 1024)
#define TLS_RECORD_EXTRA 29 /* most a record adds: TLS 1.2 AES-GCM (1.3: 22) */

struct conn_io {
	struct event ev_read, ev_write;
	SSL *ssl; /* NULL in the clear */
	struct evbuffer *in, *out;
	struct evbuffer_cb_entry *drain_watch; /* on in while paused */
	conn_io_cb on_read, on_write;
	conn_io_event_cb on_event;
	void *arg;
	size_t read_high, write_low;
	struct timeval rd_tv, wr_tv;
	short held_fail;   /* an end or error met after data, reported next */
	bool has_rd_tv, has_wr_tv;
	bool reading;      /* the front wants input */
	bool paused;       /* ... but the input is at the high watermark */
	bool read_watched; /* ev_read is added */
	bool write_armed;  /* ev_write is added */
	bool stopped;
	bool failed;       /* an end, error or timeout was met */
	bool notified;     /* the close_notify went (conn_io_write_last) */
	bool batch_held;   /* the socket refused part of a batch: tls_wire holds it */
};

static const struct timeval *rd_timeout(const struct conn_io *io)
{
	return io->has_rd_tv ? &io->rd_tv : NULL;
}

static const struct timeval *wr_timeout(const struct conn_io *io)
{
	return io->has_wr_tv ? &io->wr_tv : NULL;
}

/* held_bytes: input that no readiness will announce: records OpenSSL read
 * ahead, or an end met after the last data. */
static bool held_bytes(const struct conn_io *io)
{
	return io->held_fail || (io->ssl && SSL_has_pending(io->ssl));
}

/* watch_read: ev_read added while reading is on and not paused, else
 * removed (which also drops a rerun that was due). */
static void watch_read(struct conn_io *io)
{
	bool want = io->reading && !io->paused && !io->stopped;
	if (want == io->read_watched)
		return;
	io->read_watched = want;
	if (!want) {
		event_del(&io->ev_read);
		return;
	}
	event_add(&io->ev_read, rd_timeout(io));
	if (held_bytes(io))
		event_active(&io->ev_read, EV_READ, 1);
}

/* input_drained: while paused, a drain below the high watermark resumes. */
static void input_drained(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn_io *io = arg;
	if (!info->n_deleted || evbuffer_get_length(in) >= io->read_high)
		return;
	evbuffer_remove_cb_entry(in, io->drain_watch);
	io->drain_watch = NULL;
	io->paused = false;
	watch_read(io);
}

/* pause_if_full: at the high watermark, stop reading until a drain. */
static void pause_if_full(struct conn_io *io)
{
	if (!io->read_high || io->paused || evbuffer_get_length(io->in) < io->read_high)
		return;
	io->drain_watch = evbuffer_add_cb(io->in, input_drained, io);
	if (!io->drain_watch)
		return; /* out of memory: reading goes on past the mark */
	io->paused = true;
	watch_read(io);
}

static void fail(struct conn_io *io, short what)
{
	io->failed = true;
	if (what & CONN_IO_READING) {
		io->reading = false;
		watch_read(io);
	} else if (io->write_armed) {
		event_del(&io->ev_write);
		io->write_armed = false;
	}
	if (io->on_event)
		io->on_event(io, what, io->arg);
}

/* tls_failure: what an SSL_read that returned r <= 0 means: 0 for "no more
 * for now", else the end or error to report. */
static short tls_failure(SSL *ssl, int r)
{
	int err = SSL_get_error(ssl, r);
	unsigned long e = ERR_peek_error();
	short what;
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
		what = 0; /* WANT_WRITE: a key update's answer waits for our next write */
	else if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && !e && !errno) ||
		 (err == SSL_ERROR_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING))
		what = CONN_IO_EOF; /* close_notify, or a close without it (allowed) */
	else
		what = CONN_IO_ERROR;
	ERR_clear_error();
	return what;
}

/* tls_read_some: records into the input, up to about max bytes (a record
 * may go over). The first SSL_read reads the socket; the next ones take
 * only what OpenSSL holds. */
static size_t tls_read_some(struct conn_io *io, size_t max, short *failed)
{
	size_t got = 0;
	while (got < max && (got == 0 || SSL_has_pending(io->ssl))) {
		struct evbuffer_iovec v;
		if (evbuffer_reserve_space(io->in, TLS_READ_CHUNK, &v, 1) < 1) {
			*failed = CONN_IO_ERROR;
			break;
		}
		/* SSL_get_error needs an empty queue; clearing one that is
		 * (nearly always) empty walked its 16 slots for 840
		 * instructions a read, a peek is a third of that. */
		if (ERR_peek_error())
			ERR_clear_error();
		errno = 0;
		int r = SSL_read(io->ssl, v.iov_base, v.iov_len > INT_MAX ? INT_MAX : (int)v.iov_len);
		if (r <= 0) {
			evbuffer_commit_space(io->in, &v, 0);
			*failed = tls_failure(io->ssl, r);
			break;
		}
		v.iov_len = (size_t)r;
		evbuffer_commit_space(io->in, &v, 1);
		got += (size_t)r;
	}
	return got;
}

static size_t read_room(const struct conn_io *io)
{
	if (!io->read_high)
		return CONN_IO_READ_MAX;
	size_t len = evbuffer_get_length(io->in);
	size_t room = len < io->read_high ? io->read_high - len : 0;
	return room < CONN_IO_READ_MAX ? room : CONN_IO_READ_MAX;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct conn_io *io = arg;
	if (!io->read_watched)
		return; /* a rerun that reading was turned off before */
	if (what & EV_TIMEOUT) {
		fail(io, CONN_IO_READING | CONN_IO_TIMEOUT);
		return;
	}
	if (io->ssl)
		tls_wire_readable(io->ssl);
	if (io->held_fail) {
		short held = io->held_fail;
		io->held_fail = 0;
		fail(io, (short)(CONN_IO_READING | held));
		return;
	}
	size_t room = read_room(io);
	if (room == 0) {
		pause_if_full(io);
		return;
	}
	short failed = 0;
	size_t got;
	if (io->ssl) {
		got = tls_read_some(io, room, &failed);
	} else {
		ssize_t n = socket_read_some(fd, io->in, room);
		got = n > 0 ? (size_t)n : 0;
		failed = n == -1 ? CONN_IO_EOF : n < -1 ? CONN_IO_ERROR : 0;
	}
	if (!got) {
		if (failed)
			fail(io, (short)(CONN_IO_READING | failed));
		return;
	}
	io->held_fail = failed;
	io->failed |= failed != 0;
	pause_if_full(io);
	/* What OpenSSL still holds, or an end met after the data: no
	 * readiness announces either, so the loop runs this again. */
	if (io->read_watched && held_bytes(io))
		event_active(&io->ev_read, EV_READ, 1);
	if (io->on_read)
		io->on_read(io, io->arg); /* last: it may free io */
}

/* write_records: SSL_write of buf's bytes, up to cap of them, until the
 * socket refuses more. The bytes of a refused SSL_write stay first in buf,
 * so its retry sees them again (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER allows
 * their move). Bytes taken, or -1 on an error. */
static ssize_t write_records(struct conn_io *io, struct evbuffer *buf, size_t cap)
{
	size_t done = 0;
	while (done < cap) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(buf, -1, NULL, &v, 1) < 1)
			break;
		if (ERR_peek_error())
			ERR_clear_error();
		size_t len = v.iov_len < cap - done ? v.iov_len : cap - done;
		int n = SSL_write(io->ssl, v.iov_base, len > INT_MAX ? INT_MAX : (int)len);
		if (n <= 0) {
			int err = SSL_get_error(io->ssl, n);
			ERR_clear_error();
			if (err == SSL_ERROR_WANT_WRITE)
				break;
			io->failed = true;
			return -1;
		}
		evbuffer_drain(buf, (size_t)n);
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* write_some: the output to the socket until it refuses more; under TLS,
 * more than a record's worth in batches (TLS_WRITE_BATCH), a write each.
 * What of a batch the socket refuses stays held by tls_wire, to go first;
 * the write event stays on for it (held_left). Bytes taken from buf, or -1
 * on an error. */
static ssize_t write_some(struct conn_io *io, struct evbuffer *buf)
{
	if (!io->ssl) {
		int n = evbuffer_write(buf, event_get_fd(&io->ev_write));
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
		return n;
	}
	/* A refused batch goes first, and none joins it meanwhile: what is
	 * held stays under one batch and a record. */
	if (io->batch_held) {
		int f = tls_wire_flush(io->ssl);
		if (f <= 0) {
			io->failed |= f < 0;
			return f < 0 ? -1 : 0;
		}
		io->batch_held = false;
	}
	/* conn_io_write_last holds all it writes, and sends it itself. */
	if (tls_wire_corked(io->ssl))
		return write_records(io, buf, SIZE_MAX);
	size_t total = 0;
	for (;;) {
		size_t len = evbuffer_get_length(buf);
		if (len <= TLS_READ_CHUNK) { /* one record: one write anyway */
			ssize_t n = write_records(io, buf, SIZE_MAX);
			return n < 0 ? -1 : (ssize_t)total + n;
		}
		/* A tail of a record or less joins the batch before it. */
		size_t cap = len <= TLS_WRITE_BATCH + TLS_READ_CHUNK ? len : TLS_WRITE_BATCH;
		/* A session ticket held since the handshake leaves with the first. */
		if (tls_wire_reserve(io->ssl, cap + (cap / TLS_READ_CHUNK + 1) * TLS_RECORD_EXTRA) < 0) {
			io->failed = true;
			return -1;
		}
		tls_wire_cork(io->ssl, true);
		ssize_t n = write_records(io, buf, cap);
		tls_wire_cork(io->ssl, false);
		int f = n < 0 ? -1 : tls_wire_flush(io->ssl);
		if (f < 0) {
			io->failed = true;
			return -1;
		}
		total += (size_t)n;
		io->batch_held = f == 0;
		/* Refused: by the socket, or by OpenSSL's socket BIO, which
		 * holds nothing (an SSL that is not on a tls_wire). */
		if (f == 0 || (size_t)n < cap)
			return (ssize_t)total;
	}
}

/* held_left: part of a batch waits for the socket. */
static bool held_left(const struct conn_io *io)
{
	return io->batch_held && tls_wire_held(io->ssl);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
	struct conn_io *io = arg;
	(void)fd;
	if (what & EV_TIMEOUT) {
		fail(io, CONN_IO_WRITING | CONN_IO_TIMEOUT);
		return;
	}
	/* Held records the socket refused. With output queued, the writev of
	 * the next record (or batch) takes them along (tls_wire). */
	bool held_went = false;
	if (io->ssl && !evbuffer_get_length(io->out) && tls_wire_held(io->ssl)) {
		int f = tls_wire_flush(io->ssl);
		if (f < 0) {
			fail(io, CONN_IO_WRITING | CONN_IO_ERROR);
			return;
		}
		if (f == 0)
			return;
		held_went = true;
	}
	ssize_t n = write_some(io, io->out);
	if (n < 0) {
		fail(io, CONN_IO_WRITING | CONN_IO_ERROR);
		return;
	}
	size_t left = evbuffer_get_length(io->out);
	if (left == 0 && !held_left(io)) {
		event_del(&io->ev_write);
		io->write_armed = false;
	}
	if ((n > 0 || held_went) && left <= io->write_low && io->on_write)
		io->on_write(io, io->arg); /* last: it may free io */
}

/* arm_write: wait for the socket to take what is queued or held. */
static void arm_write(struct conn_io *io)
{
	if (io->write_armed || io->stopped)
		return;
	io->write_armed = true;
	event_add(&io->ev_write, wr_timeout(io));
}

/* output_grew: bytes added to an idle output wait for the socket. */
static void output_grew(struct evbuffer *out, const struct evbuffer_cb_info *info, void *arg)
{
	(void)out;
	if (info->n_added)
		arm_write(arg);
}

struct conn_io *conn_io_new(struct event_base *base, int fd, SSL *ssl)
{
	struct conn_io *io = calloc(1, sizeof *io);
	if (!io)
		goto fail;
	io->ssl = ssl;
	io->in = evbuffer_new();
	io->out = evbuffer_new();
	if (!io->in || !io->out || !evbuffer_add_cb(io->out, output_grew, io) ||
	    event_assign(&io->ev_read, base, fd, EV_READ | EV_PERSIST, on_readable, io) ||
	    event_assign(&io->ev_write, base, fd, EV_WRITE | EV_PERSIST, on_writable, io)) {
		if (io->in)
			evbuffer_free(io->in);
		if (io->out)
			evbuffer_free(io->out);
		free(io);
		goto fail;
	}
	if (ssl)
		SSL_set_read_ahead(ssl, 1);
	return io;
fail:
	if (ssl)
		SSL_free(ssl);
	close(fd);
	return NULL;
}

/* close_notify: a clean close says so (RFC 9112 9.8), so that a client
 * can tell a whole answer from one cut by whoever closed the TCP stream.
 * Once: a socket that refuses the alert now gets no second try. Never
 * after a fatal error (OpenSSL forbids it), a stop (an aborted answer
 * must look broken) or with output unwritten. */
static void close_notify(struct conn_io *io)
{
	if (!io->ssl || io->notified || io->failed || io->stopped || evbuffer_get_length(io->out))
		return;
	if (ERR_peek_error())
		ERR_clear_error();
	if (SSL_shutdown(io->ssl) < 0)
		ERR_clear_error();
}

void conn_io_free(struct conn_io *io)
{
	event_del(&io->ev_read);
	event_del(&io->ev_write);
	evutil_socket_t fd = event_get_fd(&io->ev_read);
	close_notify(io);
	if (io->ssl)
		SSL_free(io->ssl);
	close(fd);
	evbuffer_free(io->in);
	evbuffer_free(io->out);
	free(io);
}

void conn_io_setcb(struct conn_io *io, conn_io_cb on_read, conn_io_cb on_write,
		   conn_io_event_cb on_event, void *arg)
{
	io->on_read = on_read;
	io->on_write = on_write;
	io->on_event = on_event;
	io->arg = arg;
}

struct evbuffer *conn_io_input(struct conn_io *io)
{
	return io->in;
}

struct evbuffer *conn_io_output(struct conn_io *io)
{
	return io->out;
}

int conn_io_fd(const struct conn_io *io)
{
	return event_get_fd(&io->ev_read);
}

void conn_io_read_on(struct conn_io *io)
{
	io->reading = true;
	watch_read(io);
}

void conn_io_read_off(struct conn_io *io)
{
	io->reading = false;
	watch_read(io);
}

bool conn_io_reading(const struct conn_io *io)
{
	return io->reading;
}

void conn_io_read_high(struct conn_io *io, size_t high)
{
	io->read_high = high;
	if (io->paused && (!high || evbuffer_get_length(io->in) < high)) {
		evbuffer_remove_cb_entry(io->in, io->drain_watch);
		io->drain_watch = NULL;
		io->paused = false;
		watch_read(io);
	}
}

void conn_io_write_low(struct conn_io *io, size_t low)
{
	io->write_low = low;
}

/* forget_timeout: libevent keeps an event's timeout through event_add(ev,
 * NULL) and event_del (a persistent event re-arms it at its next run);
 * only assigning the event anew drops it. */
static void forget_timeout(struct conn_io *io, struct event *ev, bool added,
			   event_callback_fn fn, short events)
{
	event_del(ev);
	event_assign(ev, event_get_base(ev), event_get_fd(ev), events, fn, io);
	if (added)
		event_add(ev, NULL);
}

void conn_io_timeouts(struct conn_io *io, const struct timeval *rd, const struct timeval *wr)
{
	if (!rd && !wr && !io->has_rd_tv && !io->has_wr_tv)
		return; /* the common case: nothing set, nothing to clear */
	bool drop_rd = io->has_rd_tv && !rd, drop_wr = io->has_wr_tv && !wr;
	io->has_rd_tv = rd != NULL;
	io->has_wr_tv = wr != NULL;
	if (rd)
		io->rd_tv = *rd;
	if (wr)
		io->wr_tv = *wr;
	if (drop_rd) {
		forget_timeout(io, &io->ev_read, io->read_watched, on_readable, EV_READ | EV_PERSIST);
		if (io->read_watched && held_bytes(io))
			event_active(&io->ev_read, EV_READ, 1); /* the rerun event_del dropped */
	} else if (rd && io->read_watched) {
		event_add(&io->ev_read, rd); /* re-adding applies the new timeout */
	}
	if (drop_wr)
		forget_timeout(io, &io->ev_write, io->write_armed, on_writable, EV_WRITE | EV_PERSIST);
	else if (wr && io->write_armed)
		event_add(&io->ev_write, wr);
}

void conn_io_write(struct conn_io *io, struct evbuffer *stage)
{
	if (evbuffer_get_length(stage) == 0)
		return;
	/* An error here is met again from the output, and reported then. */
	if (evbuffer_get_length(io->out) == 0 && !io->stopped)
		write_some(io, stage);
	if (evbuffer_get_length(stage))
		evbuffer_add_buffer(io->out, stage);
	else if (held_left(io))
		arm_write(io);
}

void conn_io_write_last(struct conn_io *io, struct evbuffer *stage)
{
	if (!io->ssl || io->notified || io->failed || io->stopped || evbuffer_get_length(io->out)) {
		if (stage)
			conn_io_write(io, stage);
		return;
	}
	tls_wire_cork(io->ssl, true);
	bool whole = !stage || (write_some(io, stage) >= 0 && evbuffer_get_length(stage) == 0);
	if (whole) {
		if (ERR_peek_error())
			ERR_clear_error();
		/* Refused (a handshake message still due, say): conn_io_free
		 * tries again. */
		if (SSL_shutdown(io->ssl) >= 0)
			io->notified = true;
		else
			ERR_clear_error();
	}
	tls_wire_cork(io->ssl, false);
	/* An error here is met again from the write event, and reported then. */
	bool all_sent = tls_wire_flush(io->ssl) == 1;
	if (stage && evbuffer_get_length(stage))
		evbuffer_add_buffer(io->out, stage);
	if (!all_sent)
		arm_write(io);
}

bool conn_io_flushed(const struct conn_io *io)
{
	/* Held records (a batch's, or conn_io_write_last's) keep the write
	 * event on; a session ticket held since the handshake waits for the
	 * next write and is no answer's. */
	return evbuffer_get_length(io->out) == 0 && !io->write_armed;
}

void conn_io_stop(struct conn_io *io)
{
	io->stopped = true;
	watch_read(io);
	if (io->write_armed) {
		event_del(&io->ev_write);
		io->write_armed = false;
	}
}
