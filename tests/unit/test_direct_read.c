/*
 * test_direct_read.c - direct_read over socketpairs, the event loop never
 * run: a plain socket bufferevent (chunks written apart come in whole and in
 * order, after what the input already held, whose end is left frozen as the
 * bufferevent keeps it; the budget stops the reads at the first 16 KiB read
 * that reaches it; data then close, a close alone) and
 * a bufferevent_openssl over an in-process TLS pair (records queued come in
 * whole and in order; the budget stops at the first record that reaches it;
 * a record begun is read to its end whatever the budget; close_notify, an
 * abrupt close and bytes that are no TLS record all end the connection).
 */
#include "tests/unit/check.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "proxy/net/direct_read.h"

#define READ_CHUNK (16 * 1024) /* direct_read's read size, DIRECT_READ_CHUNK */
#define RECORD_MAX (16 * 1024) /* a TLS record's payload at most */
#define STREAM_LEN (64 * 1024)
#define MAX_CALLS 16

static uint8_t stream[STREAM_LEN]; /* what peers send: stream[0..n), never periodic at 256 */

static void stream_init(void)
{
	uint32_t x = 0x9e3779b9u;
	for (size_t i = 0; i < sizeof stream; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		stream[i] = (uint8_t)x;
	}
}

/* input_is: bev's input holds exactly prefix (plen bytes) then stream[0..n). */
static bool input_is(struct bufferevent *bev, const char *prefix, size_t plen, size_t n)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in);
	if (len != plen + n) {
		fprintf(stderr, "input holds %zu bytes, expected %zu\n", len, plen + n);
		return false;
	}
	const uint8_t *p = evbuffer_pullup(in, -1);
	if (len && !p)
		return false;
	return (plen == 0 || memcmp(p, prefix, plen) == 0) && (n == 0 || memcmp(p + plen, stream, n) == 0);
}

/* as_if_read: add p[0..len) to bev's input as the bufferevent's own read
 * would, through the end a socket bufferevent keeps frozen between reads
 * (a bufferevent_openssl leaves it open). */
static bool as_if_read(struct bufferevent *bev, const void *p, size_t len)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	if (evbuffer_add(in, p, len) == 0)
		return true;
	evbuffer_unfreeze(in, 0);
	int rc = evbuffer_add(in, p, len);
	evbuffer_freeze(in, 0);
	return rc == 0;
}

/* input_frozen: bev's input takes no bytes at its end. */
static bool input_frozen(struct bufferevent *bev)
{
	return evbuffer_add(bufferevent_get_input(bev), "x", 1) != 0;
}

/* nonblocking_pair: a socketpair with both ends nonblocking. */
static bool nonblocking_pair(int fd[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, fd) != 0) {
		perror("socketpair");
		return false;
	}
	for (int i = 0; i < 2; i++) {
		int fl = fcntl(fd[i], F_GETFL);
		if (fl < 0 || fcntl(fd[i], F_SETFL, fl | O_NONBLOCK) < 0) {
			perror("fcntl");
			close(fd[0]);
			close(fd[1]);
			return false;
		}
	}
	return true;
}

/* write_all: one write(2) of p[0..len) that must take it all (the socket
 * buffer holds far more than any test sends). */
static bool write_all(int fd, const void *p, size_t len)
{
	ssize_t n = write(fd, p, len);
	if (n != (ssize_t)len) {
		fprintf(stderr, "write %zu: %zd (%s)\n", len, n, n < 0 ? strerror(errno) : "short");
		return false;
	}
	return true;
}

/* added_by: bytes direct_read added to bev's input, its result in *r. */
static size_t added_by(struct bufferevent *bev, bool tls, size_t budget, enum direct_read_result *r)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t before = evbuffer_get_length(in);
	*r = direct_read(bev, tls, budget);
	return evbuffer_get_length(in) - before;
}

/* read_until_end: direct_read until END, at most MAX_CALLS calls; the
 * bytes added on the way in *added. */
static bool read_until_end(struct bufferevent *bev, bool tls, size_t *added)
{
	*added = 0;
	for (int i = 0; i < MAX_CALLS; i++) {
		enum direct_read_result r;
		*added += added_by(bev, tls, 1 << 20, &r);
		if (r == DIRECT_READ_END)
			return true;
	}
	return false;
}

/* Plain sockets */

struct plain {
	struct event_base *base;
	struct bufferevent *bev; /* owns fd[1] */
	int peer;                /* fd[0], -1 once closed */
};

static bool plain_open(struct plain *p)
{
	int fd[2];
	p->base = NULL, p->bev = NULL, p->peer = -1;
	if (!nonblocking_pair(fd))
		return false;
	p->peer = fd[0];
	p->base = event_base_new();
	p->bev = p->base ? bufferevent_socket_new(p->base, fd[1], BEV_OPT_CLOSE_ON_FREE) : NULL;
	if (!p->bev) {
		close(fd[1]);
		return false;
	}
	return true;
}

static void plain_close(struct plain *p)
{
	if (p->bev)
		bufferevent_free(p->bev);
	if (p->base)
		event_base_free(p->base);
	if (p->peer >= 0)
		close(p->peer);
	p->bev = NULL, p->base = NULL, p->peer = -1;
}

static void plain_peer_close(struct plain *p)
{
	close(p->peer);
	p->peer = -1;
}

static void test_plain_chunks(void)
{
	struct plain p;
	enum direct_read_result r;
	size_t n;
	CHECK(plain_open(&p));
	if (!p.bev)
		goto out;
	/* nothing written yet */
	CHECK(added_by(p.bev, false, 1 << 20, &r) == 0 && r == DIRECT_READ_EMPTY);
	/* what the bufferevent read itself stays first */
	CHECK(input_frozen(p.bev));
	CHECK(as_if_read(p.bev, "head", 4));
	CHECK(write_all(p.peer, stream, 100));
	CHECK(write_all(p.peer, stream + 100, 5000));
	CHECK(write_all(p.peer, stream + 5100, 20000));
	n = added_by(p.bev, false, 1 << 20, &r);
	CHECK(r == DIRECT_READ_MORE);
	CHECK(n == 25100);
	CHECK(input_is(p.bev, "head", 4, 25100));
	/* the input's end frozen again, as the bufferevent keeps it */
	CHECK(input_frozen(p.bev));
	CHECK(added_by(p.bev, false, 1 << 20, &r) == 0 && r == DIRECT_READ_EMPTY);
	CHECK(added_by(p.bev, false, 1 << 20, &r) == 0 && r == DIRECT_READ_EMPTY);
	/* the peer closes: the end, and it stays the end */
	plain_peer_close(&p);
	CHECK(added_by(p.bev, false, 1 << 20, &r) == 0 && r == DIRECT_READ_END);
	CHECK(added_by(p.bev, false, 1 << 20, &r) == 0 && r == DIRECT_READ_END);
	CHECK(input_is(p.bev, "head", 4, 25100));
	CHECK(input_frozen(p.bev));
out:
	plain_close(&p);
}

static void test_plain_budget(void)
{
	struct plain p;
	enum direct_read_result r;
	size_t n;
	CHECK(plain_open(&p));
	if (!p.bev)
		goto out;
	/* budget 4096, 20000 waiting: one 16 KiB read reaches the budget and
	 * the reads stop there; the rest waits for the next call */
	CHECK(write_all(p.peer, stream, 20000));
	n = added_by(p.bev, false, 4096, &r);
	CHECK(r == DIRECT_READ_MORE);
	CHECK(n >= 4096 && n < 20000);
	CHECK(n == READ_CHUNK);
	CHECK(input_is(p.bev, "", 0, READ_CHUNK));
	n = added_by(p.bev, false, 4096, &r);
	CHECK(r == DIRECT_READ_MORE && n == 20000 - READ_CHUNK);
	CHECK(input_is(p.bev, "", 0, 20000));
	CHECK(added_by(p.bev, false, 4096, &r) == 0 && r == DIRECT_READ_EMPTY);
	evbuffer_drain(bufferevent_get_input(p.bev), 20000);
	/* budget 20000, 40000 waiting: reads go on while under the budget, two
	 * reads of 16 KiB (32768 >= 20000), then stop */
	CHECK(write_all(p.peer, stream, 40000));
	n = added_by(p.bev, false, 20000, &r);
	CHECK(r == DIRECT_READ_MORE && n == 2 * READ_CHUNK);
	n = added_by(p.bev, false, 20000, &r);
	CHECK(r == DIRECT_READ_MORE && n == 40000 - 2 * READ_CHUNK);
	CHECK(input_is(p.bev, "", 0, 40000));
	CHECK(added_by(p.bev, false, 20000, &r) == 0 && r == DIRECT_READ_EMPTY);
	/* budget 1: still one read, of all that waits below 16 KiB */
	CHECK(write_all(p.peer, stream, 3000));
	n = added_by(p.bev, false, 1, &r);
	CHECK(r == DIRECT_READ_MORE && n == 3000);
out:
	plain_close(&p);
}

static void test_plain_data_then_close(void)
{
	struct plain p;
	enum direct_read_result r;
	size_t n;
	CHECK(plain_open(&p));
	if (!p.bev)
		goto out;
	/* data then the close: the data first (MORE), the end on the next call */
	CHECK(write_all(p.peer, stream, 7000));
	plain_peer_close(&p);
	n = added_by(p.bev, false, 1 << 20, &r);
	CHECK(r == DIRECT_READ_MORE && n == 7000);
	CHECK(input_is(p.bev, "", 0, 7000));
	CHECK(added_by(p.bev, false, 1 << 20, &r) == 0 && r == DIRECT_READ_END);
out:
	plain_close(&p);
}

/* TLS */

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
					     (const unsigned char *)"direct-read.test", -1, -1, 0) &&
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
	if (client_ctx)
		SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
	X509_free(cert);
	EVP_PKEY_free(key);
	if (!ok)
		ERR_print_errors_fp(stderr);
	return ok;
}

struct tls {
	struct event_base *base;
	struct bufferevent *bev; /* owns server and fd[1] */
	SSL *server;
	SSL *client;
	int peer; /* fd[0], the client's; -1 once closed */
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

static bool tls_open(struct tls *t)
{
	int fd[2];
	memset(t, 0, sizeof *t);
	t->peer = -1;
	if (!nonblocking_pair(fd))
		return false;
	t->peer = fd[0];
	t->client = SSL_new(client_ctx);
	SSL *server = SSL_new(server_ctx);
	if (!t->client || !server || SSL_set_fd(t->client, fd[0]) != 1 || SSL_set_fd(server, fd[1]) != 1)
		goto fail;
	SSL_set_connect_state(t->client);
	SSL_set_accept_state(server);
	bool cdone = false, sdone = false;
	for (int i = 0; i < 32 && !(cdone && sdone); i++)
		if (!handshake_step(t->client, &cdone) || !handshake_step(server, &sdone))
			break;
	if (!(cdone && sdone)) {
		fprintf(stderr, "handshake did not complete\n");
		ERR_print_errors_fp(stderr);
		goto fail;
	}
	t->base = event_base_new();
	if (!t->base)
		goto fail;
	t->bev = bufferevent_openssl_socket_new(t->base, fd[1], server, BUFFEREVENT_SSL_OPEN,
						BEV_OPT_CLOSE_ON_FREE);
	if (!t->bev) {
		server = NULL; /* freed by the failed call, as the proxy assumes */
		goto fail;
	}
	t->server = server;
	return true;
fail:
	SSL_free(server);
	close(fd[1]);
	return false;
}

static void tls_close(struct tls *t)
{
	if (t->bev)
		bufferevent_free(t->bev);
	if (t->base)
		event_base_free(t->base);
	SSL_free(t->client);
	if (t->peer >= 0)
		close(t->peer);
	memset(t, 0, sizeof *t);
	t->peer = -1;
}

/* client_send: one record of stream[off..off+len) from the client. */
static bool client_send(struct tls *t, size_t off, size_t len)
{
	int n = SSL_write(t->client, stream + off, (int)len);
	if (n != (int)len) {
		fprintf(stderr, "SSL_write %zu: %d (error %d)\n", len, n, SSL_get_error(t->client, n));
		return false;
	}
	return true;
}

static void test_tls_records(void)
{
	struct tls t;
	enum direct_read_result r;
	size_t n;
	CHECK(tls_open(&t));
	if (!t.bev)
		goto out;
	CHECK(added_by(t.bev, true, 1 << 20, &r) == 0 && r == DIRECT_READ_EMPTY);
	CHECK(as_if_read(t.bev, "head", 4));
	CHECK(client_send(&t, 0, 10));
	CHECK(client_send(&t, 10, 3000));
	CHECK(client_send(&t, 3010, RECORD_MAX));
	n = added_by(t.bev, true, 1 << 20, &r);
	CHECK(r == DIRECT_READ_MORE);
	CHECK(n == 3010 + RECORD_MAX);
	CHECK(input_is(t.bev, "head", 4, 3010 + RECORD_MAX));
	CHECK(SSL_pending(t.server) == 0);
	CHECK(added_by(t.bev, true, 1 << 20, &r) == 0 && r == DIRECT_READ_EMPTY);
	CHECK(added_by(t.bev, true, 1 << 20, &r) == 0 && r == DIRECT_READ_EMPTY);
out:
	tls_close(&t);
}

static void test_tls_budget(void)
{
	struct tls t;
	enum direct_read_result r;
	size_t n;
	uint8_t part[1000];
	CHECK(tls_open(&t));
	if (!t.bev)
		goto out;
	/* budget 100, one full record: all of it */
	CHECK(client_send(&t, 0, RECORD_MAX));
	n = added_by(t.bev, true, 100, &r);
	CHECK(r == DIRECT_READ_MORE && n == RECORD_MAX);
	CHECK(SSL_pending(t.server) == 0);
	CHECK(input_is(t.bev, "", 0, RECORD_MAX));
	CHECK(added_by(t.bev, true, 100, &r) == 0 && r == DIRECT_READ_EMPTY);
	evbuffer_drain(bufferevent_get_input(t.bev), RECORD_MAX);
	/* budget 100, records of 10, 3000, 5000: the second reaches the budget,
	 * the third waits for the next call */
	CHECK(client_send(&t, 0, 10));
	CHECK(client_send(&t, 10, 3000));
	CHECK(client_send(&t, 3010, 5000));
	n = added_by(t.bev, true, 100, &r);
	CHECK(r == DIRECT_READ_MORE && n == 3010);
	CHECK(SSL_pending(t.server) == 0);
	n = added_by(t.bev, true, 100, &r);
	CHECK(r == DIRECT_READ_MORE && n == 5000);
	CHECK(input_is(t.bev, "", 0, 8010));
	CHECK(added_by(t.bev, true, 100, &r) == 0 && r == DIRECT_READ_EMPTY);
	evbuffer_drain(bufferevent_get_input(t.bev), 8010);
	/* a record begun (as when the bufferevent read part of it) is read to
	 * its end even with no budget left; the next record waits */
	CHECK(client_send(&t, 0, RECORD_MAX));
	CHECK(client_send(&t, RECORD_MAX, 2000));
	CHECK(SSL_read(t.server, part, sizeof part) == (int)sizeof part);
	CHECK(SSL_pending(t.server) == RECORD_MAX - (int)sizeof part);
	CHECK(as_if_read(t.bev, part, sizeof part));
	n = added_by(t.bev, true, 0, &r);
	CHECK(r == DIRECT_READ_MORE && n == RECORD_MAX - sizeof part);
	CHECK(SSL_pending(t.server) == 0);
	CHECK(input_is(t.bev, "", 0, RECORD_MAX));
	/* nothing begun and no budget: nothing read */
	CHECK(added_by(t.bev, true, 0, &r) == 0 && r == DIRECT_READ_EMPTY);
	n = added_by(t.bev, true, 100, &r);
	CHECK(r == DIRECT_READ_MORE && n == 2000);
	CHECK(input_is(t.bev, "", 0, RECORD_MAX + 2000));
out:
	tls_close(&t);
}

static void test_tls_close_notify(void)
{
	struct tls t;
	size_t n = 0;
	CHECK(tls_open(&t));
	if (!t.bev)
		goto out;
	/* a record, then close_notify, then the close */
	CHECK(client_send(&t, 0, 500));
	CHECK(SSL_shutdown(t.client) >= 0);
	close(t.peer);
	t.peer = -1;
	CHECK(read_until_end(t.bev, true, &n));
	CHECK(n == 500);
	CHECK(input_is(t.bev, "", 0, 500));
	CHECK((SSL_get_shutdown(t.server) & SSL_RECEIVED_SHUTDOWN) != 0);
	enum direct_read_result r;
	CHECK(added_by(t.bev, true, 1 << 20, &r) == 0 && r == DIRECT_READ_END);
out:
	tls_close(&t);
}

static void test_tls_abrupt_close(void)
{
	struct tls t;
	size_t n = 0;
	CHECK(tls_open(&t));
	if (!t.bev)
		goto out;
	/* the client goes without close_notify */
	CHECK(client_send(&t, 0, 700));
	close(t.peer);
	t.peer = -1;
	CHECK(read_until_end(t.bev, true, &n));
	CHECK(n == 700);
	CHECK(input_is(t.bev, "", 0, 700));
out:
	tls_close(&t);
}

static void test_tls_garbage(void)
{
	struct tls t;
	enum direct_read_result r;
	CHECK(tls_open(&t));
	if (!t.bev)
		goto out;
	/* bytes that are no TLS record: the end, nothing added */
	static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	CHECK(write_all(t.peer, junk, sizeof junk - 1));
	CHECK(added_by(t.bev, true, 1 << 20, &r) == 0 && r == DIRECT_READ_END);
	CHECK(evbuffer_get_length(bufferevent_get_input(t.bev)) == 0);
out:
	tls_close(&t);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	stream_init();
	test_plain_chunks();
	test_plain_budget();
	test_plain_data_then_close();
	CHECK(tls_contexts());
	if (server_ctx && client_ctx) {
		test_tls_records();
		test_tls_budget();
		test_tls_close_notify();
		test_tls_abrupt_close();
		test_tls_garbage();
	}
	SSL_CTX_free(server_ctx);
	SSL_CTX_free(client_ctx);
	return check_done();
}
