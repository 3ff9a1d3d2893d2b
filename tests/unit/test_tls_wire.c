/*
 * test_tls_wire.c - the tls_wire BIO: a server SSL on it over one end of a
 * socketpair, a client SSL on OpenSSL's socket BIO on the other, stepped in
 * process.
 *
 * Held writes: while corked, the server's flight waits in memory until
 * tls_wire_flush sends it whole; the TLS 1.3 session ticket written as the
 * handshake completes stays held and reaches the client in the same write
 * as the first answer. Held bytes the socket refuses stay first: a later
 * record waits behind them (the write answers "retry") and everything
 * arrives in order. Reading: after a read that emptied the socket, the
 * server reads nothing more until tls_wire_readable. An end of file shows
 * as BIO_eof. On OpenSSL's socket BIO the functions do nothing.
 * conn_io_write_last: the answer, the held ticket and the close_notify
 * arrive; with the socket full the rest follows as the peer reads,
 * conn_io_flushed says false until then and the write callback runs once.
 * conn_io_write batches: more than a record's worth leaves in one write per
 * 64 KiB (counted as the messages of a SOCK_SEQPACKET pair), a tail of a
 * record or less in the batch before it, the held ticket in the first; with
 * the socket full, what is held stays under a batch and a record, and
 * everything arrives in order.
 */
#include "tests/unit/check.h"
#include "tests/unit/tls_check.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "proxy/net/conn_io.h"
#include "proxy/tls/tls_wire.h"

#define RECORD_OVERHEAD 22  /* TLS 1.3: header 5, content type 1, AEAD tag 16 */
#define RECORD_MAX (16 * 1024)
#define BIG_LEN (4 * RECORD_MAX)
#define SMALL_SNDBUF 4096   /* the kernel doubles it: far less than BIG_LEN */
#define ROUNDS 10000
#define BATCH (64 * 1024)   /* conn_io.c's TLS_WRITE_BATCH */

static SSL_CTX *server_ctx, *client_ctx;
static unsigned char big[3 * BATCH]; /* BIG_LEN + 3 at least */

struct pair {
	int sfd, cfd;
	SSL *server, *client;
};

static bool contexts(void)
{
	EVP_PKEY *key = NULL;
	X509 *cert = self_signed(&key, "tls-wire.test");
	server_ctx = SSL_CTX_new(TLS_server_method());
	client_ctx = SSL_CTX_new(TLS_client_method());
	bool ok = cert && server_ctx && client_ctx && SSL_CTX_use_certificate(server_ctx, cert) == 1 &&
		  SSL_CTX_use_PrivateKey(server_ctx, key) == 1 &&
		  SSL_CTX_set_min_proto_version(server_ctx, TLS1_3_VERSION) == 1 &&
		  SSL_CTX_set_num_tickets(server_ctx, 1) == 1;
	if (server_ctx) /* portier's modes (tls_ctx.c) */
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

static int pending(int fd)
{
	int n = -1;
	return ioctl(fd, FIONREAD, &n) == 0 ? n : -1;
}

/* pair_open: the two SSLs, the server's on a tls_wire (on OpenSSL's
 * socket BIO when socket_bio), nothing exchanged yet. */
static bool pair_open(struct pair *p, bool socket_bio)
{
	int fd[2];
	memset(p, 0, sizeof *p);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, fd) != 0)
		return false;
	p->sfd = fd[0];
	p->cfd = fd[1];
	fcntl(p->sfd, F_SETFL, O_NONBLOCK);
	fcntl(p->cfd, F_SETFL, O_NONBLOCK);
	p->server = SSL_new(server_ctx);
	p->client = SSL_new(client_ctx);
	if (!p->server || !p->client || SSL_set_fd(p->client, p->cfd) != 1)
		return false;
	if (socket_bio ? SSL_set_fd(p->server, p->sfd) != 1 : tls_wire_attach(p->server, p->sfd) != 0)
		return false;
	SSL_set_accept_state(p->server);
	SSL_set_connect_state(p->client);
	return true;
}

static void pair_close(struct pair *p)
{
	SSL_free(p->server);
	SSL_free(p->client);
	if (p->sfd >= 0)
		close(p->sfd);
	if (p->cfd >= 0)
		close(p->cfd);
}

static bool wants(SSL *ssl, int r, int err)
{
	return r <= 0 && SSL_get_error(ssl, r) == err;
}

/* corked_step: SSL_do_handshake corked, as tls_conn does it. */
static int corked_step(SSL *server)
{
	tls_wire_cork(server, true);
	int r = SSL_do_handshake(server);
	tls_wire_cork(server, false);
	return r;
}

static int server_step(struct pair *p)
{
	return corked_step(p->server);
}

/* handshake: both sides done; the server's ticket left held. */
static bool handshake(struct pair *p)
{
	for (int i = 0; i < 16; i++) {
		int c = SSL_do_handshake(p->client);
		tls_wire_readable(p->server);
		int s = server_step(p);
		if (s == 1 && c == 1)
			return true;
		if (s != 1 && tls_wire_flush(p->server) != 1)
			return false;
	}
	return false;
}

/* client_read: what the client's SSL gives, appended at got[*len]. */
static int client_read(struct pair *p, unsigned char *got, size_t cap, size_t *len)
{
	int r = 0;
	while (*len < cap && (r = SSL_read(p->client, got + *len, (int)(cap - *len))) > 0)
		*len += (size_t)r;
	return r;
}

static void test_flight_and_ticket(void)
{
	struct pair p;
	CHECK(pair_open(&p, false));
	CHECK(wants(p.client, SSL_do_handshake(p.client), SSL_ERROR_WANT_READ));

	/* The flight is held while corked, sent whole by the flush. */
	CHECK(wants(p.server, server_step(&p), SSL_ERROR_WANT_READ));
	size_t flight = tls_wire_held(p.server);
	CHECK(flight > 0);
	CHECK(pending(p.cfd) == 0);
	CHECK(pending(p.sfd) == 0); /* the ClientHello was read, all of it */
	CHECK(tls_wire_flush(p.server) == 1);
	CHECK(tls_wire_held(p.server) == 0);
	CHECK(pending(p.cfd) == (int)flight);

	/* The ClientHello read emptied the socket: the client's Finished
	 * waits there until a readiness says so. */
	CHECK(SSL_do_handshake(p.client) == 1);
	int finished = pending(p.sfd);
	CHECK(finished > 0);
	CHECK(wants(p.server, server_step(&p), SSL_ERROR_WANT_READ));
	CHECK(pending(p.sfd) == finished);
	tls_wire_readable(p.server);
	CHECK(server_step(&p) == 1);
	CHECK(pending(p.sfd) == 0);

	/* The ticket rides with the first answer. */
	size_t ticket = tls_wire_held(p.server);
	CHECK(ticket > 0);
	CHECK(pending(p.cfd) == 0);
	CHECK(SSL_write(p.server, "hello", 5) == 5);
	CHECK(tls_wire_held(p.server) == 0);
	CHECK(pending(p.cfd) == (int)(ticket + 5 + RECORD_OVERHEAD));
	unsigned char got[16];
	size_t len = 0;
	client_read(&p, got, sizeof got, &len);
	CHECK(len == 5 && memcmp(got, "hello", 5) == 0);
	CHECK(SSL_SESSION_is_resumable(SSL_get0_session(p.client)) == 1);
	pair_close(&p);
}

static void test_refused_stays_first(void)
{
	struct pair p;
	CHECK(pair_open(&p, false));
	CHECK(handshake(&p));
	int sndbuf = SMALL_SNDBUF;
	CHECK(setsockopt(p.sfd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) == 0);

	tls_wire_cork(p.server, true);
	for (size_t off = 0; off < BIG_LEN; off += RECORD_MAX)
		CHECK(SSL_write(p.server, big + off, RECORD_MAX) == RECORD_MAX);
	tls_wire_cork(p.server, false);
	CHECK(tls_wire_flush(p.server) == 0); /* the socket took part */
	CHECK(tls_wire_held(p.server) > 0);
	CHECK(BIO_ctrl_wpending(SSL_get_wbio(p.server)) == tls_wire_held(p.server));
	/* A record behind held bytes waits: retry, the same bytes later. */
	CHECK(wants(p.server, SSL_write(p.server, big + BIG_LEN, 3), SSL_ERROR_WANT_WRITE));

	unsigned char *got = malloc(BIG_LEN + 3);
	size_t len = 0;
	int flushed = 0, wrote = 0, i;
	for (i = 0; i < ROUNDS && len < BIG_LEN + 3; i++) {
		client_read(&p, got, BIG_LEN + 3, &len);
		if (flushed != 1)
			flushed = tls_wire_flush(p.server);
		else if (wrote <= 0)
			wrote = SSL_write(p.server, big + BIG_LEN, 3);
	}
	CHECK(flushed == 1 && wrote == 3);
	CHECK(len == BIG_LEN + 3 && memcmp(got, big, len) == 0);
	free(got);
	pair_close(&p);
}

static void test_eof(void)
{
	struct pair p;
	CHECK(pair_open(&p, false));
	CHECK(handshake(&p));
	CHECK(tls_wire_flush(p.server) == 1); /* the ticket */
	unsigned char buf[1];
	size_t len = 0;
	client_read(&p, buf, sizeof buf, &len); /* unread bytes would reset, not end */
	CHECK(pending(p.cfd) == 0);
	close(p.cfd);
	p.cfd = -1;
	char c;
	tls_wire_readable(p.server);
	CHECK(SSL_read(p.server, &c, 1) <= 0);
	CHECK(BIO_eof(SSL_get_rbio(p.server)) == 1);
	pair_close(&p);
}

static void test_socket_bio_untouched(void)
{
	struct pair p;
	CHECK(pair_open(&p, true));
	CHECK(wants(p.client, SSL_do_handshake(p.client), SSL_ERROR_WANT_READ));
	CHECK(wants(p.server, server_step(&p), SSL_ERROR_WANT_READ));
	CHECK(tls_wire_held(p.server) == 0);
	CHECK(pending(p.cfd) > 0); /* the cork did nothing */
	CHECK(tls_wire_flush(p.server) == 1);
	pair_close(&p);
}

/* conn_io_write_last */

static int writes_done;

static void on_write(struct conn_io *io, void *arg)
{
	(void)arg;
	if (conn_io_flushed(io))
		writes_done++;
}

static void on_event(struct conn_io *io, short what, void *arg)
{
	(void)io, (void)arg;
	fprintf(stderr, "unexpected conn_io event %#x\n", (unsigned)what);
	check_failed++;
}

/* last_write: conn_io on the server after the handshake writes len bytes
 * of big as its last; the client gets them, then the close_notify. */
static void last_write(size_t len, bool small_sndbuf)
{
	struct pair p;
	CHECK(pair_open(&p, false));
	CHECK(handshake(&p));
	CHECK(tls_wire_held(p.server) > 0); /* the ticket */
	if (small_sndbuf) {
		int sndbuf = SMALL_SNDBUF;
		CHECK(setsockopt(p.sfd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) == 0);
	}
	struct event_base *base = event_base_new();
	struct conn_io *io = conn_io_new(base, p.sfd, p.server);
	p.sfd = -1;
	p.server = NULL; /* both conn_io's now */
	struct evbuffer *stage = evbuffer_new();
	if (!io || !stage) {
		CHECK(!"conn_io_new");
		return;
	}
	writes_done = 0;
	conn_io_setcb(io, NULL, on_write, on_event, NULL);
	CHECK(conn_io_flushed(io)); /* a held ticket is no answer's */
	evbuffer_add(stage, big, len);
	conn_io_write_last(io, len ? stage : NULL);
	CHECK(evbuffer_get_length(stage) == 0);
	CHECK(conn_io_flushed(io) == !small_sndbuf);

	unsigned char *got = malloc(len + 1);
	size_t have = 0;
	int r = 1, i;
	for (i = 0; i < ROUNDS && r > 0; i++) {
		r = client_read(&p, got, len + 1, &have);
		event_base_loop(base, EVLOOP_NONBLOCK);
		if (r <= 0 && SSL_get_error(p.client, r) == SSL_ERROR_WANT_READ)
			r = 1;
	}
	CHECK(r == 0 && SSL_get_error(p.client, r) == SSL_ERROR_ZERO_RETURN);
	CHECK(have == len && memcmp(got, big, len) == 0);
	CHECK(SSL_SESSION_is_resumable(SSL_get0_session(p.client)) == 1);
	CHECK(conn_io_flushed(io));
	CHECK(writes_done == (small_sndbuf ? 1 : 0));
	free(got);
	evbuffer_free(stage);
	conn_io_free(io);
	event_base_free(base);
	pair_close(&p);
}

static void test_write_last(void)
{
	last_write(0, false); /* nothing to answer: the ticket and the close_notify */
	last_write(1000, false);
	last_write(BIG_LEN, true);
}

/* conn_io_write's batches */

/* A SOCK_SEQPACKET pair keeps each write(2) a message of its own, so the
 * client's end counts the server's writes. The client SSL talks through
 * memory BIOs that the test fills from that end and empties into it. */
struct seq {
	int sfd, cfd;
	SSL *server, *client;
	BIO *from_server, *to_server; /* the client's memory BIOs */
};

static bool seq_open(struct seq *q)
{
	int fd[2];
	memset(q, 0, sizeof *q);
	q->sfd = q->cfd = -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, fd) != 0)
		return false;
	q->sfd = fd[0];
	q->cfd = fd[1];
	fcntl(q->sfd, F_SETFL, O_NONBLOCK);
	fcntl(q->cfd, F_SETFL, O_NONBLOCK);
	q->server = SSL_new(server_ctx);
	q->client = SSL_new(client_ctx);
	q->from_server = BIO_new(BIO_s_mem());
	q->to_server = BIO_new(BIO_s_mem());
	if (!q->server || !q->client || !q->from_server || !q->to_server ||
	    tls_wire_attach(q->server, q->sfd) != 0)
		return false;
	SSL_set_bio(q->client, q->from_server, q->to_server);
	SSL_set_read_ahead(q->server, 1); /* whole messages: a short read cuts one */
	SSL_set_accept_state(q->server);
	SSL_set_connect_state(q->client);
	return true;
}

static void seq_close(struct seq *q)
{
	SSL_free(q->server);
	if (q->client)
		SSL_free(q->client);
	else {
		BIO_free(q->from_server);
		BIO_free(q->to_server);
	}
	if (q->sfd >= 0)
		close(q->sfd);
	if (q->cfd >= 0)
		close(q->cfd);
}

/* seq_to_client: the server's waiting writes into the client's SSL; how
 * many there were. */
static int seq_to_client(struct seq *q)
{
	static unsigned char msg[4 * BATCH];
	int n = 0;
	ssize_t r;
	while ((r = recv(q->cfd, msg, sizeof msg, 0)) > 0) {
		BIO_write(q->from_server, msg, (int)r);
		n++;
	}
	return n;
}

/* seq_to_server: what the client wrote, in one message. */
static bool seq_to_server(struct seq *q)
{
	char *data;
	long len = BIO_get_mem_data(q->to_server, &data);
	if (len <= 0)
		return true;
	bool ok = send(q->cfd, data, (size_t)len, 0) == len;
	(void)BIO_reset(q->to_server);
	return ok;
}

static bool seq_handshake(struct seq *q)
{
	for (int i = 0; i < 16; i++) {
		int c = SSL_do_handshake(q->client);
		if (!seq_to_server(q))
			return false;
		tls_wire_readable(q->server);
		int s = corked_step(q->server);
		if (s != 1 && tls_wire_flush(q->server) != 1)
			return false;
		seq_to_client(q);
		if (s == 1 && c == 1)
			return true;
	}
	return false;
}

/* seq_read: the client's plaintext is len bytes of big. */
static bool seq_read(struct seq *q, size_t len)
{
	unsigned char *got = malloc(len + 1);
	size_t have = 0;
	int r;
	while (got && have <= len && (r = SSL_read(q->client, got + have, (int)(len + 1 - have))) > 0)
		have += (size_t)r;
	bool ok = got && have == len && memcmp(got, big, len) == 0;
	free(got);
	return ok;
}

/* seq_writes: conn_io_write of len bytes of big; the writes that carried them. */
static int seq_writes(struct seq *q, struct conn_io *io, size_t len)
{
	struct evbuffer *stage = evbuffer_new();
	if (!stage)
		return -1;
	evbuffer_add(stage, big, len);
	conn_io_write(io, stage);
	bool taken = evbuffer_get_length(stage) == 0;
	evbuffer_free(stage);
	int n = seq_to_client(q);
	return taken && seq_read(q, len) ? n : -1;
}

static void test_batches(void)
{
	struct seq q;
	CHECK(seq_open(&q));
	CHECK(seq_handshake(&q));
	CHECK(tls_wire_held(q.server) > 0); /* the ticket */
	struct event_base *base = event_base_new();
	struct conn_io *io = base ? conn_io_new(base, q.sfd, q.server) : NULL;
	q.sfd = -1;
	q.server = NULL; /* both conn_io's now */
	if (!io) {
		CHECK(!"conn_io_new");
		seq_close(&q);
		return;
	}
	conn_io_setcb(io, NULL, NULL, on_event, NULL);
	CHECK(seq_writes(&q, io, 3 * RECORD_MAX) == 1); /* and the ticket */
	CHECK(seq_writes(&q, io, 1000) == 1);
	CHECK(seq_writes(&q, io, RECORD_MAX + 1) == 1);
	CHECK(seq_writes(&q, io, BATCH + RECORD_MAX) == 1); /* a tail joins the batch */
	CHECK(seq_writes(&q, io, BATCH + RECORD_MAX + 1) == 2);
	CHECK(seq_writes(&q, io, 3 * BATCH) == 3);
	CHECK(conn_io_flushed(io));
	conn_io_free(io);
	event_base_free(base);
	seq_close(&q);
}

/* With the socket full: what is held stays under a batch and its records
 * (a record header and tag each); it all arrives, in order; the write
 * callback runs when the output is through. */
static void test_batches_refused(void)
{
	const size_t len = 4 * BIG_LEN + 5;
	struct pair p;
	CHECK(pair_open(&p, false));
	CHECK(handshake(&p));
	int sndbuf = SMALL_SNDBUF;
	CHECK(setsockopt(p.sfd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) == 0);
	struct event_base *base = event_base_new();
	SSL *server = p.server;
	struct conn_io *io = conn_io_new(base, p.sfd, p.server);
	p.sfd = -1;
	p.server = NULL;
	struct evbuffer *stage = evbuffer_new();
	unsigned char *got = malloc(len + 1);
	if (!io || !stage || !got) {
		CHECK(!"conn_io_new");
		free(got);
		return;
	}
	writes_done = 0;
	conn_io_setcb(io, NULL, on_write, on_event, NULL);
	for (size_t off = 0; off < len; off += BIG_LEN)
		evbuffer_add(stage, big, len - off < BIG_LEN ? len - off : BIG_LEN);
	conn_io_write(io, stage);
	CHECK(!conn_io_flushed(io));
	size_t have = 0, most_held = 0;
	int i;
	for (i = 0; i < ROUNDS && have < len; i++) {
		size_t held = tls_wire_held(server);
		most_held = held > most_held ? held : most_held;
		int r = client_read(&p, got, len + 1, &have);
		if (r <= 0 && SSL_get_error(p.client, r) != SSL_ERROR_WANT_READ)
			break;
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
	CHECK(have == len);
	for (size_t off = 0; off < have; off += BIG_LEN) {
		size_t n = have - off < BIG_LEN ? have - off : BIG_LEN;
		CHECK(memcmp(got + off, big, n) == 0);
	}
	CHECK(most_held > 0);
	CHECK(most_held <= BATCH + RECORD_MAX + (BATCH / RECORD_MAX + 1) * RECORD_OVERHEAD);
	event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK(conn_io_flushed(io));
	CHECK(writes_done == 1);
	free(got);
	evbuffer_free(stage);
	conn_io_free(io);
	event_base_free(base);
	pair_close(&p);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (unsigned char)(i * 7 + i / 251);
	if (!contexts())
		return 1;
	test_flight_and_ticket();
	test_refused_stays_first();
	test_eof();
	test_socket_bio_untouched();
	test_write_last();
	test_batches();
	test_batches_refused();
	SSL_CTX_free(server_ctx);
	SSL_CTX_free(client_ctx);
	return check_done();
}
