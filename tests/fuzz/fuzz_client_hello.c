/*
 * fuzz_client_hello.c - libFuzzer harness for the server side of a TLS
 * handshake under portier's policy (proxy/tls/tls_ctx.h). The input is
 * everything a client sends; it is handed to two server contexts from
 * tls_ctx_new (TLS 1.2+ without h2, TLS 1.3 with h2 and acme-tls/1), whose
 * ClientHello callback runs tls_client_hello_sni and checks its result
 * before serving a self-signed P-256 certificate. ALPN picks are checked
 * after the handshake steps, against what tls_client_hello_acme_only said
 * (a tls-alpn-01 validator offers acme-tls/1 alone). The input itself also
 * goes to tls_alpn_only_acme as an ALPN extension body, checked against a
 * plain walk of the list.
 *
 * Seeds: with PORTIER_FUZZ_SEED_DIR set, LLVMFuzzerInitialize writes into
 * that directory what real OpenSSL clients send (SNI and ALPN variants,
 * TLS 1.2 only, and a TLS 1.3 HelloRetryRequest exchange whose second
 * ClientHello follows the first), captured from in-process handshakes:
 *   mkdir corpus && PORTIER_FUZZ_SEED_DIR=corpus ./fuzz_client_hello -runs=0 corpus
 *   ./fuzz_client_hello corpus
 */
#include "proxy/tls/tls_ctx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#define FUZZ_ASSERT(c) do { if (!(c)) abort(); } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static SSL_CTX *fuzz_ctx[2];
static X509 *fuzz_leaf;
static EVP_PKEY *fuzz_key;

/* What the ClientHello callback saw for the connection being driven. */
static struct {
	int calls;
	int sni_rc;
	char sni[256];
	bool acme_only;
} fuzz_seen;

/* fuzz_make_cert: a self-signed P-256 certificate for fuzz.example. */
static void fuzz_make_cert(void)
{
	fuzz_key = EVP_EC_gen("P-256");
	fuzz_leaf = X509_new();
	FUZZ_ASSERT(fuzz_key && fuzz_leaf);
	X509_NAME *name = X509_get_subject_name(fuzz_leaf);
	FUZZ_ASSERT(X509_set_version(fuzz_leaf, X509_VERSION_3) == 1 &&
		    ASN1_INTEGER_set(X509_get_serialNumber(fuzz_leaf), 1) == 1 &&
		    X509_gmtime_adj(X509_getm_notBefore(fuzz_leaf), -3600) &&
		    X509_gmtime_adj(X509_getm_notAfter(fuzz_leaf), 30L * 86400) &&
		    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
					       (const unsigned char *)"fuzz.example", -1, -1,
					       0) == 1 &&
		    X509_set_issuer_name(fuzz_leaf, name) == 1 &&
		    X509_set_pubkey(fuzz_leaf, fuzz_key) == 1 &&
		    X509_sign(fuzz_leaf, fuzz_key, EVP_sha256()) > 0);
}

/* fuzz_check_sni: the documented result shape of tls_client_hello_sni. */
static void fuzz_check_sni(int rc, const char *out, size_t outcap)
{
	FUZZ_ASSERT(rc >= -1 && rc <= 253);
	if (rc <= 0)
		return;
	FUZZ_ASSERT((size_t)rc < outcap && out[rc] == '\0' && strlen(out) == (size_t)rc);
	FUZZ_ASSERT(out[rc - 1] != '.' && out[0] != '.');
	for (int i = 0; i < rc; i++)
		FUZZ_ASSERT(!(out[i] >= 'A' && out[i] <= 'Z') && (unsigned char)out[i] > ' ' &&
			    (unsigned char)out[i] < 0x7f);
}

static int fuzz_hello_cb(SSL *ssl, int *alert, void *arg)
{
	(void)arg;
	fuzz_seen.calls++;
	memset(fuzz_seen.sni, 0x55, sizeof fuzz_seen.sni);
	fuzz_seen.sni_rc = tls_client_hello_sni(ssl, fuzz_seen.sni, sizeof fuzz_seen.sni);
	fuzz_check_sni(fuzz_seen.sni_rc, fuzz_seen.sni, sizeof fuzz_seen.sni);

	/* Exact-size heap buffers, so a write past outcap is caught; a name that
	 * fits gives the same answer as with the big buffer, one that does not
	 * gives -1. */
	static const size_t caps[] = {1, 2, 16, 254};
	for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
		char *small = malloc(caps[i]);
		FUZZ_ASSERT(small);
		int rc = tls_client_hello_sni(ssl, small, caps[i]);
		fuzz_check_sni(rc, small, caps[i]);
		if (fuzz_seen.sni_rc > 0 && (size_t)fuzz_seen.sni_rc < caps[i])
			FUZZ_ASSERT(rc == fuzz_seen.sni_rc && !strcmp(small, fuzz_seen.sni));
		else if (fuzz_seen.sni_rc > 0)
			FUZZ_ASSERT(rc == -1);
		else
			FUZZ_ASSERT(rc == fuzz_seen.sni_rc);
		free(small);
	}

	fuzz_seen.acme_only = tls_client_hello_acme_only(ssl);
	if (SSL_use_cert_and_key(ssl, fuzz_leaf, fuzz_key, NULL, 1) != 1) {
		*alert = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

static void fuzz_init(void)
{
	if (fuzz_ctx[0])
		return;
	fuzz_make_cert();
	char err[256];
	struct tls_ctx_opts o = {.min_version = TLS1_2_VERSION, .enable_h2 = false,
				 .client_hello_cb = fuzz_hello_cb};
	fuzz_ctx[0] = tls_ctx_new(&o, err, sizeof err);
	o.min_version = TLS1_3_VERSION;
	o.enable_h2 = true;
	o.enable_acme = true;
	fuzz_ctx[1] = tls_ctx_new(&o, err, sizeof err);
	if (!fuzz_ctx[0] || !fuzz_ctx[1]) {
		fprintf(stderr, "tls_ctx_new: %s\n", err);
		abort();
	}
}

/* fuzz_server: a server SSL on ctx reading from memory BIOs; *in receives
 * the client's bytes, *out collects the server's. */
static SSL *fuzz_server(SSL_CTX *ctx, BIO **in, BIO **out)
{
	SSL *ssl = SSL_new(ctx);
	*in = BIO_new(BIO_s_mem());
	*out = BIO_new(BIO_s_mem());
	FUZZ_ASSERT(ssl && *in && *out);
	SSL_set_bio(ssl, *in, *out);
	SSL_set_accept_state(ssl);
	return ssl;
}

/* fuzz_check_after: what a server SSL may report after handshake steps. */
static void fuzz_check_after(SSL *ssl, int pol)
{
	enum tls_alpn a = tls_alpn_selected(ssl);
	FUZZ_ASSERT(a == TLS_ALPN_NONE || a == TLS_ALPN_HTTP11 || (pol == 1 && a == TLS_ALPN_H2) ||
		    (pol == 1 && a == TLS_ALPN_ACME_TLS1));
	/* A client offering acme-tls/1 alone can get nothing else. */
	if (fuzz_seen.acme_only)
		FUZZ_ASSERT(a == TLS_ALPN_NONE || a == TLS_ALPN_ACME_TLS1);
	int v = SSL_version(ssl);
	if (SSL_is_init_finished(ssl))
		FUZZ_ASSERT(v == TLS1_3_VERSION || (pol == 0 && v == TLS1_2_VERSION));

	/* Whatever OpenSSL accepted as server_name is what the callback saw. */
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	if (name && fuzz_seen.sni_rc > 0) {
		size_t n = strlen(name);
		if (n > 0 && name[n - 1] == '.')
			n--;
		FUZZ_ASSERT(n == (size_t)fuzz_seen.sni_rc &&
			    !strncasecmp(name, fuzz_seen.sni, n));
	}
}

/* fuzz_ref_only_acme: the oracle for tls_alpn_only_acme: walk the list
 * (u16 length, then u8-length-prefixed non-empty names, nothing after) and
 * say whether it is well formed and holds acme-tls/1 alone. */
static bool fuzz_ref_only_acme(const uint8_t *p, size_t len)
{
	if (len < 2 || ((size_t)p[0] << 8 | p[1]) != len - 2)
		return false;
	size_t names = 0, i = 2;
	bool acme = false;
	while (i < len) {
		size_t n = p[i++];
		if (n == 0 || n > len - i)
			return false;
		acme = n == 10 && !memcmp(p + i, "acme-tls/1", 10);
		names++;
		i += n;
	}
	return names == 1 && acme;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_init();
	if (size > 65536)
		return 0;
	FUZZ_ASSERT(tls_alpn_only_acme(data, size) == fuzz_ref_only_acme(data, size));
	for (int pol = 0; pol < 2; pol++) {
		BIO *in, *out;
		SSL *ssl = fuzz_server(fuzz_ctx[pol], &in, &out);
		memset(&fuzz_seen, 0, sizeof fuzz_seen);
		if (size > 0)
			FUZZ_ASSERT(BIO_write(in, data, (int)size) == (int)size);
		/* A few steps: a HelloRetryRequest wants a second ClientHello. */
		for (int step = 0; step < 4; step++) {
			int rc = SSL_do_handshake(ssl);
			if (rc == 1)
				break;
			int e = SSL_get_error(ssl, rc);
			if (e != SSL_ERROR_WANT_READ || BIO_ctrl_pending(in) == 0)
				break;
		}
		FUZZ_ASSERT(fuzz_seen.calls <= 2);
		fuzz_check_after(ssl, pol);
		SSL_free(ssl);
		ERR_clear_error();
	}
	return 0;
}

/* ---- seeds ------------------------------------------------------------- */

struct fuzz_seed {
	const char *file;
	const char *sni;        /* NULL: none */
	const char *alpn;       /* wire format; NULL: none */
	unsigned alpn_len;
	int max_version;        /* 0: OpenSSL's */
	const char *groups;     /* NULL: OpenSSL's */
};

/* fuzz_move: append everything pending in from to to (and to cap, if set). */
static void fuzz_move(BIO *from, BIO *to, BIO *cap)
{
	char buf[4096];
	int n;
	while ((n = BIO_read(from, buf, sizeof buf)) > 0) {
		FUZZ_ASSERT(BIO_write(to, buf, n) == n);
		if (cap)
			FUZZ_ASSERT(BIO_write(cap, buf, n) == n);
	}
}

/* fuzz_seed_write: run s's client against fuzz_ctx[1 or 0] in memory and
 * store every byte the client sent into dir/s->file. */
static void fuzz_seed_write(const char *dir, const struct fuzz_seed *s)
{
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	FUZZ_ASSERT(cctx);
	if (s->max_version)
		SSL_CTX_set_max_proto_version(cctx, s->max_version);
	if (s->groups)
		FUZZ_ASSERT(SSL_CTX_set1_groups_list(cctx, s->groups) == 1);
	SSL *c = SSL_new(cctx);
	BIO *c_in = BIO_new(BIO_s_mem()), *c_out = BIO_new(BIO_s_mem());
	BIO *cap = BIO_new(BIO_s_mem());
	FUZZ_ASSERT(c && c_in && c_out && cap);
	SSL_set_bio(c, c_in, c_out);
	SSL_set_connect_state(c);
	if (s->sni)
		FUZZ_ASSERT(SSL_set_tlsext_host_name(c, s->sni) == 1);
	if (s->alpn)
		FUZZ_ASSERT(SSL_set_alpn_protos(c, (const unsigned char *)s->alpn, s->alpn_len) == 0);

	BIO *s_in, *s_out;
	SSL *srv = fuzz_server(fuzz_ctx[s->max_version == TLS1_2_VERSION ? 0 : 1], &s_in, &s_out);
	for (int i = 0; i < 8; i++) {
		SSL_do_handshake(c);
		fuzz_move(c_out, s_in, cap);
		SSL_do_handshake(srv);
		fuzz_move(s_out, c_in, NULL);
	}

	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, s->file);
	char *p;
	long n = BIO_get_mem_data(cap, &p);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(p, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "cannot write %s\n", path);
		abort();
	}
	fclose(f);
	fprintf(stderr, "seed %s: %ld bytes\n", path, n);
	SSL_free(c);
	SSL_free(srv);
	BIO_free(cap);
	SSL_CTX_free(cctx);
	ERR_clear_error();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fuzz_init();
	const char *dir = getenv("PORTIER_FUZZ_SEED_DIR");
	if (!dir)
		return 0;
	static const struct fuzz_seed seeds[] = {
		{"h2_sni", "a.example.com", "\x02h2\x08http/1.1", 12, 0, NULL},
		{"tls12_upper_dot", "A.Example.COM.", "\x08http/1.1", 9, TLS1_2_VERSION, NULL},
		{"acme_no_sni", NULL, "\x0a" "acme-tls/1", 11, 0, NULL},
		{"acme_sni", "acme.example", "\x0a" "acme-tls/1", 11, 0, NULL},
		{"acme_among_others", "acme.example", "\x02h2\x0a" "acme-tls/1", 14, 0, NULL},
		{"hrr_p384", "b.example.com", "\x02h2", 3, 0, "P-521:P-384"},
		{"long_sni", "x123456789.x123456789.x123456789.x123456789.x123456789."
			     "x123456789.x123456789.x123456789.x123456789.x123456789.x1234",
		 NULL, 0, 0, NULL},
	};
	for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
		fuzz_seed_write(dir, &seeds[i]);
	return 0;
}
