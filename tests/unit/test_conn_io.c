/*
 * test_conn_io.c - conn_io on one end of a socketpair, under TLS (the peer
 * a client SSL on the other end, the handshake done in process) and in the
 * clear, driven by a real event_base one pass at a time. Each case runs on
 * a fixture of its own; the cases the two modes share run in both.
 *
 * Reading: read-ahead on, nothing read before conn_io_read_on; records
 * queued together come in one read callback, up to 64 KiB a turn, the rest
 * in a rerun behind the callbacks already due even when OpenSSL alone holds
 * it; at the read high watermark reading pauses and a drain of the input
 * resumes it, bytes OpenSSL holds included; with reading off bytes wait and
 * conn_io_read_on brings them from the loop; an end (close_notify or not),
 * a reset, bytes that are no TLS and the read timeout reach the event
 * callback with CONN_IO_READING, after the data before them, and reading
 * stops. Writing: conn_io_write with an empty output goes straight to the
 * socket; what the socket refuses waits in the output and the loop writes
 * it as the peer reads (under TLS the refused SSL_write retried from
 * there), the write callback at or below the write low watermark; the write
 * timeout and a write error reach the event callback with CONN_IO_WRITING.
 * Also conn_io_stop, timeouts (libevent's common ones, changed, cleared),
 * conn_io_new with failing allocations, conn_io_free from each callback
 * (ASan's word), and the close_notify of a clean close only.
 */
#include "tests/unit/check.h"
#include "tests/unit/loop_check.h"
#include "tests/unit/tls_check.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "proxy/net/conn_io.h"

#define READ_MAX (64 * 1024)   /* conn_io's bytes per turn, CONN_IO_READ_MAX */
#define RECORD_MAX (16 * 1024) /* a TLS record's payload at most */
#define BIG_RBUF (256 * 1024)  /* an OpenSSL read buffer that takes all a test sends */
#define STREAM_LEN LOOP_STREAM_MAX
#define MAX_CALLS 16
#define BUDGET_LEN 100000      /* seven records, six of 16 KiB */
#define WRITE_LEN 200000       /* far more than a shrunk socket takes */
#define SMALL_SNDBUF 16384     /* the kernel doubles it */
#define QUIET_MS 300           /* how long "nothing happens" is watched */
#define PUMP_ROUNDS 20000

enum { CLEAR, TLS };

/* libevent's allocations, failing on demand: the mem_fail_in'th next one
 * fails (0: none). Installed before any other libevent call. */
static int mem_fail_in;

static bool mem_fails(void)
{
	return mem_fail_in > 0 && --mem_fail_in == 0;
}

static void *mem_malloc(size_t n)
{
	return mem_fails() ? NULL : malloc(n);
}

static void *mem_realloc(void *p, size_t n)
{
	return mem_fails() ? NULL : realloc(p, n);
}

static void mem_free(void *p)
{
	free(p);
}

/* TLS contexts */

static SSL_CTX *server_ctx, *client_ctx;

/* An SSL marked with ssl_mark counts in ssl_freed when freed. */
static int ssl_idx = -1, ssl_freed;
static char ssl_mark;

static void ssl_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	if (ptr == &ssl_mark)
		ssl_freed++;
}

static bool tls_contexts(void)
{
	EVP_PKEY *key = NULL;
	X509 *cert = self_signed(&key, "conn-io.test");
	server_ctx = SSL_CTX_new(TLS_server_method());
	client_ctx = SSL_CTX_new(TLS_client_method());
	bool ok = cert && server_ctx && client_ctx && SSL_CTX_use_certificate(server_ctx, cert) == 1 &&
		  SSL_CTX_use_PrivateKey(server_ctx, key) == 1 &&
		  SSL_CTX_check_private_key(server_ctx) == 1 &&
		  /* no tickets: the client's socket holds nothing unread when
		   * it closes (an AF_UNIX close with unread bytes resets the
		   * peer, which would hide the close_notify) */
		  SSL_CTX_set_num_tickets(server_ctx, 0) == 1;
	if (server_ctx) /* the modes portier's contexts have (tls_ctx.c) */
		SSL_CTX_set_mode(server_ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
						     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (client_ctx)
		SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
	ssl_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, ssl_free_cb);
	X509_free(cert);
	EVP_PKEY_free(key);
	if (!ok || ssl_idx < 0)
		ERR_print_errors_fp(stderr);
	return ok && ssl_idx >= 0;
}

/* The order read callbacks ran in, across connections: their recs' ids. */
static int order[MAX_CALLS], n_order;

/* What the callbacks saw. */
struct rec {
	int id;
	struct conn_io *io;      /* NULL once a callback freed it */
	SSL *ssl;                /* its SSL, NULL in the clear */
	int reads;               /* read callbacks */
	size_t seen[MAX_CALLS];  /* the input's length at each */
	bool held[MAX_CALLS];    /* and whether OpenSSL held bytes then */
	bool silent[MAX_CALLS];  /* and whether the socket had none */
	int events;              /* event callbacks */
	short what[MAX_CALLS];   /* what each was told */
	int reads_by[MAX_CALLS]; /* and the read callbacks before it */
	int writes;              /* write callbacks */
	size_t out_at[MAX_CALLS]; /* the output's length at each */
	size_t out_last;         /* and at the last one */
	bool drain;              /* the read callback moves the input to got */
	bool off_in_read;        /* the read callback turns reading off (before draining) */
	bool stop_in_read;       /* the read callback calls conn_io_stop */
	bool free_in_read, free_in_event, free_in_write;
	uint8_t *got;            /* STREAM_LEN bytes */
	size_t got_len;
};

/* take: move io's input to r->got. */
static void take(struct rec *r, struct conn_io *io)
{
	struct evbuffer *in = conn_io_input(io);
	size_t len = evbuffer_get_length(in), room = STREAM_LEN - r->got_len;
	ev_ssize_t n = evbuffer_remove(in, r->got + r->got_len, len < room ? len : room);
	if (n > 0)
		r->got_len += (size_t)n;
}

/* take_n: move n bytes of io's input to r->got; false if it had fewer. */
static bool take_n(struct rec *r, struct conn_io *io, size_t n)
{
	ev_ssize_t got = evbuffer_remove(conn_io_input(io), r->got + r->got_len, n);
	if (got > 0)
		r->got_len += (size_t)got;
	return got == (ev_ssize_t)n;
}

/* fd_silent: the socket has no bytes to read: what OpenSSL holds no
 * readiness will announce. (FIONREAD, as a peek would take a pending
 * ECONNRESET.) */
static bool fd_silent(int fd)
{
	int n = -1;
	return ioctl(fd, FIONREAD, &n) == 0 && n == 0;
}

static void on_read(struct conn_io *io, void *arg)
{
	struct rec *r = arg;
	size_t len = evbuffer_get_length(conn_io_input(io));
	if (r->reads < MAX_CALLS) {
		r->seen[r->reads] = len;
		r->held[r->reads] = r->ssl && SSL_has_pending(r->ssl);
		r->silent[r->reads] = fd_silent(conn_io_fd(io));
	}
	r->reads++;
	if (n_order < MAX_CALLS)
		order[n_order++] = r->id;
	if (r->off_in_read)
		conn_io_read_off(io);
	if (r->stop_in_read)
		conn_io_stop(io);
	if (r->drain)
		take(r, io);
	if (r->free_in_read) {
		conn_io_free(io);
		r->io = NULL;
	}
}

static void on_write(struct conn_io *io, void *arg)
{
	struct rec *r = arg;
	size_t len = evbuffer_get_length(conn_io_output(io));
	if (r->writes < MAX_CALLS)
		r->out_at[r->writes] = len;
	r->out_last = len;
	r->writes++;
	if (r->free_in_write) {
		conn_io_free(io);
		r->io = NULL;
	}
}

static void on_event(struct conn_io *io, short what, void *arg)
{
	struct rec *r = arg;
	if (r->events < MAX_CALLS) {
		r->what[r->events] = what;
		r->reads_by[r->events] = r->reads;
	}
	r->events++;
	if (r->free_in_event) {
		conn_io_free(io);
		r->io = NULL;
	}
}

/* conn_io on fd[1] of a socketpair, its peer fd[0] (under TLS the client
 * SSL on it). */
struct fixture {
	struct event_base *base;
	bool own_base;    /* freed with the fixture */
	bool tls;
	int ahead_before; /* the server SSL's read-ahead before conn_io_new */
	SSL *client;      /* the peer's, under TLS */
	int peer;         /* fd[0]; -1 once closed */
	int fd;           /* fd[1], conn_io's (closed by conn_io_free) */
	struct rec r;
	uint8_t *peer_got; /* what the peer received, STREAM_LEN bytes */
	size_t peer_len;
};

/* handshake_step: one nonblocking SSL_do_handshake; false on a failure. */
static bool handshake_step(SSL *ssl, bool *done)
{
	if (*done)
		return true;
	int r = SSL_do_handshake(ssl);
	if (r == 1) {
		*done = true;
		return true;
	}
	int err = SSL_get_error(ssl, r);
	return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE;
}

/* handshake: a server SSL on fd (rbuf, if not 0, its read buffer length)
 * that finished its handshake with f->client on f->peer; NULL on a failure. */
static SSL *handshake(struct fixture *f, int fd, size_t rbuf)
{
	f->client = SSL_new(client_ctx);
	SSL *server = SSL_new(server_ctx);
	if (!f->client || !server || SSL_set_fd(f->client, f->peer) != 1 || SSL_set_fd(server, fd) != 1)
		goto fail;
	if (rbuf)
		SSL_set_default_read_buffer_len(server, rbuf);
	SSL_set_connect_state(f->client);
	SSL_set_accept_state(server);
	bool cdone = false, sdone = false;
	for (int i = 0; i < 32 && !(cdone && sdone); i++)
		if (!handshake_step(f->client, &cdone) || !handshake_step(server, &sdone))
			break;
	if (cdone && sdone)
		return server;
	fprintf(stderr, "handshake did not complete\n");
	ERR_print_errors_fp(stderr);
fail:
	SSL_free(server);
	return NULL;
}

/* setup_on: conn_io on base (a new one if NULL) with the test's callbacks,
 * reading off; under TLS after the handshake. */
static bool setup_on(struct fixture *f, struct event_base *base, int mode, size_t rbuf)
{
	int fd[2];
	memset(f, 0, sizeof *f);
	f->peer = f->fd = -1;
	f->tls = mode == TLS;
	f->r.got = malloc(STREAM_LEN);
	f->peer_got = malloc(STREAM_LEN);
	f->base = base ? base : event_base_new();
	f->own_base = !base;
	if (!f->r.got || !f->peer_got || !f->base)
		return false;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, fd) != 0) {
		perror("socketpair");
		return false;
	}
	f->peer = fd[0];
	/* Room for all the peer sends, queued at once. */
	int size = 1 << 20;
	setsockopt(fd[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
	setsockopt(fd[1], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
	SSL *server = NULL;
	if (evutil_make_socket_nonblocking(fd[0]) != 0 || evutil_make_socket_nonblocking(fd[1]) != 0)
		goto fail;
	if (f->tls) {
		server = handshake(f, fd[1], rbuf);
		if (!server)
			goto fail;
		f->ahead_before = SSL_get_read_ahead(server);
	}
	f->fd = fd[1];
	f->r.io = conn_io_new(f->base, fd[1], server);
	if (!f->r.io)
		return false; /* server and fd[1] freed by the failed call */
	f->r.ssl = server;
	conn_io_setcb(f->r.io, on_read, on_write, on_event, &f->r);
	return true;
fail:
	SSL_free(server);
	close(fd[1]);
	return false;
}

static void teardown(struct fixture *f)
{
	if (f->r.io)
		conn_io_free(f->r.io);
	if (f->base && f->own_base)
		event_base_free(f->base);
	SSL_free(f->client);
	if (f->peer >= 0)
		close(f->peer);
	free(f->r.got);
	free(f->peer_got);
	f->r.io = NULL, f->base = NULL, f->client = NULL, f->peer = -1;
	f->r.got = f->peer_got = NULL;
}

/* begin: the fixture on a base of its own; a failure counts as a failed
 * check. */
static bool begin(struct fixture *f, int mode, size_t rbuf)
{
	bool ok = setup_on(f, NULL, mode, rbuf);
	CHECK(ok);
	return ok;
}

typedef void (*case_fn)(struct fixture *f);
typedef void (*variant_fn)(struct fixture *f, int how);
typedef void (*pair_fn)(struct fixture *f, struct fixture *g);

/* run: body on a fixture of its own in mode (rbuf: the server SSL's read
 * buffer, 0 for OpenSSL's own), skipped when setup fails. */
static void run(case_fn body, int mode, size_t rbuf)
{
	struct fixture f;
	if (begin(&f, mode, rbuf))
		body(&f);
	teardown(&f);
}

/* run_both: body in the clear, then under TLS. */
static void run_both(case_fn body)
{
	for (int mode = CLEAR; mode <= TLS; mode++)
		run(body, mode, 0);
}

/* run_how: as run, for one variant of a case. */
static void run_how(variant_fn body, int how, int mode, size_t rbuf)
{
	struct fixture f;
	if (begin(&f, mode, rbuf))
		body(&f, how);
	teardown(&f);
}

/* run_pair: body on two connections of one loop, f's in mode_f, g's in
 * mode_g (g torn down first: f owns the base). */
static void run_pair(pair_fn body, int mode_f, int mode_g, size_t rbuf)
{
	struct fixture f, g;
	bool ok = begin(&f, mode_f, rbuf);
	bool ok_g = setup_on(&g, f.base, mode_g, rbuf);
	CHECK(ok_g);
	if (ok && ok_g)
		body(&f, &g);
	teardown(&g);
	teardown(&f);
}

/* peer_send: the peer sends stream[off..off+len): under TLS in records of
 * at most 16 KiB (one if len is no more), in the clear in one write(2). */
static bool peer_send(struct fixture *f, size_t off, size_t len)
{
	if (f->tls) {
		int n = SSL_write(f->client, stream + off, (int)len);
		if (n != (int)len) {
			fprintf(stderr, "SSL_write %zu: %d (error %d)\n", len, n, SSL_get_error(f->client, n));
			return false;
		}
		return true;
	}
	ssize_t n = write(f->peer, stream + off, len);
	if (n != (ssize_t)len) {
		fprintf(stderr, "write %zu: %zd (%s)\n", len, n, n < 0 ? strerror(errno) : "short");
		return false;
	}
	return true;
}

/* peer_recv: what the peer can read now (plain bytes under TLS) appended
 * to peer_got; the bytes it took. */
static size_t peer_recv(struct fixture *f)
{
	size_t before = f->peer_len;
	while (f->peer_len < STREAM_LEN) {
		size_t room = STREAM_LEN - f->peer_len;
		if (f->tls) {
			int n = SSL_read(f->client, f->peer_got + f->peer_len, room > INT_MAX ? INT_MAX : (int)room);
			if (n <= 0)
				break;
			f->peer_len += (size_t)n;
		} else {
			ssize_t n = read(f->peer, f->peer_got + f->peer_len, room);
			if (n <= 0)
				break;
			f->peer_len += (size_t)n;
		}
	}
	ERR_clear_error();
	return f->peer_len - before;
}

/* peer_got_is: the peer received exactly stream[0..n). */
static bool peer_got_is(const struct fixture *f, size_t n)
{
	if (f->peer_len != n) {
		fprintf(stderr, "peer got %zu bytes, expected %zu\n", f->peer_len, n);
		return false;
	}
	return memcmp(f->peer_got, stream, n) == 0;
}

static void peer_close(struct fixture *f)
{
	close(f->peer);
	f->peer = -1;
}

/* shrink: conn_io's socket takes a few KiB before it refuses more. */
static bool shrink(struct fixture *f)
{
	int size = SMALL_SNDBUF;
	return setsockopt(f->fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size) == 0;
}

/* pass: one pass of the loop that never waits: the events ready now (and
 * the ones made active), each callback once. */
static void pass(struct fixture *f)
{
	event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

static void passes(struct fixture *f, int n)
{
	for (int i = 0; i < n; i++)
		pass(f);
}

/* passes_until: up to n passes, stopping once there were reads read
 * callbacks. */
static void passes_until(struct fixture *f, int n, int reads)
{
	for (int i = 0; i < n && f->r.reads < reads; i++)
		pass(f);
}

/* pump: the peer reads what it can, the loop writes what it can, until the
 * peer has n bytes; bounded in rounds and time. */
static void pump(struct fixture *f, size_t n)
{
	long long end = mono_ms() + GUARD_MS;
	for (int i = 0; i < PUMP_ROUNDS && f->peer_len < n && mono_ms() < end; i++) {
		peer_recv(f);
		pass(f);
	}
	peer_recv(f);
}

static long long wait_events(struct fixture *f)
{
	return loop_wait_events(f->base, &f->r.events);
}

struct quiet {
	struct event_base *base;
	bool over;
};

static void quiet_over(evutil_socket_t fd, short what, void *arg)
{
	struct quiet *q = arg;
	(void)fd, (void)what;
	q->over = true;
}

/* loop_quiet: run the loop for ms (at most 64 passes), whatever happens. */
static void loop_quiet(struct event_base *base, int ms)
{
	struct quiet q = { base, false };
	struct event *ev = evtimer_new(base, quiet_over, &q);
	if (!ev)
		return;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(ev, &tv);
	for (int i = 0; i < 64 && !q.over; i++)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(ev);
}

/* events_added: conn_io's events added to the base (the tests add none of
 * their own outside their waits). */
static int events_added(struct fixture *f)
{
	return event_base_get_num_events(f->base, EVENT_BASE_COUNT_ADDED);
}

/* got_is: the read callbacks took exactly stream[0..n). */
static bool got_is(const struct rec *r, size_t n)
{
	if (r->got_len != n) {
		fprintf(stderr, "got %zu bytes, expected %zu\n", r->got_len, n);
		return false;
	}
	return memcmp(r->got, stream, n) == 0;
}

/* in_is: io's input holds exactly stream[0..n). */
static bool in_is(struct conn_io *io, size_t n)
{
	return buffer_is(conn_io_input(io), n);
}

/* ended: one event came, what while reading, reading stopped, and the
 * input holds exactly stream[0..n): the data before the end. */
static bool ended(struct fixture *f, short what, size_t n)
{
	if (f->r.events != 1 || f->r.what[0] != (what | CONN_IO_READING)) {
		fprintf(stderr, "events %d, the first 0x%x; expected one, 0x%x\n", f->r.events,
			(unsigned)f->r.what[0], (unsigned)(what | CONN_IO_READING));
		return false;
	}
	return !conn_io_reading(f->r.io) && in_is(f->r.io, n);
}

/* delivered: reads read callbacks so far, the last of them seeing the
 * input at n bytes, and it holds exactly stream[0..n). */
static bool delivered(struct fixture *f, int reads, size_t n)
{
	int last = f->r.reads - 1;
	size_t seen = last >= 0 && last < MAX_CALLS ? f->r.seen[last] : 0;
	if (f->r.reads != reads || seen != n) {
		fprintf(stderr, "%d read callbacks, the last saw %zu bytes; expected %d, %zu\n",
			f->r.reads, seen, reads, n);
		return false;
	}
	return in_is(f->r.io, n);
}

/* still: n more passes run no callback: reads read and events event
 * callbacks in all. */
static bool still(struct fixture *f, int n, int reads, int events)
{
	passes(f, n);
	if (f->r.reads == reads && f->r.events == events)
		return true;
	fprintf(stderr, "%d read and %d event callbacks, expected %d and %d\n", f->r.reads,
		f->r.events, reads, events);
	return false;
}

/* event_within: waiting brings event callback number n (from 1), told
 * what, after min_ms and before max_ms. */
static bool event_within(struct fixture *f, int n, short what, long long min_ms, long long max_ms)
{
	long long took = wait_events(f);
	short told = f->r.events == n && n <= MAX_CALLS ? f->r.what[n - 1] : 0;
	if (took >= min_ms && took < max_ms && told == what)
		return true;
	fprintf(stderr, "after %lld ms %d events, number %d told 0x%x; expected 0x%x in %lld to %lld ms\n",
		took, f->r.events, n, (unsigned)told, (unsigned)what, min_ms, max_ms);
	return false;
}

static size_t out_len(struct fixture *f)
{
	return evbuffer_get_length(conn_io_output(f->r.io));
}

/* write_stream: conn_io_write of stream[off..off+len) from a stage of its
 * own, which the call must leave empty. */
static void write_stream(struct fixture *f, size_t off, size_t len)
{
	struct evbuffer *stage = evbuffer_new();
	CHECK(stage && evbuffer_add(stage, stream + off, len) == 0);
	if (!stage)
		return;
	conn_io_write(f->r.io, stage);
	CHECK(evbuffer_get_length(stage) == 0);
	evbuffer_free(stage);
}

/* write_big: WRITE_LEN bytes written to a shrunk socket; what it refused,
 * left in the output. */
static size_t write_big(struct fixture *f)
{
	CHECK(shrink(f));
	write_stream(f, 0, WRITE_LEN);
	return out_len(f);
}

/* peer_junk: the peer sends bytes that are no TLS record. */
static bool peer_junk(struct fixture *f)
{
	static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	return write(f->peer, junk, sizeof junk - 1) == (ssize_t)(sizeof junk - 1);
}

/* timer_in: an event of f's base that runs fn in ms. */
static struct event *timer_in(struct fixture *f, int ms, event_callback_fn fn, void *arg)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	struct event *ev = evtimer_new(f->base, fn, arg);
	CHECK(ev && evtimer_add(ev, &tv) == 0);
	return ev;
}

/*
 * Reading under TLS
 */

/* 1. conn_io_new turns read-ahead on, leaves reading off (a record waits,
 * no event is added); conn_io_read_on brings it from the loop, not from
 * inside the call; again while on, nothing. With a read timeout set before
 * reading, records come and the timeout stays away. */
static void case_new(struct fixture *f) /* in the clear, test 8's start */
{
	size_t n = f->tls ? 100 : 60000; /* a record; in the clear, under a turn's 64 KiB */
	if (f->tls) {
		CHECK(f->ahead_before == 0);
		CHECK(SSL_get_read_ahead(f->r.ssl) == 1);
	}
	CHECK(conn_io_fd(f->r.io) == f->fd);
	CHECK(!conn_io_reading(f->r.io));
	CHECK(evbuffer_get_length(conn_io_input(f->r.io)) == 0);
	CHECK(out_len(f) == 0);
	CHECK(events_added(f) == 0);
	CHECK(peer_send(f, 0, n));
	CHECK(still(f, 3, 0, 0));
	CHECK(!fd_silent(f->fd));
	conn_io_read_on(f->r.io);
	CHECK(conn_io_reading(f->r.io));
	CHECK(f->r.reads == 0);
	CHECK(events_added(f) == 1);
	pass(f);
	CHECK(delivered(f, 1, n));
	conn_io_read_on(f->r.io);
	CHECK(still(f, 2, 1, 0));
	CHECK(conn_io_reading(f->r.io));
}

static void case_timeout_set_first(struct fixture *f)
{
	struct timeval tv = { 0, 150 * 1000 };
	conn_io_timeouts(f->r.io, &tv, NULL);
	conn_io_read_on(f->r.io);
	CHECK(peer_send(f, 0, 20000));
	passes_until(f, 4, 1);
	CHECK(delivered(f, 1, 20000));
	CHECK(f->r.events == 0);
}

static void test_tls_new(void)
{
	run(case_new, TLS, 0);
	run(case_timeout_set_first, TLS, 0);
}

/* 2. Records of 10, 3000, 16384 and 5000 bytes queued before a pass: with
 * a read buffer that takes them all, that one pass brings them in one read
 * callback, in order. With OpenSSL's own buffer (a record and a bit) the
 * first callback brings what the first read(2) took and the records it cut,
 * the rest (if any) on the next pass. */
static const size_t records[] = { 10, 3000, RECORD_MAX, 5000 };
#define RECORDS_LEN (10 + 3000 + RECORD_MAX + 5000) /* 24,394 */

static bool send_records(struct fixture *f)
{
	size_t off = 0;
	for (size_t i = 0; i < sizeof records / sizeof records[0]; i++) {
		if (!peer_send(f, off, records[i]))
			return false;
		off += records[i];
	}
	return true;
}

static void case_records(struct fixture *f)
{
	conn_io_read_on(f->r.io);
	CHECK(send_records(f));
	pass(f);
	CHECK(delivered(f, 1, RECORDS_LEN));
	CHECK(!SSL_has_pending(f->r.ssl));
	CHECK(fd_silent(f->fd));
	CHECK(still(f, 2, 1, 0)); /* nothing more waits */
	CHECK(conn_io_reading(f->r.io));
	/* More later: the next readiness. */
	CHECK(peer_send(f, RECORDS_LEN, 1000));
	pass(f);
	CHECK(delivered(f, 2, RECORDS_LEN + 1000));
}

static void case_records_own_buffer(struct fixture *f)
{
	conn_io_read_on(f->r.io);
	CHECK(send_records(f));
	pass(f);
	CHECK(f->r.reads == 1);
	CHECK(f->r.seen[0] >= 10 + 3000 + RECORD_MAX);
	CHECK(!f->r.held[0]);
	passes_until(f, 4, 2);
	CHECK(in_is(f->r.io, RECORDS_LEN));
	CHECK(f->r.reads <= 2);
	CHECK(!SSL_has_pending(f->r.ssl));
	CHECK(fd_silent(f->fd));
	CHECK(f->r.events == 0);
}

static void test_tls_records(void)
{
	run(case_records, TLS, BIG_RBUF);
	run(case_records_own_buffer, TLS, 0);
}

/* 3. 100,000 bytes queued, a read buffer that takes them in one read(2):
 * the first callback stops at 64 KiB, four whole records, the rest inside
 * OpenSSL and the socket empty; the rerun brings the rest in a second
 * callback in the same pass, after the callbacks already due in it: with
 * two such connections the callbacks alternate. With OpenSSL's own read
 * buffer, all in a few passes. */
static void case_budget(struct fixture *f)
{
	conn_io_read_on(f->r.io);
	CHECK(peer_send(f, 0, BUDGET_LEN));
	pass(f);
	CHECK(f->r.reads == 2);
	CHECK(f->r.seen[0] >= READ_MAX && f->r.seen[0] < BUDGET_LEN);
	CHECK(f->r.seen[0] == 4 * RECORD_MAX);
	CHECK(f->r.held[0] && f->r.silent[0]); /* only the rerun can bring the rest */
	CHECK(delivered(f, 2, BUDGET_LEN));
	CHECK(!SSL_has_pending(f->r.ssl));
	CHECK(fd_silent(f->fd));
	CHECK(still(f, 2, 2, 0));
	CHECK(conn_io_reading(f->r.io));
}

/* pair_in_turn: two connections, 64 KiB each a turn, their callbacks
 * alternating: in the clear a readiness each a pass, under TLS the reruns
 * behind the callbacks due in the same pass. */
static void pair_in_turn(struct fixture *f, struct fixture *g)
{
	size_t len = f->tls ? BUDGET_LEN : 2 * READ_MAX;
	f->r.id = 1, g->r.id = 2;
	f->r.drain = g->r.drain = true;
	n_order = 0;
	conn_io_read_on(f->r.io);
	conn_io_read_on(g->r.io);
	CHECK(peer_send(f, 0, len));
	CHECK(peer_send(g, 0, len));
	pass(f);
	if (!f->tls) {
		CHECK(n_order == 2);
		CHECK(f->r.reads == 1 && g->r.reads == 1);
		pass(f);
	}
	CHECK(n_order == 4);
	CHECK(order[0] != order[1] && order[2] != order[3]);
	if (f->tls)
		CHECK(order[0] == order[2] && order[1] == order[3]);
	CHECK(f->r.reads == 2 && g->r.reads == 2);
	CHECK(f->r.seen[0] == READ_MAX && g->r.seen[0] == READ_MAX);
	CHECK(got_is(&f->r, len));
	CHECK(got_is(&g->r, len));
}

static void case_budget_own_buffer(struct fixture *f)
{
	conn_io_read_on(f->r.io);
	f->r.drain = true;
	CHECK(peer_send(f, 0, BUDGET_LEN));
	pass(f);
	CHECK(f->r.reads == 1);
	CHECK(f->r.seen[0] >= 2 * RECORD_MAX);
	passes_until(f, 8, 8);
	CHECK(got_is(&f->r, BUDGET_LEN));
	CHECK(f->r.reads <= 4);
	CHECK(!SSL_has_pending(f->r.ssl));
	CHECK(fd_silent(f->fd));
	CHECK(f->r.events == 0);
}

static void test_tls_budget(void)
{
	run(case_budget, TLS, BIG_RBUF);
	run_pair(pair_in_turn, TLS, TLS, BIG_RBUF);
	run(case_budget_own_buffer, TLS, 0);
}

/* 4. A read high watermark of 4000, three records of 3000 queued in one
 * read(2): the read stops at 6000, the third record inside OpenSSL, the
 * socket empty. Without a read callback nothing comes while the input
 * stays there or is drained and stays over it; drained below it, the third
 * record comes on the next pass: nothing but the drain would bring it.
 * With a read callback that drains the input, the same within the pass. */
static void read_high_4000(struct fixture *f)
{
	conn_io_read_high(f->r.io, 4000);
	conn_io_read_on(f->r.io);
	for (size_t off = 0; off < 9000; off += 3000)
		CHECK(peer_send(f, off, 3000));
}

/* rest_waits: the bytes not read yet wait inside OpenSSL, the socket
 * silent (no readiness will announce them), or in the clear on the socket. */
static bool rest_waits(struct fixture *f)
{
	return f->tls ? SSL_has_pending(f->r.ssl) && fd_silent(f->fd) : !fd_silent(f->fd);
}

/* paused_with: a pass reads up to n bytes, the rest waiting, and passes
 * after it bring no more: reading paused, its event removed (no spinning),
 * still on. */
static void paused_with(struct fixture *f, size_t n)
{
	pass(f);
	CHECK(in_is(f->r.io, n));
	CHECK(rest_waits(f));
	passes(f, 4);
	CHECK(in_is(f->r.io, n));
	CHECK(rest_waits(f));
	CHECK(events_added(f) == 0);
	CHECK(conn_io_reading(f->r.io));
}

static void case_tls_paused(struct fixture *f)
{
	struct conn_io *io = f->r.io;
	struct evbuffer *in = conn_io_input(io);
	conn_io_setcb(io, NULL, NULL, on_event, &f->r);
	read_high_4000(f);
	paused_with(f, 6000); /* the third record hidden inside OpenSSL */
	/* Drained but still over, then to the watermark: nothing. */
	for (size_t left = 5000; left >= 4000; left -= 1000) {
		CHECK(take_n(&f->r, io, 1000));
		passes(f, 4);
		CHECK(evbuffer_get_length(in) == left);
		CHECK(SSL_has_pending(f->r.ssl));
	}
	/* Drained below: the rest. */
	take(&f->r, io);
	CHECK(got_is(&f->r, 6000));
	for (int i = 0; i < 4 && evbuffer_get_length(in) == 0; i++)
		pass(f);
	CHECK(evbuffer_get_length(in) == 3000);
	take(&f->r, io);
	CHECK(got_is(&f->r, 9000));
	CHECK(!SSL_has_pending(f->r.ssl));
	CHECK(f->r.events == 0);
	CHECK(conn_io_reading(io));
	/* Still reading from the socket afterwards. */
	CHECK(peer_send(f, 9000, 2000));
	pass(f);
	take(&f->r, io);
	CHECK(got_is(&f->r, 11000));
}

static void case_tls_paused_drained(struct fixture *f)
{
	f->r.drain = true;
	read_high_4000(f);
	passes_until(f, 4, 2);
	CHECK(f->r.reads == 2);
	CHECK(f->r.seen[0] == 6000);
	CHECK(f->r.held[0] && f->r.silent[0]);
	CHECK(f->r.seen[1] == 3000);
	CHECK(got_is(&f->r, 9000));
	CHECK(still(f, 1, 2, 0));
	CHECK(conn_io_reading(f->r.io));
}

/* Paused, the watermark raised: reading resumes, held bytes first. */
static void case_tls_paused_raised(struct fixture *f)
{
	read_high_4000(f);
	pass(f);
	CHECK(delivered(f, 1, 6000));
	CHECK(still(f, 1, 1, 0));
	conn_io_read_high(f->r.io, 0);
	passes_until(f, 4, 2);
	CHECK(delivered(f, 2, 9000));
	CHECK(f->r.events == 0);
}

static void test_tls_high_watermark(void)
{
	run(case_tls_paused, TLS, 0);
	run(case_tls_paused_drained, TLS, 0);
	run(case_tls_paused_raised, TLS, 0);
}

/* 5. Reading turned off in the read callback with bytes left inside
 * OpenSSL (by the watermark, then by the budget with a read buffer that
 * emptied the socket): nothing comes until conn_io_read_on, which brings
 * them from the loop (the socket silent: no readiness would). */
static void read_off_in_read(struct fixture *f)
{
	conn_io_read_on(f->r.io);
	f->r.off_in_read = true;
	f->r.drain = true;
}

/* off_then_on: a pass brings first bytes to the read callback, which turns
 * reading off with the rest inside OpenSSL; nothing more comes until
 * conn_io_read_on, and then from the loop, the rest (total in all). */
static void off_then_on(struct fixture *f, size_t first, size_t total)
{
	pass(f);
	CHECK(f->r.reads == 1);
	CHECK(f->r.seen[0] == first);
	CHECK(got_is(&f->r, first));
	CHECK(!conn_io_reading(f->r.io));
	CHECK(SSL_has_pending(f->r.ssl));
	CHECK(fd_silent(f->fd));
	CHECK(still(f, 4, 1, 0)); /* the budget's rerun, if still due, stops at reading off */
	CHECK(events_added(f) == 0);
	f->r.off_in_read = false;
	conn_io_read_on(f->r.io);
	CHECK(f->r.reads == 1); /* from the loop */
	pass(f);
	CHECK(f->r.reads == 2);
	CHECK(f->r.seen[1] == total - first);
	CHECK(got_is(&f->r, total));
}

static void case_off_at_watermark(struct fixture *f)
{
	conn_io_read_high(f->r.io, 3000);
	read_off_in_read(f);
	CHECK(peer_send(f, 0, 3000));
	CHECK(peer_send(f, 3000, 3000));
	off_then_on(f, 3000, 6000);
	CHECK(!SSL_has_pending(f->r.ssl));
	conn_io_read_on(f->r.io); /* nothing held: no callback */
	CHECK(still(f, 2, 2, 0));
}

static void case_off_at_budget(struct fixture *f)
{
	read_off_in_read(f);
	CHECK(peer_send(f, 0, BUDGET_LEN));
	off_then_on(f, 4 * RECORD_MAX, BUDGET_LEN);
	CHECK(f->r.events == 0);
	CHECK(conn_io_reading(f->r.io));
}

/* case_off_waits: bytes that come while reading is off wait on the socket
 * until conn_io_read_on. */
static void case_off_waits(struct fixture *f)
{
	size_t n = f->tls ? 500 : 60000, more = f->tls ? 700 : 1000;
	conn_io_read_on(f->r.io);
	CHECK(peer_send(f, 0, n));
	pass(f);
	CHECK(f->r.reads == 1);
	conn_io_read_off(f->r.io);
	CHECK(!conn_io_reading(f->r.io));
	CHECK(peer_send(f, n, more));
	CHECK(still(f, 4, 1, 0));
	CHECK(in_is(f->r.io, n));
	conn_io_read_on(f->r.io);
	pass(f);
	CHECK(delivered(f, 2, n + more));
	CHECK(f->r.events == 0);
}

static void test_tls_read_off_on(void)
{
	run(case_off_at_watermark, TLS, 0);
	run(case_off_at_budget, TLS, BIG_RBUF);
	run(case_off_waits, TLS, 0);
}

/* 6. 500 bytes then the client's end: the bytes to the read callback, then
 * CONN_IO_READING | CONN_IO_EOF to the event callback, reading stopped.
 * close_notify comes in the read(2) that brings the bytes: it is met after
 * them and reported in the same pass (the only way when the client leaves
 * the socket open: it says nothing more); a close without close_notify is
 * met by the next read, on the next pass. */
/* notified: 500 bytes, then close_notify, the socket closed after it or
 * left open. */
static void notified(struct fixture *f, int closed)
{
	conn_io_read_on(f->r.io);
	CHECK(peer_send(f, 0, 500));
	CHECK(SSL_shutdown(f->client) == 0); /* close_notify sent, none back yet */
	if (closed)
		peer_close(f);
	pass(f);
	CHECK(delivered(f, 1, 500));
	if (!closed)
		CHECK(fd_silent(f->fd));
	CHECK(ended(f, CONN_IO_EOF, 500));
	CHECK(f->r.reads_by[0] == 1);
	CHECK((SSL_get_shutdown(f->r.ssl) & SSL_RECEIVED_SHUTDOWN) != 0);
	CHECK(events_added(f) == 0);
	CHECK(still(f, 2, 1, 1));
}

/* bytes_then_end: bytes, then the peer's end without close_notify (in the
 * clear a half close), or a reset (it closes with bytes of ours unread):
 * the bytes, then, met by the next read on the next pass, the end. */
static void bytes_then_end(struct fixture *f, int reset)
{
	size_t n = f->tls ? (reset ? 700 : 500) : 10;
	conn_io_read_on(f->r.io);
	CHECK(peer_send(f, 0, n));
	if (reset)
		CHECK(write(f->fd, "unread", 6) == 6);
	if (reset || f->tls)
		peer_close(f);
	else
		CHECK(shutdown(f->peer, SHUT_WR) == 0);
	pass(f);
	CHECK(delivered(f, 1, n));
	CHECK(f->r.events == 0);
	pass(f);
	CHECK(f->r.reads == 1);
	CHECK(ended(f, reset ? CONN_IO_ERROR : CONN_IO_EOF, n));
	CHECK(f->r.reads_by[0] == 1);
	CHECK(events_added(f) == 0);
	CHECK(still(f, 2, 1, 1));
}

/* close_notify met with reading turned off in the read callback: reported
 * once reading is on again. */
static void case_notified_while_off(struct fixture *f)
{
	conn_io_read_on(f->r.io);
	f->r.off_in_read = true;
	CHECK(peer_send(f, 0, 500));
	CHECK(SSL_shutdown(f->client) == 0);
	CHECK(still(f, 2, 1, 0));
	f->r.off_in_read = false;
	conn_io_read_on(f->r.io);
	CHECK(f->r.events == 0);
	pass(f);
	CHECK(ended(f, CONN_IO_EOF, 500));
	CHECK(f->r.reads == 1);
}

static void test_tls_eof(void)
{
	run_how(notified, true, TLS, 0);
	run_how(notified, false, TLS, 0);
	run_how(bytes_then_end, false, TLS, 0);
	run(case_notified_while_off, TLS, 0);
}

/* Bytes that are no TLS record: CONN_IO_ERROR, nothing read; such bytes
 * after a record: the record, then the error in the same pass; a reset (the
 * client closes with bytes of ours unread) after a record: the record, then
 * CONN_IO_ERROR. */
static void junk_after(struct fixture *f, int record)
{
	size_t n = record ? 700 : 0;
	int reads = record ? 1 : 0;
	conn_io_read_on(f->r.io);
	if (record)
		CHECK(peer_send(f, 0, n));
	CHECK(peer_junk(f));
	pass(f);
	CHECK(f->r.reads == reads);
	if (record)
		CHECK(f->r.seen[0] == n);
	CHECK(ended(f, CONN_IO_ERROR, n));
	CHECK(f->r.reads_by[0] == reads);
	CHECK(still(f, 1, reads, 1));
}

static void test_tls_error(void)
{
	run_how(junk_after, false, TLS, 0);
	run_how(junk_after, true, TLS, 0);
	run_how(bytes_then_end, true, TLS, 0);
}

/* 7. A read timeout of 100 ms, nothing sent: CONN_IO_READING |
 * CONN_IO_TIMEOUT, reading stops; on again, records come. */
static void case_read_timeout(struct fixture *f)
{
	struct timeval tv = { 0, 100 * 1000 };
	conn_io_timeouts(f->r.io, &tv, NULL);
	conn_io_read_on(f->r.io);
	CHECK(event_within(f, 1, CONN_IO_TIMEOUT | CONN_IO_READING, 50, GUARD_MS));
	CHECK(f->r.reads == 0);
	CHECK(!conn_io_reading(f->r.io));
	CHECK(events_added(f) == 0);
	conn_io_read_on(f->r.io);
	CHECK(send_records(f));
	pass(f);
	CHECK(delivered(f, 1, RECORDS_LEN));
	CHECK(f->r.events == 1);
}

static void test_tls_timeout(void)
{
	run(case_read_timeout, TLS, BIG_RBUF);
}

/*
 * Reading in the clear
 */

/* 8. 60,000 bytes waiting: one pass, one read callback, all of them; with
 * 200,000 waiting each pass brings 64 KiB, the last the rest; reading off,
 * bytes wait until conn_io_read_on. Two connections, one loop: 64 KiB each
 * a pass, in turn. */
static void case_clear_budget(struct fixture *f)
{
	conn_io_read_on(f->r.io);
	CHECK(peer_send(f, 0, 200000));
	pass(f);
	CHECK(delivered(f, 1, READ_MAX));
	passes_until(f, 8, 4);
	CHECK(delivered(f, 4, 200000));
	for (int i = 1; i < 3; i++)
		CHECK(f->r.seen[i] == (size_t)(i + 1) * READ_MAX);
	CHECK(still(f, 1, 4, 0));
	CHECK(conn_io_reading(f->r.io));
}

static void test_clear_read(void)
{
	run(case_new, CLEAR, 0);
	run(case_off_waits, CLEAR, 0);
	run(case_clear_budget, CLEAR, 0);
	run_pair(pair_in_turn, CLEAR, CLEAR, 0);
}

/* 9. A read high watermark of 1000 with 5000 waiting: without a read
 * callback, 1000 then nothing while the input stays at 1000; drained to
 * 500, 500 more; drained below, the next 1000. With a callback that drains,
 * 1000 a callback, in order. */
static void case_clear_paused(struct fixture *f)
{
	struct conn_io *io = f->r.io;
	conn_io_setcb(io, NULL, NULL, on_event, &f->r);
	conn_io_read_high(io, 1000);
	conn_io_read_on(io);
	CHECK(peer_send(f, 0, 5000));
	paused_with(f, 1000);
	CHECK(take_n(&f->r, io, 500));
	for (int i = 0; i < 2; i++) {
		pass(f);
		CHECK(evbuffer_get_length(conn_io_input(io)) == 1000);
	}
	for (int i = 0; i < 16 && f->r.got_len < 5000; i++) {
		take(&f->r, io);
		pass(f);
	}
	take(&f->r, io);
	CHECK(got_is(&f->r, 5000));
	CHECK(f->r.events == 0);
}

static void case_clear_paused_drained(struct fixture *f)
{
	conn_io_read_high(f->r.io, 1000);
	conn_io_read_on(f->r.io);
	f->r.drain = true;
	CHECK(peer_send(f, 0, 5000));
	pass(f);
	CHECK(f->r.reads == 1);
	for (int i = 0; i < MAX_PASSES && f->r.got_len < 5000; i++)
		pass(f);
	CHECK(got_is(&f->r, 5000));
	CHECK(f->r.reads == 5);
	for (int i = 0; i < 5; i++)
		CHECK(f->r.seen[i] == 1000);
	CHECK(still(f, 1, 5, 0));
	CHECK(conn_io_reading(f->r.io));
}

static void test_clear_high_watermark(void)
{
	run(case_clear_paused, CLEAR, 0);
	run(case_clear_paused_drained, CLEAR, 0);
}

/* 10. Ten bytes then the peer's end: the bytes, then a pass later
 * CONN_IO_READING | CONN_IO_EOF, reading stopped; a reset after ten bytes:
 * the ten, then CONN_IO_READING | CONN_IO_ERROR. */
static void test_clear_eof(void)
{
	run_how(bytes_then_end, false, CLEAR, 0);
	run_how(bytes_then_end, true, CLEAR, 0);
}

/* 11. A read timeout of 100 ms, nothing sent: CONN_IO_READING |
 * CONN_IO_TIMEOUT, reading stops; on again, bytes come. One of 200 ms with
 * bytes at 100 ms: the wait starts again from them; one of 400 ms with
 * conn_io_read_on again at 350 ms: it does not. */
static void send_later(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	peer_send(arg, 0, 10);
}

static void read_on_later(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	conn_io_read_on(arg);
}

static void case_timeout_restarts(struct fixture *f)
{
	struct timeval tv = { 0, 200 * 1000 };
	conn_io_timeouts(f->r.io, &tv, NULL);
	conn_io_read_on(f->r.io);
	struct event *later = timer_in(f, 100, send_later, f);
	CHECK(event_within(f, 1, CONN_IO_TIMEOUT | CONN_IO_READING, 250, GUARD_MS));
	CHECK(f->r.reads == 1);
	if (later)
		event_free(later);
}

/* conn_io_read_on again while on does not start the wait again. */
static void case_timeout_kept(struct fixture *f)
{
	struct timeval tv = { 0, 400 * 1000 };
	conn_io_timeouts(f->r.io, &tv, NULL);
	conn_io_read_on(f->r.io);
	struct event *again = timer_in(f, 350, read_on_later, f->r.io);
	CHECK(event_within(f, 1, CONN_IO_TIMEOUT | CONN_IO_READING, 350, 600));
	if (again)
		event_free(again);
}

static void test_clear_timeout(void)
{
	run(case_read_timeout, CLEAR, 0);
	run(case_timeout_restarts, CLEAR, 0);
	run(case_timeout_kept, CLEAR, 0);
}

/*
 * Writing
 */

/* 12. conn_io_write with an empty output: straight to the socket (the peer
 * has the bytes before the loop runs), the stage and the output empty, no
 * event added, no write callback; in the clear and under TLS. */
static void case_write_direct(struct fixture *f)
{
	write_stream(f, 0, 1000);
	CHECK(out_len(f) == 0);
	CHECK(events_added(f) == 0);
	CHECK(peer_recv(f) == 1000);
	CHECK(peer_got_is(f, 1000));
	write_stream(f, 0, 0); /* an empty stage: nothing */
	CHECK(out_len(f) == 0);
	write_stream(f, 1000, 3000);
	CHECK(peer_recv(f) == 3000);
	CHECK(peer_got_is(f, 4000));
	passes(f, 3);
	CHECK(f->r.writes == 0);
	CHECK(f->r.events == 0);
	CHECK(f->r.reads == 0);
}

static void test_write_direct(void)
{
	run_both(case_write_direct);
}

/* 13. A socket that takes a few KiB: conn_io_write of 200,000 bytes puts
 * what it refuses in the output; the loop writes nothing more while the
 * peer reads nothing; a write while that is pending goes to the output
 * whole, behind it; as the peer reads the loop writes it all, the peer has
 * the exact stream (under TLS: the refused SSL_write retried from the
 * output), and the write callback (write low watermark 0) runs once, with
 * the output empty. */
static void case_write_full(struct fixture *f)
{
	size_t queued = write_big(f);
	CHECK(queued > 0 && queued < WRITE_LEN);
	CHECK(events_added(f) == 1);
	passes(f, 3);
	CHECK(out_len(f) == queued);
	CHECK(f->r.writes == 0);
	/* Behind what waits, whole. */
	write_stream(f, WRITE_LEN, STREAM_LEN - WRITE_LEN);
	CHECK(out_len(f) == queued + STREAM_LEN - WRITE_LEN);
	pump(f, STREAM_LEN);
	CHECK(peer_got_is(f, STREAM_LEN));
	CHECK(out_len(f) == 0);
	CHECK(f->r.writes == 1);
	CHECK(f->r.out_at[0] == 0);
	CHECK(f->r.events == 0);
	CHECK(events_added(f) == 0);
	pass(f);
	CHECK(f->r.writes == 1);
	/* Afterwards straight to the socket again. */
	write_stream(f, 0, 100);
	CHECK(out_len(f) == 0);
	f->peer_len = 0;
	CHECK(peer_recv(f) == 100);
	CHECK(peer_got_is(f, 100));
}

static void test_write_full(void)
{
	run_both(case_write_full);
}

/* 14. A write low watermark of 64 KiB: the write callback runs only once
 * a write leaves the output at or below it, the first time with bytes
 * still in it, the last with it empty. */
static void case_write_low(struct fixture *f)
{
	conn_io_write_low(f->r.io, READ_MAX);
	CHECK(write_big(f) > READ_MAX);
	pump(f, WRITE_LEN);
	CHECK(peer_got_is(f, WRITE_LEN));
	CHECK(f->r.writes >= 2);
	bool under = true;
	for (int i = 0; i < f->r.writes && i < MAX_CALLS; i++)
		under = under && f->r.out_at[i] <= READ_MAX;
	CHECK(under);
	CHECK(f->r.out_at[0] > 0);
	CHECK(f->r.out_last == 0);
	CHECK(f->r.events == 0);
}

static void test_write_low(void)
{
	run_both(case_write_low);
}

/* 15. Bytes added to conn_io_output directly: nothing reaches the peer
 * until the loop runs, then they do, and the write callback runs once; a
 * conn_io_write while such bytes wait goes behind them. */
static void case_write_output(struct fixture *f)
{
	CHECK(evbuffer_add(conn_io_output(f->r.io), stream, 5000) == 0);
	CHECK(peer_recv(f) == 0);
	CHECK(fd_silent(f->peer));
	CHECK(events_added(f) == 1);
	pass(f);
	CHECK(out_len(f) == 0);
	CHECK(f->r.writes == 1);
	CHECK(f->r.out_at[0] == 0);
	CHECK(peer_recv(f) == 5000);
	CHECK(peer_got_is(f, 5000));
	CHECK(events_added(f) == 0);
	/* Added, then conn_io_write while that waits for the loop (the
	 * socket has room): behind it, not before. */
	CHECK(evbuffer_add(conn_io_output(f->r.io), stream + 5000, 100) == 0);
	write_stream(f, 5100, 900);
	CHECK(out_len(f) == 1000);
	CHECK(peer_recv(f) == 0);
	passes(f, 2);
	CHECK(f->r.writes == 2);
	CHECK(peer_recv(f) == 1000);
	CHECK(peer_got_is(f, 6000));
	CHECK(f->r.events == 0);
}

static void test_write_output(void)
{
	run_both(case_write_output);
}

/* 16. A write timeout of 100 ms, output pending, the peer reading
 * nothing: CONN_IO_WRITING | CONN_IO_TIMEOUT once, the output kept. Output
 * written in time: no timeout afterwards. */
static void case_write_timeout(struct fixture *f)
{
	struct timeval tv = { 0, 100 * 1000 };
	conn_io_timeouts(f->r.io, NULL, &tv);
	size_t queued = write_big(f);
	CHECK(queued > 0);
	CHECK(event_within(f, 1, CONN_IO_TIMEOUT | CONN_IO_WRITING, 50, GUARD_MS));
	CHECK(f->r.writes == 0);
	CHECK(out_len(f) == queued);
	CHECK(events_added(f) == 0);
	loop_quiet(f->base, 200);
	CHECK(f->r.events == 1);
}

static void case_written_in_time(struct fixture *f)
{
	struct timeval tv = { 0, 100 * 1000 };
	conn_io_timeouts(f->r.io, NULL, &tv);
	CHECK(evbuffer_add(conn_io_output(f->r.io), stream, 5000) == 0);
	pass(f);
	CHECK(f->r.writes == 1);
	CHECK(out_len(f) == 0);
	loop_quiet(f->base, QUIET_MS);
	CHECK(f->r.events == 0);
}

static void test_write_timeout(void)
{
	run_both(case_write_timeout);
	run(case_written_in_time, CLEAR, 0);
}

/* 17. The peer gone: with output pending, CONN_IO_WRITING |
 * CONN_IO_ERROR; gone before conn_io_write, the same (SIGPIPE ignored). */
static void case_gone_while_pending(struct fixture *f)
{
	CHECK(write_big(f) > 0);
	pass(f);
	CHECK(f->r.events == 0);
	peer_close(f);
	CHECK(event_within(f, 1, CONN_IO_ERROR | CONN_IO_WRITING, 0, GUARD_MS));
	CHECK(f->r.writes == 0);
	CHECK(events_added(f) == 0);
	CHECK(still(f, 1, 0, 1));
}

static void case_gone_before(struct fixture *f)
{
	peer_close(f);
	write_stream(f, 0, 1000);
	CHECK(event_within(f, 1, CONN_IO_ERROR | CONN_IO_WRITING, 0, GUARD_MS));
	CHECK(f->r.writes == 0);
}

static void test_write_error(void)
{
	run(case_gone_while_pending, CLEAR, 0);
	run(case_gone_before, CLEAR, 0);
}

/*
 * Stop, timeouts, conn_io_new failing, free from callbacks
 */

/* 18. conn_io_stop with reading on and output pending: no callback runs
 * though bytes arrive and the peer reads all; nothing is written or read
 * any more, whatever is asked; in the read callback with a rerun due, the
 * rerun does not come. */
static void case_stop(struct fixture *f)
{
	struct timeval tv = { 0, 50 * 1000 };
	conn_io_timeouts(f->r.io, &tv, &tv);
	conn_io_read_on(f->r.io);
	size_t queued = write_big(f);
	CHECK(queued > 0);
	conn_io_stop(f->r.io);
	CHECK(events_added(f) == 0);
	CHECK(peer_send(f, 0, 1000));
	peer_recv(f);
	passes(f, 4);
	conn_io_read_on(f->r.io);
	conn_io_read_high(f->r.io, 0);
	conn_io_timeouts(f->r.io, &tv, &tv);
	write_stream(f, 0, 100);
	CHECK(events_added(f) == 0);
	loop_quiet(f->base, 150);
	CHECK(f->r.reads == 0);
	CHECK(f->r.writes == 0);
	CHECK(f->r.events == 0);
	CHECK(out_len(f) == queued + 100);
	CHECK(evbuffer_get_length(conn_io_input(f->r.io)) == 0);
	CHECK(f->peer_len == WRITE_LEN - queued);
	CHECK(peer_recv(f) == 0);
}

/* Stopped with the output empty: conn_io_write writes nothing. */
static void case_stop_then_write(struct fixture *f)
{
	conn_io_stop(f->r.io);
	write_stream(f, 0, 100);
	CHECK(out_len(f) == 100);
	pass(f);
	CHECK(peer_recv(f) == 0);
	CHECK(f->r.writes == 0);
}

/* Stopped in the read callback, the budget's rerun due. */
static void case_stop_in_read(struct fixture *f)
{
	conn_io_read_on(f->r.io);
	f->r.stop_in_read = true;
	CHECK(peer_send(f, 0, BUDGET_LEN));
	CHECK(SSL_shutdown(f->client) == 0);
	pass(f);
	CHECK(f->r.reads == 1);
	CHECK(f->r.seen[0] == 4 * RECORD_MAX);
	CHECK(still(f, 4, 1, 0));
	CHECK(events_added(f) == 0);
}

static void test_stop(void)
{
	run_both(case_stop);
	run(case_stop_then_write, CLEAR, 0);
	run(case_stop_in_read, TLS, BIG_RBUF);
}

/* 19. libevent's common timeouts: a read timeout of 100 ms from
 * event_base_init_common_timeout, on two connections of one base: both
 * time out, in about that time; a write timeout the same. */
static void pair_common_timeout(struct fixture *f, struct fixture *g)
{
	struct timeval tv = { 0, 100 * 1000 };
	const struct timeval *common = event_base_init_common_timeout(f->base, &tv);
	CHECK(common != NULL);
	if (!common)
		return;
	CHECK(common->tv_usec != tv.tv_usec); /* it is a common one */
	conn_io_timeouts(f->r.io, common, NULL);
	conn_io_timeouts(g->r.io, common, NULL);
	conn_io_read_on(f->r.io);
	conn_io_read_on(g->r.io);
	CHECK(event_within(f, 1, CONN_IO_TIMEOUT | CONN_IO_READING, 50, GUARD_MS));
	if (g->r.events == 0)
		CHECK(wait_events(g) >= 0);
	CHECK(g->r.events == 1);
	CHECK(g->r.what[0] == (CONN_IO_TIMEOUT | CONN_IO_READING));
	/* On again, bytes read: the common timeout re-armed with them. */
	conn_io_read_on(f->r.io);
	CHECK(peer_send(f, 0, 10));
	pass(f);
	CHECK(f->r.reads == 1);
	CHECK(event_within(f, 2, CONN_IO_TIMEOUT | CONN_IO_READING, 50, GUARD_MS));
	/* The write timeout. */
	conn_io_timeouts(f->r.io, NULL, common);
	CHECK(write_big(f) > 0);
	CHECK(event_within(f, 3, CONN_IO_TIMEOUT | CONN_IO_WRITING, 50, GUARD_MS));
}

static void test_common_timeout(void)
{
	run_pair(pair_common_timeout, CLEAR, TLS, 0);
}

/* 20. Timeouts changed while waiting: a read timeout of a second cut to
 * 100 ms applies at once; a read or write timeout cleared (NULL) while
 * waiting, or before reading on again, no longer comes. */
static const struct timeval tv_100ms = { 0, 100 * 1000 };

static void case_timeout_cut(struct fixture *f)
{
	struct timeval sec = { 1, 0 };
	conn_io_timeouts(f->r.io, &sec, NULL);
	conn_io_read_on(f->r.io);
	pass(f);
	conn_io_timeouts(f->r.io, &tv_100ms, NULL);
	CHECK(event_within(f, 1, CONN_IO_TIMEOUT | CONN_IO_READING, 50, 600));
}

/* Cleared while reading. */
static void case_timeout_cleared(struct fixture *f)
{
	conn_io_timeouts(f->r.io, &tv_100ms, NULL);
	conn_io_read_on(f->r.io);
	pass(f);
	conn_io_timeouts(f->r.io, NULL, NULL);
	loop_quiet(f->base, QUIET_MS);
	CHECK(f->r.events == 0);
	CHECK(conn_io_reading(f->r.io));
}

/* Cleared while reading was off; bytes read once on again. */
static void case_timeout_cleared_off(struct fixture *f)
{
	conn_io_timeouts(f->r.io, &tv_100ms, NULL);
	conn_io_read_on(f->r.io);
	CHECK(peer_send(f, 0, 10));
	pass(f);
	CHECK(f->r.reads == 1);
	conn_io_read_off(f->r.io);
	conn_io_timeouts(f->r.io, NULL, NULL);
	conn_io_read_on(f->r.io);
	CHECK(peer_send(f, 10, 10));
	pass(f);
	CHECK(f->r.reads == 2);
	loop_quiet(f->base, QUIET_MS);
	CHECK(f->r.events == 0);
}

/* The write timeout cleared with output pending. */
static void case_write_timeout_cleared(struct fixture *f)
{
	conn_io_timeouts(f->r.io, NULL, &tv_100ms);
	CHECK(write_big(f) > 0);
	conn_io_timeouts(f->r.io, NULL, NULL);
	loop_quiet(f->base, QUIET_MS);
	CHECK(f->r.events == 0);
	if (f->r.events)
		return; /* the write direction stopped: nothing more to see */
	/* Still writing as the peer reads. */
	pump(f, WRITE_LEN);
	CHECK(peer_got_is(f, WRITE_LEN));
	CHECK(f->r.writes == 1);
}

static void test_timeouts_change(void)
{
	run(case_timeout_cut, CLEAR, 0);
	run(case_timeout_cleared, CLEAR, 0);
	run(case_timeout_cleared_off, CLEAR, 0);
	run(case_write_timeout_cleared, CLEAR, 0);
}

/* 21. conn_io_new when one of libevent's allocations fails: NULL, the
 * socket closed (the peer meets its end) and the SSL freed, nothing leaked
 * (LeakSanitizer's word); in the clear and under TLS. The first allocation
 * it does not make: a working conn_io. */
static void test_new_fails(void)
{
	for (int mode = CLEAR; mode <= TLS; mode++) {
		int failed = 0;
		bool made = false;
		for (int k = 1; k <= 8 && !made; k++) {
			struct event_base *base = event_base_new();
			int fd[2];
			CHECK(base != NULL);
			if (!base)
				break;
			if (socketpair(AF_UNIX, SOCK_STREAM, 0, fd) != 0 ||
			    evutil_make_socket_nonblocking(fd[0]) != 0 || evutil_make_socket_nonblocking(fd[1]) != 0) {
				CHECK(false); /* socketpair */
				event_base_free(base);
				break;
			}
			struct fixture f;
			memset(&f, 0, sizeof f);
			f.peer = fd[0];
			SSL *server = NULL;
			if (mode == TLS) {
				server = handshake(&f, fd[1], 0);
				CHECK(server != NULL);
				if (!server) {
					close(fd[1]);
					goto next;
				}
				SSL_set_ex_data(server, ssl_idx, &ssl_mark);
			}
			int freed = ssl_freed;
			mem_fail_in = k;
			struct conn_io *io = conn_io_new(base, fd[1], server);
			bool consumed = mem_fail_in == 0;
			mem_fail_in = 0;
			if (io) {
				CHECK(!consumed);
				made = true;
				/* It works. */
				conn_io_read_on(io);
				CHECK(write(fd[0], "x", 1) == 1);
				event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
				CHECK(evbuffer_get_length(conn_io_input(io)) == (mode == TLS ? 0 : 1));
				conn_io_free(io);
				CHECK(ssl_freed == freed + (mode == TLS));
			} else {
				failed++;
				CHECK(consumed);
				CHECK(fcntl(fd[1], F_GETFD) == -1 && errno == EBADF);
				char c;
				CHECK(read(fd[0], &c, 1) == 0); /* the end */
				CHECK(ssl_freed == freed + (mode == TLS));
			}
		next:
			SSL_free(f.client);
			close(fd[0]);
			event_base_free(base);
		}
		CHECK(made);
		CHECK(failed >= 3); /* two buffers and the output's callback */
	}
}

/* 22. conn_io_free in its read callback (records then close_notify, met in
 * the same callback, the end's report due; the budget's rerun due; in the
 * clear with the end behind), in its event callback (an end, an error, the
 * read timeout, the write timeout, a write error), in its write callback,
 * and outside callbacks while paused and with output pending: ASan's word. */

/* freed_in_read: a pass runs the read callback, which saw n bytes and freed
 * the connection; nothing runs after it. */
static void freed_in_read(struct fixture *f, size_t n)
{
	pass(f);
	CHECK(f->r.reads == 1);
	CHECK(f->r.seen[0] == n);
	CHECK(f->r.io == NULL);
	CHECK(still(f, 2, 1, 0));
}

static void case_free_in_read_end(struct fixture *f)
{
	conn_io_read_on(f->r.io);
	f->r.free_in_read = true;
	CHECK(send_records(f));
	CHECK(SSL_shutdown(f->client) == 0);
	freed_in_read(f, RECORDS_LEN);
}

static void case_free_in_read_rerun(struct fixture *f)
{
	conn_io_read_on(f->r.io);
	f->r.free_in_read = true;
	CHECK(peer_send(f, 0, BUDGET_LEN));
	freed_in_read(f, 4 * RECORD_MAX);
}

static void case_free_in_read_clear_end(struct fixture *f)
{
	conn_io_read_on(f->r.io);
	f->r.free_in_read = true;
	CHECK(peer_send(f, 0, 60000));
	CHECK(shutdown(f->peer, SHUT_WR) == 0);
	freed_in_read(f, 60000);
}

/* What the event callback that frees the connection is told. */
enum { BY_TLS_END, BY_JUNK, BY_TLS_TIMEOUT, BY_TIMEOUT, BY_WRITE_TIMEOUT, BY_WRITE_ERROR };

static void free_in_event(struct fixture *f, int by)
{
	short want = CONN_IO_READING;
	struct timeval tv = { 0, 50 * 1000 };
	f->r.free_in_event = true;
	if (by == BY_TLS_END) {
		CHECK(SSL_shutdown(f->client) == 0);
		peer_close(f);
		want |= CONN_IO_EOF;
	} else if (by == BY_JUNK) {
		CHECK(peer_junk(f));
		want |= CONN_IO_ERROR;
	} else if (by == BY_TLS_TIMEOUT || by == BY_TIMEOUT) {
		conn_io_timeouts(f->r.io, &tv, NULL);
		want |= CONN_IO_TIMEOUT;
	} else {
		CHECK(write_big(f) > 0); /* output pending, reading on as well */
		if (by == BY_WRITE_TIMEOUT) {
			conn_io_timeouts(f->r.io, NULL, &tv);
			want = CONN_IO_WRITING | CONN_IO_TIMEOUT;
		} else {
			conn_io_read_high(f->r.io, 1); /* the end unread: the write meets it */
			want = CONN_IO_WRITING | CONN_IO_ERROR;
		}
	}
	conn_io_read_on(f->r.io);
	if (by == BY_WRITE_ERROR) {
		CHECK(peer_send(f, 0, 1));
		pass(f); /* reading pauses at the watermark */
		CHECK(f->r.reads == 1);
		peer_close(f);
	}
	CHECK(event_within(f, 1, want, 0, GUARD_MS));
	CHECK(f->r.io == NULL);
	CHECK(still(f, 1, by == BY_WRITE_ERROR ? 1 : 0, 1));
}

/* In the write callback, reading on. */
static void case_free_in_write(struct fixture *f)
{
	conn_io_read_on(f->r.io);
	f->r.free_in_write = true;
	CHECK(evbuffer_add(conn_io_output(f->r.io), stream, 5000) == 0);
	CHECK(peer_send(f, 0, 100));
	pass(f);
	CHECK(f->r.writes == 1);
	CHECK(f->r.io == NULL);
	pass(f);
	CHECK(f->r.writes == 1);
	CHECK(f->r.events == 0);
}

/* Outside callbacks: paused with bytes held, output pending. */
static void case_free_paused(struct fixture *f)
{
	read_high_4000(f);
	pass(f);
	CHECK(SSL_has_pending(f->r.ssl));
	CHECK(write_big(f) > 0);
	conn_io_free(f->r.io);
	f->r.io = NULL;
	pass(f);
	CHECK(f->r.events == 0);
	CHECK(peer_recv(f) > 0);
}

static void test_free_in_callbacks(void)
{
	run(case_free_in_read_end, TLS, BIG_RBUF);
	run(case_free_in_read_rerun, TLS, BIG_RBUF);
	run(case_free_in_read_clear_end, CLEAR, 0);
	for (int by = BY_TLS_END; by <= BY_WRITE_ERROR; by++)
		run_how(free_in_event, by, by <= BY_TLS_TIMEOUT ? TLS : CLEAR, 0);
	run_both(case_free_in_write);
	run(case_free_paused, TLS, 0);
}

/* peer_read_to_end: the peer reads all it can (into peer_got); how its
 * last SSL_read ended: SSL_ERROR_ZERO_RETURN for a close_notify. */
static int peer_read_to_end(struct fixture *f)
{
	int err = SSL_ERROR_NONE;
	while (err == SSL_ERROR_NONE && f->peer_len < STREAM_LEN) {
		size_t room = STREAM_LEN - f->peer_len;
		int n = SSL_read(f->client, f->peer_got + f->peer_len, room > INT_MAX ? INT_MAX : (int)room);
		if (n > 0)
			f->peer_len += (size_t)n;
		else
			err = SSL_get_error(f->client, n);
	}
	ERR_clear_error();
	return err;
}

/* A clean close sends a close_notify after the last bytes (RFC 9112 9.8);
 * a stopped connection (an aborted answer), one whose peer failed it and
 * one with output left unwritten close without one. */
enum { CLEAN, STOPPED, FAILED, UNWRITTEN };

static void close_after(struct fixture *f, int how)
{
	size_t len = how == UNWRITTEN ? WRITE_LEN : 1000;
	if (how == UNWRITTEN)
		CHECK(write_big(f) > 0);
	else
		write_stream(f, 0, len);
	if (how == STOPPED)
		conn_io_stop(f->r.io);
	if (how == FAILED) {
		conn_io_read_on(f->r.io);
		/* An end without close_notify. */
		CHECK(shutdown(f->peer, SHUT_WR) == 0);
		for (int i = 0; i < 4 && f->r.events == 0; i++)
			pass(f);
		CHECK(f->r.events == 1 && (f->r.what[0] & CONN_IO_EOF));
	}
	conn_io_free(f->r.io);
	f->r.io = NULL;
	int end = peer_read_to_end(f);
	if (how == UNWRITTEN)
		CHECK(f->peer_len < len);
	else
		CHECK(peer_got_is(f, len));
	if (how == CLEAN)
		CHECK(end == SSL_ERROR_ZERO_RETURN);
	else
		CHECK(end != SSL_ERROR_ZERO_RETURN && end != SSL_ERROR_WANT_READ);
}

static void test_close_notify(void)
{
	for (int how = CLEAN; how <= UNWRITTEN; how++)
		run_how(close_after, how, TLS, 0);
}

int main(void)
{
	event_set_mem_functions(mem_malloc, mem_realloc, mem_free);
	signal(SIGPIPE, SIG_IGN);
	stream_init();
	CHECK(tls_contexts());
	if (server_ctx && client_ctx && ssl_idx >= 0) {
		test_tls_new();
		test_tls_records();
		test_tls_budget();
		test_tls_high_watermark();
		test_tls_read_off_on();
		test_tls_eof();
		test_tls_error();
		test_tls_timeout();
		test_clear_read();
		test_clear_high_watermark();
		test_clear_eof();
		test_clear_timeout();
		test_write_direct();
		test_write_full();
		test_write_low();
		test_write_output();
		test_write_timeout();
		test_write_error();
		test_stop();
		test_common_timeout();
		test_timeouts_change();
		test_new_fails();
		test_free_in_callbacks();
		test_close_notify();
	}
	SSL_CTX_free(server_ctx);
	SSL_CTX_free(client_ctx);
	return check_done();
}
