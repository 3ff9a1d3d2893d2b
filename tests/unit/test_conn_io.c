/*
 * test_conn_io.c - conn_io on one end of a socketpair, under TLS (the peer
 * a client SSL on the other end, the handshake done in process) and in the
 * clear, driven by a real event_base one pass at a time.
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

/* self_signed: a P-256 key and a self-signed certificate for it. */
static X509 *self_signed(EVP_PKEY **key)
{
	X509 *x = NULL;
	*key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!*key)
		return NULL;
	x = X509_new();
	X509_NAME *name = X509_NAME_new();
	bool ok = x && name && X509_set_version(x, X509_VERSION_3) &&
		  ASN1_INTEGER_set(X509_get_serialNumber(x), 1) &&
		  X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
		  X509_gmtime_adj(X509_getm_notAfter(x), 86400) &&
		  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
					     (const unsigned char *)"conn-io.test", -1, -1, 0) &&
		  X509_set_subject_name(x, name) && X509_set_issuer_name(x, name) &&
		  X509_set_pubkey(x, *key) && X509_sign(x, *key, EVP_sha256()) > 0;
	X509_NAME_free(name);
	if (!ok) {
		X509_free(x);
		x = NULL;
	}
	return x;
}

static bool tls_contexts(void)
{
	EVP_PKEY *key = NULL;
	X509 *cert = self_signed(&key);
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

static bool setup(struct fixture *f, int mode, size_t rbuf)
{
	return setup_on(f, NULL, mode, rbuf);
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

/* passes: up to n passes, stopping once there were reads read callbacks. */
static void passes(struct fixture *f, int n, int reads)
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

/* stage_of: a new evbuffer holding stream[off..off+len). */
static struct evbuffer *stage_of(size_t off, size_t len)
{
	struct evbuffer *b = evbuffer_new();
	if (b && evbuffer_add(b, stream + off, len) != 0) {
		evbuffer_free(b);
		b = NULL;
	}
	return b;
}

static size_t out_len(struct fixture *f)
{
	return evbuffer_get_length(conn_io_output(f->r.io));
}

/*
 * Reading under TLS
 */

/* 1. conn_io_new turns read-ahead on, leaves reading off (a record waits,
 * no event is added); conn_io_read_on brings it from the loop, not from
 * inside the call; again while on, nothing. With a read timeout set before
 * reading, records come and the timeout stays away. */
static void test_tls_new(void)
{
	struct fixture f;
	CHECK(setup(&f, TLS, 0));
	if (!f.r.io)
		goto out;
	CHECK(f.ahead_before == 0);
	CHECK(SSL_get_read_ahead(f.r.ssl) == 1);
	CHECK(conn_io_fd(f.r.io) == f.fd);
	CHECK(!conn_io_reading(f.r.io));
	CHECK(evbuffer_get_length(conn_io_input(f.r.io)) == 0);
	CHECK(out_len(&f) == 0);
	CHECK(events_added(&f) == 0);
	CHECK(peer_send(&f, 0, 100));
	for (int i = 0; i < 3; i++)
		pass(&f);
	CHECK(f.r.reads == 0);
	CHECK(!fd_silent(f.fd));
	conn_io_read_on(f.r.io);
	CHECK(conn_io_reading(f.r.io));
	CHECK(f.r.reads == 0);
	CHECK(events_added(&f) == 1);
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 100);
	CHECK(in_is(f.r.io, 100));
	conn_io_read_on(f.r.io);
	pass(&f);
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.events == 0);
	CHECK(conn_io_reading(f.r.io));
out:
	teardown(&f);

	CHECK(setup(&f, TLS, 0));
	if (!f.r.io)
		goto out2;
	struct timeval tv = { 0, 150 * 1000 };
	conn_io_timeouts(f.r.io, &tv, NULL);
	conn_io_read_on(f.r.io);
	CHECK(peer_send(&f, 0, 20000));
	passes(&f, 4, 1);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 20000);
	CHECK(in_is(f.r.io, 20000));
	CHECK(f.r.events == 0);
out2:
	teardown(&f);
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

static void test_tls_records(void)
{
	struct fixture f;
	CHECK(setup(&f, TLS, BIG_RBUF));
	if (!f.r.io)
		goto out;
	conn_io_read_on(f.r.io);
	CHECK(send_records(&f));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == RECORDS_LEN);
	CHECK(in_is(f.r.io, RECORDS_LEN));
	CHECK(!SSL_has_pending(f.r.ssl));
	CHECK(fd_silent(f.fd));
	CHECK(f.r.events == 0);
	pass(&f); /* nothing more waits */
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.events == 0);
	CHECK(conn_io_reading(f.r.io));
	/* More later: the next readiness. */
	CHECK(peer_send(&f, RECORDS_LEN, 1000));
	pass(&f);
	CHECK(f.r.reads == 2);
	CHECK(f.r.seen[1] == RECORDS_LEN + 1000);
	CHECK(in_is(f.r.io, RECORDS_LEN + 1000));
out:
	teardown(&f);

	/* OpenSSL's own read buffer. */
	CHECK(setup(&f, TLS, 0));
	if (!f.r.io)
		goto out2;
	conn_io_read_on(f.r.io);
	CHECK(send_records(&f));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] >= 10 + 3000 + RECORD_MAX);
	CHECK(!f.r.held[0]);
	passes(&f, 4, 2);
	CHECK(in_is(f.r.io, RECORDS_LEN));
	CHECK(f.r.reads <= 2);
	CHECK(!SSL_has_pending(f.r.ssl));
	CHECK(fd_silent(f.fd));
	CHECK(f.r.events == 0);
out2:
	teardown(&f);
}

/* 3. 100,000 bytes queued, a read buffer that takes them in one read(2):
 * the first callback stops at 64 KiB, four whole records, the rest inside
 * OpenSSL and the socket empty; the rerun brings the rest in a second
 * callback in the same pass, after the callbacks already due in it: with
 * two such connections the callbacks alternate. With OpenSSL's own read
 * buffer, all in a few passes. */
static void test_tls_budget(void)
{
	struct fixture f;
	CHECK(setup(&f, TLS, BIG_RBUF));
	if (!f.r.io)
		goto out;
	conn_io_read_on(f.r.io);
	CHECK(peer_send(&f, 0, BUDGET_LEN));
	pass(&f);
	CHECK(f.r.reads == 2);
	CHECK(f.r.seen[0] >= READ_MAX && f.r.seen[0] < BUDGET_LEN);
	CHECK(f.r.seen[0] == 4 * RECORD_MAX);
	CHECK(f.r.held[0] && f.r.silent[0]); /* only the rerun can bring the rest */
	CHECK(f.r.seen[1] == BUDGET_LEN);
	CHECK(in_is(f.r.io, BUDGET_LEN));
	CHECK(!SSL_has_pending(f.r.ssl));
	CHECK(fd_silent(f.fd));
	pass(&f);
	pass(&f);
	CHECK(f.r.reads == 2);
	CHECK(f.r.events == 0);
	CHECK(conn_io_reading(f.r.io));
out:
	teardown(&f);

	/* Two connections, one loop. */
	struct fixture g;
	CHECK(setup(&f, TLS, BIG_RBUF));
	CHECK(setup_on(&g, f.base, TLS, BIG_RBUF));
	if (!f.r.io || !g.r.io)
		goto out2;
	f.r.id = 1, g.r.id = 2;
	f.r.drain = g.r.drain = true;
	n_order = 0;
	conn_io_read_on(f.r.io);
	conn_io_read_on(g.r.io);
	CHECK(peer_send(&f, 0, BUDGET_LEN));
	CHECK(peer_send(&g, 0, BUDGET_LEN));
	pass(&f);
	CHECK(n_order == 4);
	CHECK(order[0] != order[1] && order[0] == order[2] && order[1] == order[3]);
	CHECK(f.r.reads == 2 && g.r.reads == 2);
	CHECK(f.r.seen[0] == 4 * RECORD_MAX && g.r.seen[0] == 4 * RECORD_MAX);
	CHECK(got_is(&f.r, BUDGET_LEN));
	CHECK(got_is(&g.r, BUDGET_LEN));
out2:
	teardown(&g);
	teardown(&f); /* the base's owner last */

	CHECK(setup(&f, TLS, 0));
	if (!f.r.io)
		goto out3;
	conn_io_read_on(f.r.io);
	f.r.drain = true;
	CHECK(peer_send(&f, 0, BUDGET_LEN));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] >= 2 * RECORD_MAX);
	passes(&f, 8, 8);
	CHECK(got_is(&f.r, BUDGET_LEN));
	CHECK(f.r.reads <= 4);
	CHECK(!SSL_has_pending(f.r.ssl));
	CHECK(fd_silent(f.fd));
	CHECK(f.r.events == 0);
out3:
	teardown(&f);
}

/* 4. A read high watermark of 4000, three records of 3000 queued in one
 * read(2): the read stops at 6000, the third record inside OpenSSL, the
 * socket empty. Without a read callback nothing comes while the input
 * stays there or is drained and stays over it; drained below it, the third
 * record comes on the next pass: nothing but the drain would bring it.
 * With a read callback that drains the input, the same within the pass. */
static void test_tls_high_watermark(void)
{
	struct fixture f;
	CHECK(setup(&f, TLS, 0));
	if (!f.r.io)
		goto out;
	struct conn_io *io = f.r.io;
	struct evbuffer *in = conn_io_input(io);
	conn_io_setcb(io, NULL, NULL, on_event, &f.r);
	conn_io_read_high(io, 4000);
	conn_io_read_on(io);
	CHECK(peer_send(&f, 0, 3000));
	CHECK(peer_send(&f, 3000, 3000));
	CHECK(peer_send(&f, 6000, 3000));
	pass(&f);
	CHECK(in_is(io, 6000));
	CHECK(SSL_has_pending(f.r.ssl)); /* the hidden bytes */
	CHECK(fd_silent(f.fd));
	for (int i = 0; i < 4; i++)
		pass(&f);
	CHECK(in_is(io, 6000));
	CHECK(SSL_has_pending(f.r.ssl));
	CHECK(events_added(&f) == 0); /* paused */
	CHECK(conn_io_reading(io));
	/* Drained but still over: nothing. */
	CHECK(evbuffer_remove(in, f.r.got, 1000) == 1000);
	f.r.got_len = 1000;
	for (int i = 0; i < 4; i++)
		pass(&f);
	CHECK(evbuffer_get_length(in) == 5000);
	CHECK(SSL_has_pending(f.r.ssl));
	/* Drained to the watermark: still nothing. */
	CHECK(evbuffer_remove(in, f.r.got + 1000, 1000) == 1000);
	f.r.got_len = 2000;
	for (int i = 0; i < 4; i++)
		pass(&f);
	CHECK(evbuffer_get_length(in) == 4000);
	CHECK(SSL_has_pending(f.r.ssl));
	/* Drained below: the rest. */
	take(&f.r, io);
	CHECK(got_is(&f.r, 6000));
	for (int i = 0; i < 4 && evbuffer_get_length(in) == 0; i++)
		pass(&f);
	CHECK(evbuffer_get_length(in) == 3000);
	take(&f.r, io);
	CHECK(got_is(&f.r, 9000));
	CHECK(!SSL_has_pending(f.r.ssl));
	CHECK(f.r.events == 0);
	CHECK(conn_io_reading(io));
	/* Still reading from the socket afterwards. */
	CHECK(peer_send(&f, 9000, 2000));
	pass(&f);
	take(&f.r, io);
	CHECK(got_is(&f.r, 11000));
out:
	teardown(&f);

	CHECK(setup(&f, TLS, 0));
	if (!f.r.io)
		goto out2;
	conn_io_read_high(f.r.io, 4000);
	conn_io_read_on(f.r.io);
	f.r.drain = true;
	CHECK(peer_send(&f, 0, 3000));
	CHECK(peer_send(&f, 3000, 3000));
	CHECK(peer_send(&f, 6000, 3000));
	passes(&f, 4, 2);
	CHECK(f.r.reads == 2);
	CHECK(f.r.seen[0] == 6000);
	CHECK(f.r.held[0] && f.r.silent[0]);
	CHECK(f.r.seen[1] == 3000);
	CHECK(got_is(&f.r, 9000));
	pass(&f);
	CHECK(f.r.reads == 2);
	CHECK(f.r.events == 0);
	CHECK(conn_io_reading(f.r.io));
out2:
	teardown(&f);

	/* Paused, the watermark raised: reading resumes, held bytes first. */
	CHECK(setup(&f, TLS, 0));
	if (!f.r.io)
		goto out3;
	conn_io_read_high(f.r.io, 4000);
	conn_io_read_on(f.r.io);
	CHECK(peer_send(&f, 0, 3000));
	CHECK(peer_send(&f, 3000, 3000));
	CHECK(peer_send(&f, 6000, 3000));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(in_is(f.r.io, 6000));
	pass(&f);
	CHECK(f.r.reads == 1);
	conn_io_read_high(f.r.io, 0);
	passes(&f, 4, 2);
	CHECK(f.r.reads == 2);
	CHECK(in_is(f.r.io, 9000));
	CHECK(f.r.events == 0);
out3:
	teardown(&f);
}

/* 5. Reading turned off in the read callback with bytes left inside
 * OpenSSL (by the watermark, then by the budget with a read buffer that
 * emptied the socket): nothing comes until conn_io_read_on, which brings
 * them from the loop (the socket silent: no readiness would). */
static void test_tls_read_off_on(void)
{
	struct fixture f;
	CHECK(setup(&f, TLS, 0));
	if (!f.r.io)
		goto out;
	conn_io_read_high(f.r.io, 3000);
	conn_io_read_on(f.r.io);
	f.r.off_in_read = true;
	f.r.drain = true;
	CHECK(peer_send(&f, 0, 3000));
	CHECK(peer_send(&f, 3000, 3000));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 3000);
	CHECK(got_is(&f.r, 3000));
	CHECK(!conn_io_reading(f.r.io));
	CHECK(SSL_has_pending(f.r.ssl));
	CHECK(fd_silent(f.fd));
	for (int i = 0; i < 4; i++)
		pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(events_added(&f) == 0);
	f.r.off_in_read = false;
	conn_io_read_on(f.r.io);
	CHECK(f.r.reads == 1); /* from the loop */
	pass(&f);
	CHECK(f.r.reads == 2);
	CHECK(f.r.seen[1] == 3000);
	CHECK(got_is(&f.r, 6000));
	CHECK(!SSL_has_pending(f.r.ssl));
	conn_io_read_on(f.r.io); /* nothing held: no callback */
	pass(&f);
	pass(&f);
	CHECK(f.r.reads == 2);
	CHECK(f.r.events == 0);
out:
	teardown(&f);

	CHECK(setup(&f, TLS, BIG_RBUF));
	if (!f.r.io)
		goto out2;
	conn_io_read_on(f.r.io);
	f.r.off_in_read = true;
	f.r.drain = true;
	CHECK(peer_send(&f, 0, BUDGET_LEN));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 4 * RECORD_MAX);
	CHECK(got_is(&f.r, 4 * RECORD_MAX));
	CHECK(SSL_has_pending(f.r.ssl));
	CHECK(fd_silent(f.fd));
	for (int i = 0; i < 4; i++)
		pass(&f); /* the budget's rerun, if still due, stops at reading off */
	CHECK(f.r.reads == 1);
	f.r.off_in_read = false;
	conn_io_read_on(f.r.io);
	pass(&f);
	CHECK(f.r.reads == 2);
	CHECK(f.r.seen[1] == BUDGET_LEN - 4 * RECORD_MAX);
	CHECK(got_is(&f.r, BUDGET_LEN));
	CHECK(f.r.events == 0);
	CHECK(conn_io_reading(f.r.io));
out2:
	teardown(&f);

	/* Records that come while reading is off wait on the socket. */
	CHECK(setup(&f, TLS, 0));
	if (!f.r.io)
		goto out3;
	conn_io_read_on(f.r.io);
	CHECK(peer_send(&f, 0, 500));
	pass(&f);
	CHECK(f.r.reads == 1);
	conn_io_read_off(f.r.io);
	CHECK(!conn_io_reading(f.r.io));
	CHECK(peer_send(&f, 500, 700));
	for (int i = 0; i < 4; i++)
		pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(in_is(f.r.io, 500));
	conn_io_read_on(f.r.io);
	pass(&f);
	CHECK(f.r.reads == 2);
	CHECK(in_is(f.r.io, 1200));
	CHECK(f.r.events == 0);
out3:
	teardown(&f);
}

/* 6. 500 bytes then the client's end: the bytes to the read callback, then
 * CONN_IO_READING | CONN_IO_EOF to the event callback, reading stopped.
 * close_notify comes in the read(2) that brings the bytes: it is met after
 * them and reported in the same pass (the only way when the client leaves
 * the socket open: it says nothing more); a close without close_notify is
 * met by the next read, on the next pass. */
static void test_tls_eof(void)
{
	for (int how = 0; how < 3; how++) {
		struct fixture f;
		CHECK(setup(&f, TLS, 0));
		if (!f.r.io)
			goto next;
		conn_io_read_on(f.r.io);
		CHECK(peer_send(&f, 0, 500));
		if (how < 2)
			CHECK(SSL_shutdown(f.client) == 0); /* close_notify sent, none back yet */
		if (how != 1)
			peer_close(&f);
		pass(&f);
		CHECK(f.r.reads == 1);
		CHECK(f.r.seen[0] == 500);
		CHECK(in_is(f.r.io, 500));
		if (how == 1)
			CHECK(fd_silent(f.fd));
		CHECK(f.r.events == (how < 2 ? 1 : 0));
		if (how == 2)
			pass(&f);
		CHECK(f.r.reads == 1);
		CHECK(f.r.events == 1);
		CHECK(f.r.what[0] == (CONN_IO_EOF | CONN_IO_READING));
		CHECK(f.r.reads_by[0] == 1);
		if (how < 2)
			CHECK((SSL_get_shutdown(f.r.ssl) & SSL_RECEIVED_SHUTDOWN) != 0);
		CHECK(!conn_io_reading(f.r.io));
		CHECK(events_added(&f) == 0);
		CHECK(in_is(f.r.io, 500));
		pass(&f);
		pass(&f);
		CHECK(f.r.events == 1);
		CHECK(f.r.reads == 1);
	next:
		teardown(&f);
	}

	/* close_notify met with reading turned off in the read callback:
	 * reported once reading is on again. */
	struct fixture f;
	CHECK(setup(&f, TLS, 0));
	if (!f.r.io)
		goto out;
	conn_io_read_on(f.r.io);
	f.r.off_in_read = true;
	CHECK(peer_send(&f, 0, 500));
	CHECK(SSL_shutdown(f.client) == 0);
	pass(&f);
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.events == 0);
	f.r.off_in_read = false;
	conn_io_read_on(f.r.io);
	CHECK(f.r.events == 0);
	pass(&f);
	CHECK(f.r.events == 1);
	CHECK(f.r.what[0] == (CONN_IO_EOF | CONN_IO_READING));
	CHECK(f.r.reads == 1);
	CHECK(!conn_io_reading(f.r.io));
out:
	teardown(&f);
}

/* Bytes that are no TLS record: CONN_IO_ERROR, nothing read; such bytes
 * after a record: the record, then the error in the same pass; a reset (the
 * client closes with bytes of ours unread) after a record: the record, then
 * CONN_IO_ERROR. */
static void test_tls_error(void)
{
	static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	struct fixture f;
	CHECK(setup(&f, TLS, 0));
	if (!f.r.io)
		goto out;
	conn_io_read_on(f.r.io);
	CHECK(write(f.peer, junk, sizeof junk - 1) == (ssize_t)(sizeof junk - 1));
	pass(&f);
	CHECK(f.r.reads == 0);
	CHECK(ended(&f, CONN_IO_ERROR, 0));
	pass(&f);
	CHECK(f.r.events == 1);
out:
	teardown(&f);

	CHECK(setup(&f, TLS, 0));
	if (!f.r.io)
		goto out2;
	conn_io_read_on(f.r.io);
	CHECK(peer_send(&f, 0, 700));
	CHECK(write(f.peer, junk, sizeof junk - 1) == (ssize_t)(sizeof junk - 1));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 700);
	CHECK(ended(&f, CONN_IO_ERROR, 700));
	CHECK(f.r.reads_by[0] == 1);
	pass(&f);
	CHECK(f.r.events == 1);
out2:
	teardown(&f);

	CHECK(setup(&f, TLS, 0));
	if (!f.r.io)
		goto out3;
	conn_io_read_on(f.r.io);
	CHECK(peer_send(&f, 0, 700));
	CHECK(write(f.fd, "unread", 6) == 6);
	peer_close(&f);
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 700);
	CHECK(f.r.events == 0);
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(ended(&f, CONN_IO_ERROR, 700));
out3:
	teardown(&f);
}

/* 7. A read timeout of 100 ms, nothing sent: CONN_IO_READING |
 * CONN_IO_TIMEOUT, reading stops; on again, records come. */
static void test_tls_timeout(void)
{
	struct fixture f;
	CHECK(setup(&f, TLS, BIG_RBUF));
	if (!f.r.io)
		goto out;
	struct timeval tv = { 0, 100 * 1000 };
	conn_io_timeouts(f.r.io, &tv, NULL);
	conn_io_read_on(f.r.io);
	long long took = wait_events(&f);
	CHECK(took >= 50 && took < GUARD_MS);
	CHECK(f.r.events == 1);
	CHECK(f.r.what[0] == (CONN_IO_TIMEOUT | CONN_IO_READING));
	CHECK(f.r.reads == 0);
	CHECK(!conn_io_reading(f.r.io));
	CHECK(events_added(&f) == 0);

	conn_io_read_on(f.r.io);
	CHECK(send_records(&f));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == RECORDS_LEN);
	CHECK(in_is(f.r.io, RECORDS_LEN));
	CHECK(f.r.events == 1);
out:
	teardown(&f);
}

/*
 * Reading in the clear
 */

/* 8. 60,000 bytes waiting: one pass, one read callback, all of them; with
 * 200,000 waiting each pass brings 64 KiB, the last the rest; reading off,
 * bytes wait until conn_io_read_on. */
static void test_clear_read(void)
{
	struct fixture f;
	CHECK(setup(&f, CLEAR, 0));
	if (!f.r.io)
		goto out;
	CHECK(!conn_io_reading(f.r.io));
	CHECK(conn_io_fd(f.r.io) == f.fd);
	CHECK(peer_send(&f, 0, 60000));
	pass(&f);
	pass(&f);
	CHECK(f.r.reads == 0);
	conn_io_read_on(f.r.io);
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 60000);
	CHECK(in_is(f.r.io, 60000));
	CHECK(f.r.events == 0);
	pass(&f); /* nothing more waits */
	CHECK(f.r.reads == 1);
	/* Reading off: bytes wait; on: they come. */
	conn_io_read_off(f.r.io);
	CHECK(peer_send(&f, 60000, 1000));
	for (int i = 0; i < 4; i++)
		pass(&f);
	CHECK(f.r.reads == 1);
	conn_io_read_on(f.r.io);
	pass(&f);
	CHECK(f.r.reads == 2);
	CHECK(in_is(f.r.io, 61000));
	CHECK(f.r.events == 0);
out:
	teardown(&f);

	CHECK(setup(&f, CLEAR, 0));
	if (!f.r.io)
		goto out2;
	conn_io_read_on(f.r.io);
	CHECK(peer_send(&f, 0, 200000));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == READ_MAX);
	CHECK(in_is(f.r.io, READ_MAX));
	for (int i = 0; i < 8 && f.r.reads < 4; i++)
		pass(&f);
	CHECK(f.r.reads == 4);
	CHECK(f.r.seen[1] == 2 * READ_MAX);
	CHECK(f.r.seen[2] == 3 * READ_MAX);
	CHECK(f.r.seen[3] == 200000);
	CHECK(in_is(f.r.io, 200000));
	pass(&f);
	CHECK(f.r.reads == 4);
	CHECK(f.r.events == 0);
	CHECK(conn_io_reading(f.r.io));
out2:
	teardown(&f);

	/* Two connections, one loop: 64 KiB each a pass, in turn. */
	struct fixture g;
	CHECK(setup(&f, CLEAR, 0));
	CHECK(setup_on(&g, f.base, CLEAR, 0));
	if (!f.r.io || !g.r.io)
		goto out3;
	f.r.id = 1, g.r.id = 2;
	f.r.drain = g.r.drain = true;
	n_order = 0;
	conn_io_read_on(f.r.io);
	conn_io_read_on(g.r.io);
	CHECK(peer_send(&f, 0, 2 * READ_MAX));
	CHECK(peer_send(&g, 0, 2 * READ_MAX));
	pass(&f);
	CHECK(n_order == 2);
	CHECK(f.r.reads == 1 && g.r.reads == 1);
	pass(&f);
	CHECK(n_order == 4);
	CHECK(order[0] != order[1] && order[2] != order[3]);
	CHECK(got_is(&f.r, 2 * READ_MAX));
	CHECK(got_is(&g.r, 2 * READ_MAX));
out3:
	teardown(&g);
	teardown(&f);
}

/* 9. A read high watermark of 1000 with 5000 waiting: without a read
 * callback, 1000 then nothing while the input stays at 1000; drained to
 * 500, 500 more; drained below, the next 1000. With a callback that drains,
 * 1000 a callback, in order. */
static void test_clear_high_watermark(void)
{
	struct fixture f;
	CHECK(setup(&f, CLEAR, 0));
	if (!f.r.io)
		goto out;
	struct conn_io *io = f.r.io;
	struct evbuffer *in = conn_io_input(io);
	conn_io_setcb(io, NULL, NULL, on_event, &f.r);
	conn_io_read_high(io, 1000);
	conn_io_read_on(io);
	CHECK(peer_send(&f, 0, 5000));
	pass(&f);
	CHECK(in_is(io, 1000));
	for (int i = 0; i < 4; i++)
		pass(&f);
	CHECK(in_is(io, 1000));
	CHECK(events_added(&f) == 0); /* paused, not spinning */
	CHECK(conn_io_reading(io));
	CHECK(evbuffer_remove(in, f.r.got, 500) == 500);
	f.r.got_len = 500;
	pass(&f);
	CHECK(evbuffer_get_length(in) == 1000);
	pass(&f);
	CHECK(evbuffer_get_length(in) == 1000);
	for (int i = 0; i < 16 && f.r.got_len < 5000; i++) {
		take(&f.r, io);
		pass(&f);
	}
	take(&f.r, io);
	CHECK(got_is(&f.r, 5000));
	CHECK(f.r.events == 0);
out:
	teardown(&f);

	CHECK(setup(&f, CLEAR, 0));
	if (!f.r.io)
		goto out2;
	conn_io_read_high(f.r.io, 1000);
	conn_io_read_on(f.r.io);
	f.r.drain = true;
	CHECK(peer_send(&f, 0, 5000));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 1000);
	for (int i = 0; i < MAX_PASSES && f.r.got_len < 5000; i++)
		pass(&f);
	CHECK(got_is(&f.r, 5000));
	CHECK(f.r.reads == 5);
	for (int i = 0; i < 5; i++)
		CHECK(f.r.seen[i] == 1000);
	pass(&f);
	CHECK(f.r.reads == 5);
	CHECK(f.r.events == 0);
	CHECK(conn_io_reading(f.r.io));
out2:
	teardown(&f);
}

/* 10. Ten bytes then the peer's end: the bytes, then a pass later
 * CONN_IO_READING | CONN_IO_EOF, reading stopped; a reset after ten bytes:
 * the ten, then CONN_IO_READING | CONN_IO_ERROR. */
static void test_clear_eof(void)
{
	struct fixture f;
	CHECK(setup(&f, CLEAR, 0));
	if (!f.r.io)
		goto out;
	conn_io_read_on(f.r.io);
	CHECK(peer_send(&f, 0, 10));
	CHECK(shutdown(f.peer, SHUT_WR) == 0);
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 10);
	CHECK(in_is(f.r.io, 10));
	CHECK(f.r.events == 0);
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(ended(&f, CONN_IO_EOF, 10));
	CHECK(f.r.reads_by[0] == 1);
	CHECK(events_added(&f) == 0);
	pass(&f);
	CHECK(f.r.events == 1);
out:
	teardown(&f);

	CHECK(setup(&f, CLEAR, 0));
	if (!f.r.io)
		goto out2;
	conn_io_read_on(f.r.io);
	CHECK(peer_send(&f, 0, 10));
	CHECK(write(f.fd, "unread", 6) == 6);
	peer_close(&f);
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 10);
	CHECK(f.r.events == 0);
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(ended(&f, CONN_IO_ERROR, 10));
out2:
	teardown(&f);
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

static void test_clear_timeout(void)
{
	struct fixture f;
	CHECK(setup(&f, CLEAR, 0));
	if (!f.r.io)
		goto out;
	struct timeval tv = { 0, 100 * 1000 };
	conn_io_timeouts(f.r.io, &tv, NULL);
	conn_io_read_on(f.r.io);
	long long took = wait_events(&f);
	CHECK(took >= 50 && took < GUARD_MS);
	CHECK(f.r.events == 1);
	CHECK(f.r.what[0] == (CONN_IO_TIMEOUT | CONN_IO_READING));
	CHECK(f.r.reads == 0);
	CHECK(!conn_io_reading(f.r.io));
	CHECK(events_added(&f) == 0);
	conn_io_read_on(f.r.io);
	CHECK(peer_send(&f, 0, 20000));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 20000);
	CHECK(in_is(f.r.io, 20000));
	CHECK(f.r.events == 1);
out:
	teardown(&f);

	CHECK(setup(&f, CLEAR, 0));
	if (!f.r.io)
		goto out2;
	struct timeval tv2 = { 0, 200 * 1000 }, at = { 0, 100 * 1000 };
	conn_io_timeouts(f.r.io, &tv2, NULL);
	conn_io_read_on(f.r.io);
	struct event *later = evtimer_new(f.base, send_later, &f);
	CHECK(later && evtimer_add(later, &at) == 0);
	long long start = mono_ms();
	took = wait_events(&f);
	long long since = mono_ms() - start;
	CHECK(took >= 0);
	CHECK(f.r.reads == 1);
	CHECK(f.r.events == 1);
	CHECK(f.r.what[0] == (CONN_IO_TIMEOUT | CONN_IO_READING));
	CHECK(since >= 250);
	if (later)
		event_free(later);
out2:
	teardown(&f);

	/* conn_io_read_on again while on does not start the wait again. */
	CHECK(setup(&f, CLEAR, 0));
	if (!f.r.io)
		goto out3;
	struct timeval tv3 = { 0, 400 * 1000 }, at3 = { 0, 350 * 1000 };
	conn_io_timeouts(f.r.io, &tv3, NULL);
	conn_io_read_on(f.r.io);
	struct event *again = evtimer_new(f.base, read_on_later, f.r.io);
	CHECK(again && evtimer_add(again, &at3) == 0);
	took = wait_events(&f);
	CHECK(took >= 350 && took < 600);
	CHECK(f.r.events == 1);
	CHECK(f.r.what[0] == (CONN_IO_TIMEOUT | CONN_IO_READING));
	if (again)
		event_free(again);
out3:
	teardown(&f);
}

/*
 * Writing
 */

/* 12. conn_io_write with an empty output: straight to the socket (the peer
 * has the bytes before the loop runs), the stage and the output empty, no
 * event added, no write callback; in the clear and under TLS. */
static void test_write_direct(void)
{
	for (int mode = CLEAR; mode <= TLS; mode++) {
		struct fixture f;
		struct evbuffer *stage = stage_of(0, 1000);
		CHECK(stage != NULL);
		CHECK(setup(&f, mode, 0));
		if (!f.r.io || !stage)
			goto next;
		conn_io_write(f.r.io, stage);
		CHECK(evbuffer_get_length(stage) == 0);
		CHECK(out_len(&f) == 0);
		CHECK(events_added(&f) == 0);
		CHECK(peer_recv(&f) == 1000);
		CHECK(peer_got_is(&f, 1000));
		/* An empty stage: nothing. */
		conn_io_write(f.r.io, stage);
		CHECK(out_len(&f) == 0);
		CHECK(evbuffer_add(stage, stream + 1000, 3000) == 0);
		conn_io_write(f.r.io, stage);
		CHECK(peer_recv(&f) == 3000);
		CHECK(peer_got_is(&f, 4000));
		for (int i = 0; i < 3; i++)
			pass(&f);
		CHECK(f.r.writes == 0);
		CHECK(f.r.events == 0);
		CHECK(f.r.reads == 0);
	next:
		if (stage)
			evbuffer_free(stage);
		teardown(&f);
	}
}

/* 13. A socket that takes a few KiB: conn_io_write of 200,000 bytes puts
 * what it refuses in the output; the loop writes nothing more while the
 * peer reads nothing; a write while that is pending goes to the output
 * whole, behind it; as the peer reads the loop writes it all, the peer has
 * the exact stream (under TLS: the refused SSL_write retried from the
 * output), and the write callback (write low watermark 0) runs once, with
 * the output empty. */
static void test_write_full(void)
{
	for (int mode = CLEAR; mode <= TLS; mode++) {
		struct fixture f;
		struct evbuffer *stage = stage_of(0, WRITE_LEN);
		CHECK(stage != NULL);
		CHECK(setup(&f, mode, 0));
		if (!f.r.io || !stage)
			goto next;
		CHECK(shrink(&f));
		conn_io_write(f.r.io, stage);
		CHECK(evbuffer_get_length(stage) == 0);
		size_t queued = out_len(&f);
		CHECK(queued > 0 && queued < WRITE_LEN);
		CHECK(events_added(&f) == 1);
		for (int i = 0; i < 3; i++)
			pass(&f);
		CHECK(out_len(&f) == queued);
		CHECK(f.r.writes == 0);
		/* Behind what waits, whole. */
		CHECK(evbuffer_add(stage, stream + WRITE_LEN, STREAM_LEN - WRITE_LEN) == 0);
		conn_io_write(f.r.io, stage);
		CHECK(evbuffer_get_length(stage) == 0);
		CHECK(out_len(&f) == queued + STREAM_LEN - WRITE_LEN);
		pump(&f, STREAM_LEN);
		CHECK(peer_got_is(&f, STREAM_LEN));
		CHECK(out_len(&f) == 0);
		CHECK(f.r.writes == 1);
		CHECK(f.r.out_at[0] == 0);
		CHECK(f.r.events == 0);
		CHECK(events_added(&f) == 0);
		pass(&f);
		CHECK(f.r.writes == 1);
		/* Afterwards straight to the socket again. */
		CHECK(evbuffer_add(stage, stream, 100) == 0);
		conn_io_write(f.r.io, stage);
		CHECK(out_len(&f) == 0);
		f.peer_len = 0;
		CHECK(peer_recv(&f) == 100);
		CHECK(peer_got_is(&f, 100));
	next:
		if (stage)
			evbuffer_free(stage);
		teardown(&f);
	}
}

/* 14. A write low watermark of 64 KiB: the write callback runs only once
 * a write leaves the output at or below it, the first time with bytes
 * still in it, the last with it empty. */
static void test_write_low(void)
{
	for (int mode = CLEAR; mode <= TLS; mode++) {
		struct fixture f;
		struct evbuffer *stage = stage_of(0, WRITE_LEN);
		CHECK(stage != NULL);
		CHECK(setup(&f, mode, 0));
		if (!f.r.io || !stage)
			goto next;
		CHECK(shrink(&f));
		conn_io_write_low(f.r.io, READ_MAX);
		conn_io_write(f.r.io, stage);
		CHECK(out_len(&f) > READ_MAX);
		pump(&f, WRITE_LEN);
		CHECK(peer_got_is(&f, WRITE_LEN));
		CHECK(f.r.writes >= 2);
		bool under = true;
		for (int i = 0; i < f.r.writes && i < MAX_CALLS; i++)
			under = under && f.r.out_at[i] <= READ_MAX;
		CHECK(under);
		CHECK(f.r.out_at[0] > 0);
		CHECK(f.r.out_last == 0);
		CHECK(f.r.events == 0);
	next:
		if (stage)
			evbuffer_free(stage);
		teardown(&f);
	}
}

/* 15. Bytes added to conn_io_output directly: nothing reaches the peer
 * until the loop runs, then they do, and the write callback runs once; a
 * conn_io_write while such bytes wait goes behind them. */
static void test_write_output(void)
{
	for (int mode = CLEAR; mode <= TLS; mode++) {
		struct fixture f;
		struct evbuffer *stage = evbuffer_new();
		CHECK(setup(&f, mode, 0));
		if (!f.r.io)
			goto next;
		CHECK(evbuffer_add(conn_io_output(f.r.io), stream, 5000) == 0);
		CHECK(peer_recv(&f) == 0);
		CHECK(fd_silent(f.peer));
		CHECK(events_added(&f) == 1);
		pass(&f);
		CHECK(out_len(&f) == 0);
		CHECK(f.r.writes == 1);
		CHECK(f.r.out_at[0] == 0);
		CHECK(peer_recv(&f) == 5000);
		CHECK(peer_got_is(&f, 5000));
		CHECK(events_added(&f) == 0);
		/* Added, then conn_io_write while that waits for the loop
		 * (the socket has room): behind it, not before. */
		CHECK(evbuffer_add(conn_io_output(f.r.io), stream + 5000, 100) == 0);
		CHECK(stage != NULL);
		if (stage) {
			CHECK(evbuffer_add(stage, stream + 5100, 900) == 0);
			conn_io_write(f.r.io, stage);
			CHECK(evbuffer_get_length(stage) == 0);
		}
		CHECK(out_len(&f) == 1000);
		CHECK(peer_recv(&f) == 0);
		pass(&f);
		pass(&f);
		CHECK(f.r.writes == 2);
		CHECK(peer_recv(&f) == 1000);
		CHECK(peer_got_is(&f, 6000));
		CHECK(f.r.events == 0);
	next:
		if (stage)
			evbuffer_free(stage);
		teardown(&f);
	}
}

/* 16. A write timeout of 100 ms, output pending, the peer reading
 * nothing: CONN_IO_WRITING | CONN_IO_TIMEOUT once, the output kept. Output
 * written in time: no timeout afterwards. */
static void test_write_timeout(void)
{
	for (int mode = CLEAR; mode <= TLS; mode++) {
		struct fixture f;
		struct evbuffer *stage = stage_of(0, WRITE_LEN);
		CHECK(stage != NULL);
		CHECK(setup(&f, mode, 0));
		if (!f.r.io || !stage)
			goto next;
		CHECK(shrink(&f));
		struct timeval tv = { 0, 100 * 1000 };
		conn_io_timeouts(f.r.io, NULL, &tv);
		conn_io_write(f.r.io, stage);
		size_t queued = out_len(&f);
		CHECK(queued > 0);
		long long took = wait_events(&f);
		CHECK(took >= 50 && took < GUARD_MS);
		CHECK(f.r.events == 1);
		CHECK(f.r.what[0] == (CONN_IO_TIMEOUT | CONN_IO_WRITING));
		CHECK(f.r.writes == 0);
		CHECK(out_len(&f) == queued);
		CHECK(events_added(&f) == 0);
		loop_quiet(f.base, 200);
		CHECK(f.r.events == 1);
	next:
		if (stage)
			evbuffer_free(stage);
		teardown(&f);
	}

	struct fixture f;
	CHECK(setup(&f, CLEAR, 0));
	if (!f.r.io)
		goto out;
	struct timeval tv = { 0, 100 * 1000 };
	conn_io_timeouts(f.r.io, NULL, &tv);
	CHECK(evbuffer_add(conn_io_output(f.r.io), stream, 5000) == 0);
	pass(&f);
	CHECK(f.r.writes == 1);
	CHECK(out_len(&f) == 0);
	loop_quiet(f.base, 300);
	CHECK(f.r.events == 0);
out:
	teardown(&f);
}

/* 17. The peer gone: with output pending, CONN_IO_WRITING |
 * CONN_IO_ERROR; gone before conn_io_write, the same (SIGPIPE ignored). */
static void test_write_error(void)
{
	struct fixture f;
	struct evbuffer *stage = stage_of(0, WRITE_LEN);
	CHECK(stage != NULL);
	CHECK(setup(&f, CLEAR, 0));
	if (!f.r.io || !stage)
		goto out;
	CHECK(shrink(&f));
	conn_io_write(f.r.io, stage);
	CHECK(out_len(&f) > 0);
	pass(&f);
	CHECK(f.r.events == 0);
	peer_close(&f);
	CHECK(wait_events(&f) >= 0);
	CHECK(f.r.events == 1);
	CHECK(f.r.what[0] == (CONN_IO_ERROR | CONN_IO_WRITING));
	CHECK(f.r.writes == 0);
	CHECK(events_added(&f) == 0);
	pass(&f);
	CHECK(f.r.events == 1);
out:
	teardown(&f);

	CHECK(setup(&f, CLEAR, 0));
	if (!f.r.io || !stage)
		goto out2;
	peer_close(&f);
	CHECK(evbuffer_add(stage, stream, 1000) == 0);
	conn_io_write(f.r.io, stage);
	CHECK(evbuffer_get_length(stage) == 0);
	CHECK(wait_events(&f) >= 0);
	CHECK(f.r.events == 1);
	CHECK(f.r.what[0] == (CONN_IO_ERROR | CONN_IO_WRITING));
	CHECK(f.r.writes == 0);
out2:
	if (stage)
		evbuffer_free(stage);
	teardown(&f);
}

/*
 * Stop, timeouts, conn_io_new failing, free from callbacks
 */

/* 18. conn_io_stop with reading on and output pending: no callback runs
 * though bytes arrive and the peer reads all; nothing is written or read
 * any more, whatever is asked; in the read callback with a rerun due, the
 * rerun does not come. */
static void test_stop(void)
{
	for (int mode = CLEAR; mode <= TLS; mode++) {
		struct fixture f;
		struct evbuffer *stage = stage_of(0, WRITE_LEN);
		CHECK(stage != NULL);
		CHECK(setup(&f, mode, 0));
		if (!f.r.io || !stage)
			goto next;
		CHECK(shrink(&f));
		struct timeval tv = { 0, 50 * 1000 };
		conn_io_timeouts(f.r.io, &tv, &tv);
		conn_io_read_on(f.r.io);
		conn_io_write(f.r.io, stage);
		size_t queued = out_len(&f);
		CHECK(queued > 0);
		conn_io_stop(f.r.io);
		CHECK(events_added(&f) == 0);
		CHECK(peer_send(&f, 0, 1000));
		peer_recv(&f);
		for (int i = 0; i < 4; i++)
			pass(&f);
		conn_io_read_on(f.r.io);
		conn_io_read_high(f.r.io, 0);
		conn_io_timeouts(f.r.io, &tv, &tv);
		CHECK(evbuffer_add(stage, stream, 100) == 0);
		conn_io_write(f.r.io, stage);
		CHECK(events_added(&f) == 0);
		loop_quiet(f.base, 150);
		CHECK(f.r.reads == 0);
		CHECK(f.r.writes == 0);
		CHECK(f.r.events == 0);
		CHECK(out_len(&f) == queued + 100);
		CHECK(evbuffer_get_length(conn_io_input(f.r.io)) == 0);
		CHECK(f.peer_len == WRITE_LEN - queued);
		CHECK(peer_recv(&f) == 0);
	next:
		if (stage)
			evbuffer_free(stage);
		teardown(&f);
	}

	/* Stopped with the output empty: conn_io_write writes nothing. */
	struct fixture f;
	CHECK(setup(&f, CLEAR, 0));
	if (!f.r.io)
		goto out;
	conn_io_stop(f.r.io);
	struct evbuffer *stage = stage_of(0, 100);
	CHECK(stage != NULL);
	if (stage) {
		conn_io_write(f.r.io, stage);
		evbuffer_free(stage);
	}
	CHECK(out_len(&f) == 100);
	pass(&f);
	CHECK(peer_recv(&f) == 0);
	CHECK(f.r.writes == 0);
out:
	teardown(&f);

	/* Stopped in the read callback, the budget's rerun due. */
	CHECK(setup(&f, TLS, BIG_RBUF));
	if (!f.r.io)
		goto out2;
	conn_io_read_on(f.r.io);
	f.r.stop_in_read = true;
	CHECK(peer_send(&f, 0, BUDGET_LEN));
	CHECK(SSL_shutdown(f.client) == 0);
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 4 * RECORD_MAX);
	for (int i = 0; i < 4; i++)
		pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.events == 0);
	CHECK(events_added(&f) == 0);
out2:
	teardown(&f);
}

/* 19. libevent's common timeouts: a read timeout of 100 ms from
 * event_base_init_common_timeout, on two connections of one base: both
 * time out, in about that time; a write timeout the same. */
static void test_common_timeout(void)
{
	struct fixture f, g;
	CHECK(setup(&f, CLEAR, 0));
	CHECK(setup_on(&g, f.base, TLS, 0));
	if (!f.r.io || !g.r.io)
		goto out;
	struct timeval tv = { 0, 100 * 1000 };
	const struct timeval *common = event_base_init_common_timeout(f.base, &tv);
	CHECK(common != NULL);
	if (!common)
		goto out;
	CHECK(common->tv_usec != tv.tv_usec); /* it is a common one */
	conn_io_timeouts(f.r.io, common, NULL);
	conn_io_timeouts(g.r.io, common, NULL);
	conn_io_read_on(f.r.io);
	conn_io_read_on(g.r.io);
	long long took = wait_events(&f);
	CHECK(took >= 50 && took < GUARD_MS);
	CHECK(f.r.events == 1);
	CHECK(f.r.what[0] == (CONN_IO_TIMEOUT | CONN_IO_READING));
	if (g.r.events == 0)
		CHECK(wait_events(&g) >= 0);
	CHECK(g.r.events == 1);
	CHECK(g.r.what[0] == (CONN_IO_TIMEOUT | CONN_IO_READING));
	/* On again, bytes read: the common timeout re-armed with them. */
	conn_io_read_on(f.r.io);
	CHECK(peer_send(&f, 0, 10));
	pass(&f);
	CHECK(f.r.reads == 1);
	took = wait_events(&f);
	CHECK(took >= 50 && took < GUARD_MS);
	CHECK(f.r.events == 2);
	CHECK(f.r.what[1] == (CONN_IO_TIMEOUT | CONN_IO_READING));
	/* The write timeout. */
	CHECK(shrink(&f));
	conn_io_timeouts(f.r.io, NULL, common);
	struct evbuffer *stage = stage_of(0, WRITE_LEN);
	CHECK(stage != NULL);
	if (stage) {
		conn_io_write(f.r.io, stage);
		evbuffer_free(stage);
	}
	CHECK(out_len(&f) > 0);
	took = wait_events(&f);
	CHECK(took >= 50 && took < GUARD_MS);
	CHECK(f.r.events == 3);
	CHECK(f.r.what[2] == (CONN_IO_TIMEOUT | CONN_IO_WRITING));
out:
	teardown(&g);
	teardown(&f);
}

/* 20. Timeouts changed while waiting: a read timeout of a second cut to
 * 100 ms applies at once; a read or write timeout cleared (NULL) while
 * waiting, or before reading on again, no longer comes. */
static void test_timeouts_change(void)
{
	struct fixture f;
	CHECK(setup(&f, CLEAR, 0));
	if (!f.r.io)
		goto out;
	struct timeval sec = { 1, 0 }, tv = { 0, 100 * 1000 };
	conn_io_timeouts(f.r.io, &sec, NULL);
	conn_io_read_on(f.r.io);
	pass(&f);
	conn_io_timeouts(f.r.io, &tv, NULL);
	long long took = wait_events(&f);
	CHECK(took >= 50 && took < 600);
	CHECK(f.r.events == 1);
	CHECK(f.r.what[0] == (CONN_IO_TIMEOUT | CONN_IO_READING));
out:
	teardown(&f);

	/* Cleared while reading. */
	CHECK(setup(&f, CLEAR, 0));
	if (!f.r.io)
		goto out2;
	conn_io_timeouts(f.r.io, &tv, NULL);
	conn_io_read_on(f.r.io);
	pass(&f);
	conn_io_timeouts(f.r.io, NULL, NULL);
	loop_quiet(f.base, QUIET_MS);
	CHECK(f.r.events == 0);
	CHECK(conn_io_reading(f.r.io));
out2:
	teardown(&f);

	/* Cleared while reading was off; bytes read once on again. */
	CHECK(setup(&f, CLEAR, 0));
	if (!f.r.io)
		goto out3;
	conn_io_timeouts(f.r.io, &tv, NULL);
	conn_io_read_on(f.r.io);
	CHECK(peer_send(&f, 0, 10));
	pass(&f);
	CHECK(f.r.reads == 1);
	conn_io_read_off(f.r.io);
	conn_io_timeouts(f.r.io, NULL, NULL);
	conn_io_read_on(f.r.io);
	CHECK(peer_send(&f, 10, 10));
	pass(&f);
	CHECK(f.r.reads == 2);
	loop_quiet(f.base, QUIET_MS);
	CHECK(f.r.events == 0);
out3:
	teardown(&f);

	/* The write timeout cleared with output pending. */
	CHECK(setup(&f, CLEAR, 0));
	if (!f.r.io)
		goto out4;
	CHECK(shrink(&f));
	conn_io_timeouts(f.r.io, NULL, &tv);
	struct evbuffer *stage = stage_of(0, WRITE_LEN);
	CHECK(stage != NULL);
	if (stage) {
		conn_io_write(f.r.io, stage);
		evbuffer_free(stage);
	}
	CHECK(out_len(&f) > 0);
	conn_io_timeouts(f.r.io, NULL, NULL);
	loop_quiet(f.base, QUIET_MS);
	CHECK(f.r.events == 0);
	if (f.r.events)
		goto out4; /* the write direction stopped: nothing more to see */
	/* Still writing as the peer reads. */
	pump(&f, WRITE_LEN);
	CHECK(peer_got_is(&f, WRITE_LEN));
	CHECK(f.r.writes == 1);
out4:
	teardown(&f);
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
static void test_free_in_callbacks(void)
{
	struct fixture f;
	CHECK(setup(&f, TLS, BIG_RBUF));
	if (!f.r.io)
		goto out;
	conn_io_read_on(f.r.io);
	f.r.free_in_read = true;
	CHECK(send_records(&f));
	CHECK(SSL_shutdown(f.client) == 0);
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == RECORDS_LEN);
	CHECK(f.r.io == NULL);
	pass(&f);
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.events == 0);
out:
	teardown(&f);

	CHECK(setup(&f, TLS, BIG_RBUF));
	if (!f.r.io)
		goto out2;
	conn_io_read_on(f.r.io);
	f.r.free_in_read = true;
	CHECK(peer_send(&f, 0, BUDGET_LEN));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 4 * RECORD_MAX);
	CHECK(f.r.io == NULL);
	pass(&f);
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.events == 0);
out2:
	teardown(&f);

	CHECK(setup(&f, CLEAR, 0));
	if (!f.r.io)
		goto out3;
	conn_io_read_on(f.r.io);
	f.r.free_in_read = true;
	CHECK(peer_send(&f, 0, 60000));
	CHECK(shutdown(f.peer, SHUT_WR) == 0);
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.io == NULL);
	pass(&f);
	CHECK(f.r.events == 0);
out3:
	teardown(&f);

	for (int how = 0; how < 6; how++) {
		int mode = how == 0 || how == 1 || how == 2 ? TLS : CLEAR;
		CHECK(setup(&f, mode, 0));
		if (!f.r.io)
			goto next;
		f.r.free_in_event = true;
		short want = CONN_IO_READING;
		struct timeval tv = { 0, 50 * 1000 };
		if (how == 0) {
			CHECK(SSL_shutdown(f.client) == 0);
			peer_close(&f);
			want |= CONN_IO_EOF;
		} else if (how == 1) {
			static const char junk[] = "GET / HTTP/1.1\r\n\r\n";
			CHECK(write(f.peer, junk, sizeof junk - 1) == (ssize_t)(sizeof junk - 1));
			want |= CONN_IO_ERROR;
		} else if (how == 2 || how == 3) {
			conn_io_timeouts(f.r.io, &tv, NULL);
			want |= CONN_IO_TIMEOUT;
		} else {
			/* Output pending, reading on as well. */
			CHECK(shrink(&f));
			struct evbuffer *stage = stage_of(0, WRITE_LEN);
			CHECK(stage != NULL);
			if (stage) {
				conn_io_write(f.r.io, stage);
				evbuffer_free(stage);
			}
			if (how == 4) {
				conn_io_timeouts(f.r.io, NULL, &tv);
				want = CONN_IO_WRITING | CONN_IO_TIMEOUT;
			} else {
				conn_io_read_high(f.r.io, 1); /* the end unread: the write meets it */
				want = CONN_IO_WRITING | CONN_IO_ERROR;
			}
		}
		conn_io_read_on(f.r.io);
		if (how == 5) {
			CHECK(peer_send(&f, 0, 1));
			pass(&f); /* reading pauses at the watermark */
			CHECK(f.r.reads == 1);
			peer_close(&f);
		}
		CHECK(wait_events(&f) >= 0);
		CHECK(f.r.events == 1);
		CHECK(f.r.what[0] == want);
		CHECK(f.r.io == NULL);
		CHECK(f.r.reads == (how == 5 ? 1 : 0));
		pass(&f);
		CHECK(f.r.events == 1);
	next:
		teardown(&f);
	}

	/* In the write callback, reading on. */
	for (int mode = CLEAR; mode <= TLS; mode++) {
		CHECK(setup(&f, mode, 0));
		if (!f.r.io)
			goto next2;
		conn_io_read_on(f.r.io);
		f.r.free_in_write = true;
		CHECK(evbuffer_add(conn_io_output(f.r.io), stream, 5000) == 0);
		CHECK(peer_send(&f, 0, 100));
		pass(&f);
		CHECK(f.r.writes == 1);
		CHECK(f.r.io == NULL);
		pass(&f);
		CHECK(f.r.writes == 1);
		CHECK(f.r.events == 0);
	next2:
		teardown(&f);
	}

	/* Outside callbacks: paused with bytes held, output pending. */
	CHECK(setup(&f, TLS, 0));
	if (!f.r.io)
		goto out4;
	CHECK(shrink(&f));
	conn_io_read_high(f.r.io, 4000);
	conn_io_read_on(f.r.io);
	CHECK(peer_send(&f, 0, 3000));
	CHECK(peer_send(&f, 3000, 3000));
	CHECK(peer_send(&f, 6000, 3000));
	pass(&f);
	CHECK(SSL_has_pending(f.r.ssl));
	struct evbuffer *stage = stage_of(0, WRITE_LEN);
	CHECK(stage != NULL);
	if (stage) {
		conn_io_write(f.r.io, stage);
		evbuffer_free(stage);
	}
	CHECK(out_len(&f) > 0);
	conn_io_free(f.r.io);
	f.r.io = NULL;
	pass(&f);
	CHECK(f.r.events == 0);
	CHECK(peer_recv(&f) > 0);
out4:
	teardown(&f);
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
static void test_close_notify(void)
{
	enum { CLEAN, STOPPED, FAILED, UNWRITTEN };
	for (int how = CLEAN; how <= UNWRITTEN; how++) {
		struct fixture f;
		CHECK(setup(&f, TLS, 0));
		if (!f.r.io)
			goto next;
		if (how == UNWRITTEN)
			CHECK(shrink(&f));
		size_t len = how == UNWRITTEN ? WRITE_LEN : 1000;
		struct evbuffer *stage = stage_of(0, len);
		CHECK(stage != NULL);
		if (stage) {
			conn_io_write(f.r.io, stage);
			evbuffer_free(stage);
		}
		if (how == UNWRITTEN)
			CHECK(out_len(&f) > 0);
		if (how == STOPPED)
			conn_io_stop(f.r.io);
		if (how == FAILED) {
			conn_io_read_on(f.r.io);
			/* An end without close_notify. */
			CHECK(shutdown(f.peer, SHUT_WR) == 0);
			for (int i = 0; i < 4 && f.r.events == 0; i++)
				pass(&f);
			CHECK(f.r.events == 1 && (f.r.what[0] & CONN_IO_EOF));
		}
		conn_io_free(f.r.io);
		f.r.io = NULL;
		int end = peer_read_to_end(&f);
		if (how == UNWRITTEN) {
			CHECK(f.peer_len < len);
		} else {
			CHECK(peer_got_is(&f, len));
		}
		if (how == CLEAN)
			CHECK(end == SSL_ERROR_ZERO_RETURN);
		else
			CHECK(end != SSL_ERROR_ZERO_RETURN && end != SSL_ERROR_WANT_READ);
	next:
		teardown(&f);
	}
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
