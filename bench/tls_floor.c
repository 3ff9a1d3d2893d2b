/*
 * tls_floor.c - bench_tls_floor: the heap OpenSSL alone keeps for one idle
 * TLS server connection, with portier's own TLS context.
 *
 *   bench_tls_floor [-n CONNECTIONS]
 *
 * The context comes from tls_ctx_new (portier's options, modes, groups,
 * one session ticket, read-ahead as portier's handshakes use it) with an
 * ECDSA P-256 certificate made in memory. For each of N (default 1,000)
 * connections: a socketpair, a full TLS 1.3 handshake against an OpenSSL
 * client, one request record read by the server; then the client side is
 * freed and closed. The server's SSL and socket stay, idle, as a keep-alive
 * connection's do in every proxy built on OpenSSL. Heap in use
 * (mallinfo2().uordblks, malloc's chunk overhead included) and resident
 * memory (what bench/run's idle scenarios measure) are read before and
 * after, the heap also around SSL_new alone; figures are per connection.
 * No event loop, no bufferevent, no HTTP state: what is left is the floor
 * no OpenSSL-based proxy can go under.
 */
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "proxy/tls/tls_ctx.h"

#define REQUEST "GET / HTTP/1.1\r\nHost: bench.test\r\n\r\n"
#define MAX_STEPS 64

static void die(const char *what)
{
	fprintf(stderr, "bench_tls_floor: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

/* self_signed: a P-256 key and a one-day certificate for bench.test. */
static X509 *self_signed(EVP_PKEY **key_out)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	if (!key || !x)
		die("key or certificate");
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"bench.test",
				   -1, -1, 0);
	if (!ASN1_INTEGER_set(X509_get_serialNumber(x), 1) || !X509_set_issuer_name(x, name) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 86400) || !X509_set_pubkey(x, key) ||
	    !X509_sign(x, key, EVP_sha256()))
		die("signing the certificate");
	*key_out = key;
	return x;
}

static size_t heap_in_use(void)
{
	return mallinfo2().uordblks;
}

/* rss: resident bytes (/proc/self/statm), what bench/run measures. */
static size_t rss(void)
{
	unsigned long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f || fscanf(f, "%lu %lu", &size, &resident) != 2)
		die("/proc/self/statm");
	fclose(f);
	return resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* step: one SSL_do_handshake on an end not done yet; -1 on a failure. */
static int step(SSL *ssl, int *done)
{
	if (*done)
		return 0;
	int r = SSL_do_handshake(ssl);
	if (r == 1)
		*done = 1;
	else if (SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ)
		return -1;
	return 0;
}

/* handshake: step both ends until both are done; 0 on success. */
static int handshake(SSL *server, SSL *client)
{
	int s_done = 0, c_done = 0;
	for (int i = 0; i < MAX_STEPS && !(s_done && c_done); i++)
		if (step(client, &c_done) < 0 || step(server, &s_done) < 0)
			return -1;
	return s_done && c_done ? 0 : -1;
}

/* request: the client sends one request; the server reads all of it (and
 * the session tickets reach the client, as they would). 0 on success. */
static int request(SSL *server, SSL *client)
{
	char buf[256];
	if (SSL_write(client, REQUEST, (int)strlen(REQUEST)) != (int)strlen(REQUEST))
		return -1;
	int got = 0;
	for (int i = 0; i < MAX_STEPS && got < (int)strlen(REQUEST); i++) {
		int r = SSL_read(server, buf, (int)sizeof buf);
		if (r > 0)
			got += r;
		else if (SSL_get_error(server, r) != SSL_ERROR_WANT_READ)
			return -1;
	}
	(void)SSL_read(client, buf, (int)sizeof buf); /* takes the tickets; WANT_READ after */
	ERR_clear_error();
	return got == (int)strlen(REQUEST) ? 0 : -1;
}

int main(int argc, char **argv)
{
	long n = 1000;
	if (argc == 3 && strcmp(argv[1], "-n") == 0)
		n = strtol(argv[2], NULL, 10);
	else if (argc != 1) {
		fprintf(stderr, "usage: bench_tls_floor [-n CONNECTIONS]\n");
		return 2;
	}
	if (n < 1 || n > 100000) {
		fprintf(stderr, "bench_tls_floor: -n must be 1..100000\n");
		return 2;
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n + 64) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < (rlim_t)n + 64)
			die("open-file limit below -n");
	}

	char err[256];
	struct tls_ctx_opts opts = {.enable_h2 = true};
	SSL_CTX *sctx = tls_ctx_new(&opts, err, sizeof err);
	if (!sctx)
		die(err);
	EVP_PKEY *key;
	X509 *cert = self_signed(&key);
	if (SSL_CTX_use_cert_and_key(sctx, cert, key, NULL, 1) != 1)
		die("server certificate");
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	if (!cctx || !SSL_CTX_set_min_proto_version(cctx, TLS1_3_VERSION))
		die("client context");
	SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);

	SSL **idle = calloc((size_t)n, sizeof *idle);
	int *fds = calloc((size_t)n, sizeof *fds);
	if (!idle || !fds)
		die("out of memory");
	/* Connection -1 is a warm-up: lazily built tables (provider caches,
	 * the context's own) are not counted against the others. */
	size_t before_new = 0, after_new = 0, before = 0, rss_before = 0;
	for (long i = -1; i < n; i++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
			die("socketpair");
		if (i == 0)
			before_new = heap_in_use();
		SSL *s = SSL_new(sctx);
		if (i == 0)
			after_new = heap_in_use();
		SSL *c = SSL_new(cctx);
		if (!s || !c)
			die("SSL_new");
		SSL_set_fd(s, sv[0]);
		SSL_set_fd(c, sv[1]);
		SSL_set_accept_state(s);
		SSL_set_connect_state(c);
		SSL_set_tlsext_host_name(c, "bench.test");
		SSL_set_read_ahead(s, 1); /* portier's handshakes read ahead */
		/* Non-blocking ends: a step that has nothing to read returns. */
		if (fcntl(sv[0], F_SETFL, O_NONBLOCK) != 0 || fcntl(sv[1], F_SETFL, O_NONBLOCK) != 0)
			die("O_NONBLOCK");
		if (handshake(s, c) != 0 || request(s, c) != 0)
			die("handshake or request");
		SSL_free(c);
		close(sv[1]);
		if (i < 0) { /* the warm-up connection */
			SSL_free(s);
			close(sv[0]);
			before = heap_in_use();
			rss_before = rss();
			continue;
		}
		idle[i] = s;
		fds[i] = sv[0];
	}
	size_t after = heap_in_use();
	size_t rss_after = rss();
	printf("%s, TLS 1.3, ECDSA P-256, %ld idle server connections\n",
	       OpenSSL_version(OPENSSL_VERSION), n);
	printf("SSL_new alone:                    %6zu bytes\n", after_new - before_new);
	printf("idle after handshake and request: %6.0f bytes per connection\n",
	       (double)(after - before) / (double)n);
	printf("resident memory (RSS) growth:     %6.0f bytes per connection\n",
	       (double)(rss_after - rss_before) / (double)n);
	for (long i = 0; i < n; i++) {
		SSL_free(idle[i]);
		close(fds[i]);
	}
	free(idle);
	free(fds);
	X509_free(cert);
	EVP_PKEY_free(key);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
	return 0;
}
