/*
 * test_tls_read.c - tls_read_install on a bufferevent_openssl over an
 * in-process TLS pair (a client SSL on one end of a socketpair, the
 * bufferevent on the other), driven by a real event_base one pass at a
 * time: the read event's callback is replaced, once, and read-ahead is on;
 * records queued together come in one read callback (all that OpenSSL's
 * read buffer took, and the record it cut), up to 64 KiB, the rest in a
 * rerun behind the callbacks already due, even when OpenSSL alone holds
 * it; at the read high watermark bytes stay inside OpenSSL until a drain of
 * the input brings them; with reading disabled they wait for tls_read_kick;
 * close_notify, a close without it, a reset, bytes that are no TLS and the
 * read timeout reach the event callback with BEV_EVENT_READING, after the
 * bytes before them, and stop reading; the bufferevent freed from its own
 * callbacks.
 */
#include "tests/unit/check.h"
#include "tests/unit/loop_check.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "proxy/net/tls_read.h"

#define READ_MAX (64 * 1024)   /* tls_read's bytes per callback, TLS_READ_MAX */
#define RECORD_MAX (16 * 1024) /* a TLS record's payload at most */
#define BIG_RBUF (256 * 1024)  /* an OpenSSL read buffer that takes all a test sends */
#define STREAM_LEN (128 * 1024)
#define MAX_CALLS 16

/* TLS contexts */

static SSL_CTX *server_ctx, *client_ctx;

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
					     (const unsigned char *)"tls-read.test", -1, -1, 0) &&
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
	X509_free(cert);
	EVP_PKEY_free(key);
	if (!ok)
		ERR_print_errors_fp(stderr);
	return ok;
}

/* The order read callbacks ran in, across bufferevents: their recs' ids. */
static int order[MAX_CALLS], n_order;

/* What the callbacks saw. */
struct rec {
	int id;
	struct bufferevent *bev; /* NULL once a callback freed it */
	SSL *ssl;                /* its SSL */
	int reads;               /* read callbacks */
	size_t seen[MAX_CALLS];  /* the input's length at each */
	bool held[MAX_CALLS];    /* and whether OpenSSL held bytes then */
	bool silent[MAX_CALLS];  /* and whether the socket had none */
	int events;              /* event callbacks */
	short what[MAX_CALLS];   /* what each was told */
	int err[MAX_CALLS];      /* and the socket error then */
	int reads_by[MAX_CALLS]; /* and the read callbacks before it */
	bool drain;              /* the read callback moves the input to got */
	bool disable_in_read;    /* the read callback disables reading (before draining) */
	bool free_in_read, free_in_event;
	uint8_t got[STREAM_LEN];
	size_t got_len;
};

/* take: move bev's input to r->got. */
static void take(struct rec *r, struct bufferevent *bev)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in), room = STREAM_LEN - r->got_len;
	ev_ssize_t n = evbuffer_remove(in, r->got + r->got_len, len < room ? len : room);
	if (n > 0)
		r->got_len += (size_t)n;
}

/* socket_silent: bev's socket has no bytes to read: what OpenSSL holds no
 * readiness will announce. (FIONREAD, as a peek would take a pending
 * ECONNRESET.) */
static bool socket_silent(struct bufferevent *bev)
{
	int n = -1;
	return ioctl(bufferevent_getfd(bev), FIONREAD, &n) == 0 && n == 0;
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct rec *r = arg;
	size_t len = evbuffer_get_length(bufferevent_get_input(bev));
	if (r->reads < MAX_CALLS) {
		r->seen[r->reads] = len;
		r->held[r->reads] = SSL_has_pending(r->ssl);
		r->silent[r->reads] = socket_silent(bev);
	}
	r->reads++;
	if (n_order < MAX_CALLS)
		order[n_order++] = r->id;
	if (r->disable_in_read)
		bufferevent_disable(bev, EV_READ);
	if (r->drain)
		take(r, bev);
	if (r->free_in_read) {
		bufferevent_free(bev);
		r->bev = NULL;
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct rec *r = arg;
	int err = EVUTIL_SOCKET_ERROR();
	if (r->events < MAX_CALLS) {
		r->what[r->events] = what;
		r->err[r->events] = err;
		r->reads_by[r->events] = r->reads;
	}
	r->events++;
	if (r->free_in_event) {
		bufferevent_free(bev);
		r->bev = NULL;
	}
}

/* The bufferevent on fd[1] of a socketpair, its TLS peer the client on fd[0]. */
struct fixture {
	struct event_base *base;
	bool own_base; /* freed with the fixture */
	SSL *server; /* the bufferevent's */
	SSL *client;
	int peer; /* fd[0], the client's; -1 once closed */
	struct rec r;
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

/* setup_on: the handshake done, the server side in a bufferevent_openssl
 * in the open state on base (a new one if NULL), with the test's
 * callbacks; rbuf, if not 0, the server's read buffer length (OpenSSL's
 * own is a record and a bit). tls_read not installed yet. */
static bool setup_on(struct fixture *f, struct event_base *base, int options, size_t rbuf)
{
	int fd[2];
	memset(f, 0, sizeof *f);
	f->peer = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, fd) != 0) {
		perror("socketpair");
		return false;
	}
	f->peer = fd[0];
	/* Room for all the client sends, queued at once. */
	int size = 1 << 20;
	setsockopt(fd[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
	setsockopt(fd[1], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
	SSL *server = NULL;
	if (evutil_make_socket_nonblocking(fd[0]) != 0 || evutil_make_socket_nonblocking(fd[1]) != 0)
		goto fail;
	f->client = SSL_new(client_ctx);
	server = SSL_new(server_ctx);
	if (!f->client || !server || SSL_set_fd(f->client, fd[0]) != 1 || SSL_set_fd(server, fd[1]) != 1)
		goto fail;
	if (rbuf)
		SSL_set_default_read_buffer_len(server, rbuf);
	SSL_set_connect_state(f->client);
	SSL_set_accept_state(server);
	bool cdone = false, sdone = false;
	for (int i = 0; i < 32 && !(cdone && sdone); i++)
		if (!handshake_step(f->client, &cdone) || !handshake_step(server, &sdone))
			break;
	if (!(cdone && sdone)) {
		fprintf(stderr, "handshake did not complete\n");
		ERR_print_errors_fp(stderr);
		goto fail;
	}
	f->base = base ? base : event_base_new();
	f->own_base = !base;
	if (!f->base)
		goto fail;
	f->r.bev = bufferevent_openssl_socket_new(f->base, fd[1], server, BUFFEREVENT_SSL_OPEN,
						  BEV_OPT_CLOSE_ON_FREE | options);
	if (!f->r.bev)
		return false; /* server and fd[1] freed by the failed call */
	bufferevent_openssl_set_allow_dirty_shutdown(f->r.bev, 1); /* as the fronts */
	f->server = f->r.ssl = server;
	bufferevent_setcb(f->r.bev, on_read, NULL, on_event, &f->r);
	return true;
fail:
	SSL_free(server);
	close(fd[1]);
	return false;
}

static bool setup(struct fixture *f, int options, size_t rbuf)
{
	return setup_on(f, NULL, options, rbuf);
}

static void teardown(struct fixture *f)
{
	if (f->r.bev)
		bufferevent_free(f->r.bev);
	if (f->base && f->own_base)
		event_base_free(f->base); /* runs what finalizers are left */
	SSL_free(f->client);
	if (f->peer >= 0)
		close(f->peer);
	f->r.bev = NULL, f->base = NULL, f->client = NULL, f->peer = -1;
}

/* client_send: the client sends stream[off..off+len), in records of at most
 * 16 KiB (one if len is no more). */
static bool client_send(struct fixture *f, size_t off, size_t len)
{
	int n = SSL_write(f->client, stream + off, (int)len);
	if (n != (int)len) {
		fprintf(stderr, "SSL_write %zu: %d (error %d)\n", len, n, SSL_get_error(f->client, n));
		return false;
	}
	return true;
}

static void client_close(struct fixture *f)
{
	close(f->peer);
	f->peer = -1;
}

static bool socket_empty(struct fixture *f)
{
	return socket_silent(f->r.bev);
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

static long long wait_events(struct fixture *f)
{
	return loop_wait_events(f->base, &f->r.events);
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

/* 1. The read event gets tls_read's callback, for the same socket and
 * bufferevent, and the SSL read-ahead; a second install changes nothing;
 * reading enabled with a timeout before the install stays so after it. */
static void test_install(void)
{
	struct fixture f;
	CHECK(setup(&f, 0, 0));
	if (!f.r.bev)
		goto out;
	struct bufferevent *bev = f.r.bev;
	event_callback_fn own = event_get_callback(&bev->ev_read);
	evutil_socket_t fd = bufferevent_getfd(bev);
	CHECK(own != NULL);
	CHECK(bufferevent_openssl_get_ssl(bev) == f.server);
	CHECK(SSL_get_read_ahead(f.server) == 0);
	int was_pending = event_pending(&bev->ev_read, EV_READ, NULL);

	tls_read_install(bev);
	event_callback_fn ours = event_get_callback(&bev->ev_read);
	CHECK(ours != NULL && ours != own);
	CHECK(event_get_callback_arg(&bev->ev_read) == bev);
	CHECK(event_get_fd(&bev->ev_read) == fd);
	CHECK(event_get_base(&bev->ev_read) == f.base);
	CHECK((event_get_events(&bev->ev_read) & (EV_READ | EV_PERSIST)) == (EV_READ | EV_PERSIST));
	CHECK(event_pending(&bev->ev_read, EV_READ, NULL) == was_pending);
	CHECK(SSL_get_read_ahead(f.server) == 1);

	tls_read_install(bev);
	CHECK(event_get_callback(&bev->ev_read) == ours);
	CHECK(event_get_callback_arg(&bev->ev_read) == bev);
	CHECK(SSL_get_read_ahead(f.server) == 1);

	/* Enabled: pending, through tls_read, and a record comes in. */
	CHECK(bufferevent_enable(bev, EV_READ) == 0);
	CHECK(event_pending(&bev->ev_read, EV_READ, NULL));
	CHECK(event_get_callback(&bev->ev_read) == ours);
	CHECK(client_send(&f, 0, 100));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 100);
	CHECK(input_is(bev, 100));
out:
	teardown(&f);

	/* Reading on with a read timeout before the install: the same after. */
	CHECK(setup(&f, 0, 0));
	if (!f.r.bev)
		goto out2;
	bev = f.r.bev;
	struct timeval tv = { 0, 150 * 1000 };
	CHECK(bufferevent_set_timeouts(bev, &tv, NULL) == 0);
	CHECK(bufferevent_enable(bev, EV_READ) == 0);
	own = event_get_callback(&bev->ev_read);
	CHECK(event_pending(&bev->ev_read, EV_READ | EV_TIMEOUT, NULL) == (EV_READ | EV_TIMEOUT));
	tls_read_install(bev);
	CHECK(event_get_callback(&bev->ev_read) != own);
	CHECK(event_pending(&bev->ev_read, EV_READ | EV_TIMEOUT, NULL) == (EV_READ | EV_TIMEOUT));
	CHECK(SSL_get_read_ahead(f.server) == 1);
	CHECK(client_send(&f, 0, 20000));
	passes(&f, 4, 1);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 20000);
	CHECK(input_is(bev, 20000));
	CHECK(f.r.events == 0);
out2:
	teardown(&f);
}

/* 2. Records of 10, 3000, 16384 and 5000 bytes queued before a pass: with
 * a read buffer that takes them all, that one pass brings them in one read
 * callback, in order. With OpenSSL's own buffer (a record and a bit) the
 * first callback brings what the first read(2) took and the record it cut
 * (the first three: SSL_has_pending is 0 at that record's end), the rest
 * comes on the next pass. libevent's own callback brings a record a pass:
 * shown without the install. */
static const size_t records[] = { 10, 3000, RECORD_MAX, 5000 };
#define RECORDS_LEN (10 + 3000 + RECORD_MAX + 5000) /* 24,394 */

static bool send_records(struct fixture *f)
{
	size_t off = 0;
	for (size_t i = 0; i < sizeof records / sizeof records[0]; i++) {
		if (!client_send(f, off, records[i]))
			return false;
		off += records[i];
	}
	return true;
}

static void test_records(void)
{
	struct fixture f;
	CHECK(setup(&f, 0, BIG_RBUF));
	if (!f.r.bev)
		goto out;
	tls_read_install(f.r.bev);
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	CHECK(send_records(&f));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == RECORDS_LEN);
	CHECK(input_is(f.r.bev, RECORDS_LEN));
	CHECK(!SSL_has_pending(f.server));
	CHECK(socket_empty(&f));
	CHECK(f.r.events == 0);
	pass(&f); /* nothing more waits */
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.events == 0);
	CHECK(reading(f.r.bev));
	/* More later: the next readiness. */
	CHECK(client_send(&f, RECORDS_LEN, 1000));
	pass(&f);
	CHECK(f.r.reads == 2);
	CHECK(f.r.seen[1] == RECORDS_LEN + 1000);
	CHECK(input_is(f.r.bev, RECORDS_LEN + 1000));
out:
	teardown(&f);

	/* OpenSSL's own read buffer. */
	CHECK(setup(&f, 0, 0));
	if (!f.r.bev)
		goto out2;
	tls_read_install(f.r.bev);
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	CHECK(send_records(&f));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] >= 10 + 3000 + RECORD_MAX);
	CHECK(!f.r.held[0]);
	passes(&f, 4, 2);
	CHECK(input_is(f.r.bev, RECORDS_LEN));
	CHECK(f.r.reads <= 2);
	CHECK(!SSL_has_pending(f.server));
	CHECK(socket_empty(&f));
	CHECK(f.r.events == 0);
out2:
	teardown(&f);

	/* The control: libevent's own callback. */
	CHECK(setup(&f, 0, BIG_RBUF));
	if (!f.r.bev)
		goto out3;
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	CHECK(send_records(&f));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 10);
	passes(&f, MAX_PASSES, MAX_CALLS);
	CHECK(input_is(f.r.bev, RECORDS_LEN));
	CHECK(f.r.reads == 4);
out3:
	teardown(&f);
}

/* 3. 100,000 bytes (seven records, six of 16 KiB) queued, a read buffer
 * that takes them in one read(2): the first callback stops once it has
 * 64 KiB, four whole records, with the rest inside OpenSSL and the socket
 * empty; its rerun brings the rest in a second callback, in the same loop
 * pass but after the callbacks already due in it: with two such
 * connections the callbacks alternate. With OpenSSL's own read buffer each
 * callback brings two records at least, all in a few passes. */
#define BUDGET_LEN 100000

static void test_budget(void)
{
	struct fixture f;
	CHECK(setup(&f, 0, BIG_RBUF));
	if (!f.r.bev)
		goto out;
	tls_read_install(f.r.bev);
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	CHECK(client_send(&f, 0, BUDGET_LEN));
	pass(&f);
	CHECK(f.r.reads == 2);
	CHECK(f.r.seen[0] >= READ_MAX && f.r.seen[0] < BUDGET_LEN);
	CHECK(f.r.seen[0] == 4 * RECORD_MAX);
	CHECK(f.r.held[0] && f.r.silent[0]); /* only the rerun can bring the rest */
	CHECK(f.r.seen[1] == BUDGET_LEN);
	CHECK(input_is(f.r.bev, BUDGET_LEN));
	CHECK(!SSL_has_pending(f.server));
	CHECK(socket_empty(&f));
	pass(&f);
	pass(&f);
	CHECK(f.r.reads == 2);
	CHECK(f.r.events == 0);
	CHECK(reading(f.r.bev));
out:
	teardown(&f);

	/* Two connections, one loop. */
	struct fixture g;
	CHECK(setup(&f, 0, BIG_RBUF));
	CHECK(setup_on(&g, f.base, 0, BIG_RBUF));
	if (!f.r.bev || !g.r.bev)
		goto out2;
	f.r.id = 1, g.r.id = 2;
	f.r.drain = g.r.drain = true;
	n_order = 0;
	tls_read_install(f.r.bev);
	tls_read_install(g.r.bev);
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	CHECK(bufferevent_enable(g.r.bev, EV_READ) == 0);
	CHECK(client_send(&f, 0, BUDGET_LEN));
	CHECK(client_send(&g, 0, BUDGET_LEN));
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

	CHECK(setup(&f, 0, 0));
	if (!f.r.bev)
		goto out3;
	tls_read_install(f.r.bev);
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	f.r.drain = true;
	CHECK(client_send(&f, 0, BUDGET_LEN));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] >= 2 * RECORD_MAX);
	passes(&f, 8, 8);
	CHECK(got_is(&f.r, BUDGET_LEN));
	CHECK(f.r.reads <= 4);
	CHECK(!SSL_has_pending(f.server));
	CHECK(socket_empty(&f));
	CHECK(f.r.events == 0);
out3:
	teardown(&f);
}

/* 4. A read high watermark of 4000, three records of 3000 queued in one
 * read(2): the read stops at 6000, the third record inside OpenSSL, the
 * socket empty. With no read callback (libevent calls one again and again
 * while the input stays at the watermark), nothing comes while the input
 * stays there or is drained and stays over it; drained below it, the third
 * record comes on the next pass: the drain's kick, nothing else would
 * bring it. With a read callback that drains the input, the same within
 * the pass. */
static void test_high_watermark(void)
{
	struct fixture f;
	CHECK(setup(&f, 0, 0));
	if (!f.r.bev)
		goto out;
	struct bufferevent *bev = f.r.bev;
	struct evbuffer *in = bufferevent_get_input(bev);
	bufferevent_setcb(bev, NULL, NULL, on_event, &f.r);
	tls_read_install(bev);
	bufferevent_setwatermark(bev, EV_READ, 0, 4000);
	CHECK(bufferevent_enable(bev, EV_READ) == 0);
	CHECK(client_send(&f, 0, 3000));
	CHECK(client_send(&f, 3000, 3000));
	CHECK(client_send(&f, 6000, 3000));
	pass(&f);
	CHECK(input_is(bev, 6000));
	CHECK(SSL_has_pending(f.server)); /* the hidden bytes */
	CHECK(socket_empty(&f));
	for (int i = 0; i < 4; i++)
		pass(&f);
	CHECK(input_is(bev, 6000));
	CHECK(SSL_has_pending(f.server));
	/* Drained but still over: nothing. */
	CHECK(evbuffer_remove(in, f.r.got, 1000) == 1000);
	f.r.got_len = 1000;
	for (int i = 0; i < 4; i++)
		pass(&f);
	CHECK(evbuffer_get_length(in) == 5000);
	CHECK(SSL_has_pending(f.server));
	/* Drained below: the rest. */
	take(&f.r, bev);
	CHECK(got_is(&f.r, 6000));
	for (int i = 0; i < 4 && evbuffer_get_length(in) == 0; i++)
		pass(&f);
	CHECK(evbuffer_get_length(in) == 3000);
	take(&f.r, bev);
	CHECK(got_is(&f.r, 9000));
	CHECK(!SSL_has_pending(f.server));
	CHECK(f.r.events == 0);
	CHECK(reading(bev));
	/* Still reading from the socket afterwards. */
	CHECK(client_send(&f, 9000, 2000));
	pass(&f);
	take(&f.r, bev);
	CHECK(got_is(&f.r, 11000));
out:
	teardown(&f);

	CHECK(setup(&f, 0, 0));
	if (!f.r.bev)
		goto out2;
	tls_read_install(f.r.bev);
	bufferevent_setwatermark(f.r.bev, EV_READ, 0, 4000);
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	f.r.drain = true;
	CHECK(client_send(&f, 0, 3000));
	CHECK(client_send(&f, 3000, 3000));
	CHECK(client_send(&f, 6000, 3000));
	passes(&f, 4, 2);
	CHECK(f.r.reads == 2);
	CHECK(f.r.seen[0] == 6000);
	CHECK(f.r.held[0] && f.r.silent[0]);
	CHECK(f.r.seen[1] == 3000);
	CHECK(got_is(&f.r, 9000));
	pass(&f);
	CHECK(f.r.reads == 2);
	CHECK(f.r.events == 0);
	CHECK(reading(f.r.bev));
out2:
	teardown(&f);
}

/* 5. Reading disabled in the read callback with bytes left inside OpenSSL
 * (by the watermark, then by the budget with a read buffer that emptied
 * the socket): nothing comes, not even once reading is enabled again, until
 * tls_read_kick; a kick with nothing held or reading off does nothing. */
static void test_disable_kick(void)
{
	struct fixture f;
	CHECK(setup(&f, 0, 0));
	if (!f.r.bev)
		goto out;
	tls_read_install(f.r.bev);
	bufferevent_setwatermark(f.r.bev, EV_READ, 0, 3000);
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	f.r.disable_in_read = true;
	f.r.drain = true;
	CHECK(client_send(&f, 0, 3000));
	CHECK(client_send(&f, 3000, 3000));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 3000);
	CHECK(got_is(&f.r, 3000));
	CHECK(!reading(f.r.bev));
	CHECK(SSL_has_pending(f.server));
	CHECK(socket_empty(&f));
	tls_read_kick(f.r.bev); /* reading off: no kick */
	for (int i = 0; i < 4; i++)
		pass(&f);
	CHECK(f.r.reads == 1);
	f.r.disable_in_read = false;
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	for (int i = 0; i < 4; i++)
		pass(&f);
	CHECK(f.r.reads == 1); /* enabled, the socket silent: only a kick helps */
	tls_read_kick(f.r.bev);
	pass(&f);
	CHECK(f.r.reads == 2);
	CHECK(f.r.seen[1] == 3000);
	CHECK(got_is(&f.r, 6000));
	CHECK(!SSL_has_pending(f.server));
	tls_read_kick(f.r.bev); /* nothing held: no callback */
	pass(&f);
	pass(&f);
	CHECK(f.r.reads == 2);
	CHECK(f.r.events == 0);
out:
	teardown(&f);

	CHECK(setup(&f, 0, BIG_RBUF));
	if (!f.r.bev)
		goto out2;
	tls_read_install(f.r.bev);
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	f.r.disable_in_read = true;
	f.r.drain = true;
	CHECK(client_send(&f, 0, BUDGET_LEN));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 4 * RECORD_MAX);
	CHECK(got_is(&f.r, 4 * RECORD_MAX));
	CHECK(SSL_has_pending(f.server));
	CHECK(socket_empty(&f));
	for (int i = 0; i < 4; i++)
		pass(&f); /* the budget's rerun, if still due, stops at reading off */
	CHECK(f.r.reads == 1);
	f.r.disable_in_read = false;
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	for (int i = 0; i < 4; i++)
		pass(&f);
	CHECK(f.r.reads == 1);
	tls_read_kick(f.r.bev);
	pass(&f);
	CHECK(f.r.reads == 2);
	CHECK(f.r.seen[1] == BUDGET_LEN - 4 * RECORD_MAX);
	CHECK(got_is(&f.r, BUDGET_LEN));
	CHECK(f.r.events == 0);
	CHECK(reading(f.r.bev));
out2:
	teardown(&f);
}

/* 6. 500 bytes then the client's end: the bytes to the read callback,
 * then BEV_EVENT_EOF to the event callback, reading stopped. close_notify
 * comes in the read(2) that brings the bytes: the callback meets it after
 * them and its rerun reports it in the same pass (the only way when the
 * client leaves the socket open: it says nothing more); a close without
 * close_notify is met by the next read, on the next pass. */
static void test_eof(void)
{
	for (int how = 0; how < 3; how++) {
		struct fixture f;
		CHECK(setup(&f, 0, 0));
		if (!f.r.bev)
			goto next;
		tls_read_install(f.r.bev);
		CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
		CHECK(client_send(&f, 0, 500));
		if (how < 2)
			CHECK(SSL_shutdown(f.client) == 0); /* close_notify sent, none back yet */
		if (how != 1)
			client_close(&f);
		pass(&f);
		CHECK(f.r.reads == 1);
		CHECK(f.r.seen[0] == 500);
		CHECK(input_is(f.r.bev, 500));
		if (how == 1)
			CHECK(socket_empty(&f));
		CHECK(f.r.events == (how < 2 ? 1 : 0));
		if (how == 2)
			pass(&f);
		CHECK(f.r.reads == 1);
		CHECK(f.r.events == 1);
		CHECK(f.r.what[0] == (BEV_EVENT_EOF | BEV_EVENT_READING));
		CHECK(f.r.reads_by[0] == 1);
		if (how < 2)
			CHECK((SSL_get_shutdown(f.server) & SSL_RECEIVED_SHUTDOWN) != 0);
		CHECK(!reading(f.r.bev));
		CHECK(!event_pending(&f.r.bev->ev_read, EV_READ, NULL));
		CHECK(input_is(f.r.bev, 500));
		pass(&f);
		pass(&f);
		CHECK(f.r.events == 1);
		CHECK(f.r.reads == 1);
	next:
		teardown(&f);
	}
}

/* Bytes that are no TLS record: BEV_EVENT_ERROR, nothing read; a reset
 * (the client closes with bytes of ours unread) after a record: the record,
 * then BEV_EVENT_ERROR with ECONNRESET. */
static void test_error(void)
{
	struct fixture f;
	CHECK(setup(&f, 0, 0));
	if (!f.r.bev)
		goto out;
	tls_read_install(f.r.bev);
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	CHECK(write(f.peer, junk, sizeof junk - 1) == (ssize_t)(sizeof junk - 1));
	pass(&f);
	CHECK(f.r.reads == 0);
	CHECK(f.r.events == 1);
	CHECK(f.r.what[0] == (BEV_EVENT_ERROR | BEV_EVENT_READING));
	CHECK(!reading(f.r.bev));
	CHECK(input_is(f.r.bev, 0));
	pass(&f);
	CHECK(f.r.events == 1);
out:
	teardown(&f);

	CHECK(setup(&f, 0, 0));
	if (!f.r.bev)
		goto out2;
	tls_read_install(f.r.bev);
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	CHECK(client_send(&f, 0, 700));
	CHECK(write(bufferevent_getfd(f.r.bev), "unread", 6) == 6);
	client_close(&f);
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 700);
	CHECK(f.r.events == 0);
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.events == 1);
	CHECK(f.r.what[0] == (BEV_EVENT_ERROR | BEV_EVENT_READING));
	CHECK(f.r.err[0] == ECONNRESET);
	CHECK(!reading(f.r.bev));
	CHECK(input_is(f.r.bev, 700));
out2:
	teardown(&f);
}

/* 7. A read timeout of 100 ms, nothing sent: BEV_EVENT_TIMEOUT, reading
 * stops; enabled again, records come through tls_read. */
static void test_timeout(void)
{
	struct fixture f;
	CHECK(setup(&f, 0, BIG_RBUF));
	if (!f.r.bev)
		goto out;
	tls_read_install(f.r.bev);
	struct timeval tv = { 0, 100 * 1000 };
	CHECK(bufferevent_set_timeouts(f.r.bev, &tv, NULL) == 0);
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	long long took = wait_events(&f);
	CHECK(took >= 50 && took < GUARD_MS);
	CHECK(f.r.events == 1);
	CHECK(f.r.what[0] == (BEV_EVENT_TIMEOUT | BEV_EVENT_READING));
	CHECK(f.r.reads == 0);
	CHECK(!reading(f.r.bev));
	CHECK(!event_pending(&f.r.bev->ev_read, EV_READ | EV_TIMEOUT, NULL));

	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	CHECK(event_pending(&f.r.bev->ev_read, EV_READ | EV_TIMEOUT, NULL) == (EV_READ | EV_TIMEOUT));
	CHECK(send_records(&f));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == RECORDS_LEN);
	CHECK(input_is(f.r.bev, RECORDS_LEN));
	CHECK(f.r.events == 1);
out:
	teardown(&f);
}

/* 8. The bufferevent freed in its read callback (records then
 * close_notify, met in the same callback; the budget's rerun pending; a
 * deferred read callback), in its event callback (end of file, an error,
 * the timeout): ASan's word. */
static void test_free_in_callbacks(void)
{
	struct fixture f;
	CHECK(setup(&f, 0, BIG_RBUF));
	if (!f.r.bev)
		goto out;
	tls_read_install(f.r.bev);
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	f.r.free_in_read = true;
	CHECK(send_records(&f));
	CHECK(SSL_shutdown(f.client) == 0);
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == RECORDS_LEN);
	CHECK(f.r.bev == NULL);
	pass(&f);
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.events == 0);
out:
	teardown(&f);

	CHECK(setup(&f, 0, BIG_RBUF));
	if (!f.r.bev)
		goto out2;
	tls_read_install(f.r.bev);
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	f.r.free_in_read = true;
	CHECK(client_send(&f, 0, BUDGET_LEN));
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == 4 * RECORD_MAX);
	CHECK(f.r.bev == NULL);
	pass(&f);
	pass(&f);
	CHECK(f.r.reads == 1);
	CHECK(f.r.events == 0);
out2:
	teardown(&f);

	CHECK(setup(&f, BEV_OPT_DEFER_CALLBACKS, BIG_RBUF));
	if (!f.r.bev)
		goto out3;
	tls_read_install(f.r.bev);
	CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
	f.r.free_in_read = true;
	CHECK(send_records(&f));
	pass(&f); /* the deferred callback runs in the same pass */
	CHECK(f.r.reads == 1);
	CHECK(f.r.seen[0] == RECORDS_LEN);
	CHECK(f.r.bev == NULL);
	pass(&f);
	CHECK(f.r.reads == 1);
out3:
	teardown(&f);

	for (int how = 0; how < 3; how++) {
		CHECK(setup(&f, 0, 0));
		if (!f.r.bev)
			goto next;
		tls_read_install(f.r.bev);
		f.r.free_in_event = true;
		short want = BEV_EVENT_READING;
		if (how == 0) {
			CHECK(SSL_shutdown(f.client) == 0);
			client_close(&f);
			want |= BEV_EVENT_EOF;
		} else if (how == 1) {
			static const char junk[] = "GET / HTTP/1.1\r\n\r\n";
			CHECK(write(f.peer, junk, sizeof junk - 1) == (ssize_t)(sizeof junk - 1));
			want |= BEV_EVENT_ERROR;
		} else {
			struct timeval tv = { 0, 50 * 1000 };
			CHECK(bufferevent_set_timeouts(f.r.bev, &tv, NULL) == 0);
			want |= BEV_EVENT_TIMEOUT;
		}
		CHECK(bufferevent_enable(f.r.bev, EV_READ) == 0);
		CHECK(wait_events(&f) >= 0);
		CHECK(f.r.events == 1);
		CHECK(f.r.what[0] == want);
		CHECK(f.r.bev == NULL);
		CHECK(f.r.reads == 0);
		pass(&f);
		CHECK(f.r.events == 1);
	next:
		teardown(&f);
	}
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	stream_init();
	CHECK(tls_contexts());
	if (server_ctx && client_ctx) {
		test_install();
		test_records();
		test_budget();
		test_high_watermark();
		test_disable_kick();
		test_eof();
		test_error();
		test_timeout();
		test_free_in_callbacks();
	}
	SSL_CTX_free(server_ctx);
	SSL_CTX_free(client_ctx);
	return check_done();
}
