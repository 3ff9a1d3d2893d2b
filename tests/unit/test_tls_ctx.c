/*
 * test_tls_ctx.c - TLS policy end to end: in-process handshakes over BIO
 * pairs between an OpenSSL client and contexts from tls_ctx_new, whose
 * ClientHello callback serves a leaf from the internal CA. Versions, suites,
 * groups, ALPN (and how a tls-alpn-01 validator is told from other
 * clients), SNI extraction (also from hand-made ClientHellos) and ticket
 * resumption across contexts and key rotations.
 */
#include "tests/unit/check.h"

#include <ftw.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "acme/internal_ca.h"
#include "proxy/tls/tls_ctx.h"

static char tmpdir[64];
static char errbuf[512];
static struct cert *server_cert; /* test.example, from the internal CA */

/* What the server's ClientHello callback saw last. */
static struct {
	int calls;
	int sni_rc;
	char sni[300];
	bool acme_only;
} seen;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static int hello_cb(SSL *ssl, int *alert, void *arg)
{
	const struct cert *c = arg;
	seen.calls++;
	memset(seen.sni, 0, sizeof seen.sni);
	seen.sni_rc = tls_client_hello_sni(ssl, seen.sni, sizeof seen.sni);
	seen.acme_only = tls_client_hello_acme_only(ssl);
	if (SSL_use_cert_and_key(ssl, c->leaf, c->key, c->chain, 1) != 1) {
		*alert = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

static SSL_CTX *server_ctx(int min, bool h2, bool acme)
{
	struct tls_ctx_opts o = {.min_version = min, .enable_h2 = h2, .enable_acme = acme,
				 .client_hello_cb = hello_cb, .client_hello_arg = server_cert};
	SSL_CTX *ctx = tls_ctx_new(&o, errbuf, sizeof errbuf);
	if (!ctx)
		fprintf(stderr, "tls_ctx_new: %s\n", errbuf);
	return ctx;
}

struct client {
	int min, max;           /* 0: OpenSSL's defaults */
	const char *alpn;       /* wire format, NUL-terminated for convenience */
	const char *sni;        /* NULL: none */
	const char *ciphers12;  /* NULL: default */
	const char *suites13;   /* NULL: default (AES-256-GCM first) */
	const char *groups;     /* NULL: default */
	bool legacy;            /* security level 0, to offer TLS 1.1 */
	SSL_SESSION *session;   /* to resume */
};

struct result {
	bool ok, reused;
	int version;
	enum tls_alpn server_alpn;
	char client_alpn[32];
	char cipher[64];
	int server_reason; /* OpenSSL reason code of the server's failure */
	SSL_SESSION *session; /* resumable session, caller frees */
};

/* pump: drive both ends until both finish or one fails; bounded. */
static bool pump(SSL *cl, SSL *sv, struct result *r)
{
	bool cdone = false, sdone = false;
	for (int i = 0; i < 50 && !(cdone && sdone); i++) {
		if (!cdone) {
			int rc = SSL_do_handshake(cl);
			int e = SSL_get_error(cl, rc);
			if (rc == 1)
				cdone = true;
			else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
				return false;
		}
		if (!sdone) {
			int rc = SSL_do_handshake(sv);
			int e = SSL_get_error(sv, rc);
			if (rc == 1) {
				sdone = true;
			} else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
				r->server_reason = ERR_GET_REASON(ERR_peek_last_error());
				/* let the client read the alert */
				SSL_do_handshake(cl);
				return false;
			}
		}
	}
	return cdone && sdone;
}

/* client_ctx: a client trusting only the internal root. */
static SSL_CTX *client_ctx(const struct client *o)
{
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	if (!cctx)
		return NULL;
	if (o->legacy) {
		SSL_CTX_set_security_level(cctx, 0);
		SSL_CTX_set_cipher_list(cctx, "DEFAULT@SECLEVEL=0");
	}
	if (o->min)
		SSL_CTX_set_min_proto_version(cctx, o->min);
	if (o->max)
		SSL_CTX_set_max_proto_version(cctx, o->max);
	if (o->ciphers12)
		SSL_CTX_set_cipher_list(cctx, o->ciphers12);
	if (o->suites13)
		SSL_CTX_set_ciphersuites(cctx, o->suites13);
	if (o->groups)
		SSL_CTX_set1_groups_list(cctx, o->groups);
	X509_STORE_add_cert(SSL_CTX_get_cert_store(cctx), sk_X509_value(server_cert->chain, 0));
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
	return cctx;
}

static struct result handshake(SSL_CTX *sctx, const struct client *o)
{
	struct result r = {0};
	BIO *cb = NULL, *sb = NULL;
	SSL_CTX *cctx = client_ctx(o);
	SSL *cl = cctx ? SSL_new(cctx) : NULL;
	SSL *sv = SSL_new(sctx);
	if (!cl || !sv || !BIO_new_bio_pair(&cb, 0, &sb, 0))
		goto out;
	SSL_set_bio(cl, cb, cb);
	SSL_set_bio(sv, sb, sb);
	SSL_set_connect_state(cl);
	SSL_set_accept_state(sv);
	SSL_set1_host(cl, "test.example");
	if (o->sni)
		SSL_set_tlsext_host_name(cl, o->sni);
	if (o->alpn)
		SSL_set_alpn_protos(cl, (const unsigned char *)o->alpn, (unsigned)strlen(o->alpn));
	if (o->session)
		SSL_set_session(cl, o->session);
	r.ok = pump(cl, sv, &r);
	if (!r.ok)
		goto out;
	r.reused = SSL_session_reused(cl) && SSL_session_reused(sv);
	r.version = SSL_version(cl);
	r.server_alpn = tls_alpn_selected(sv);
	const unsigned char *p = NULL;
	unsigned n = 0;
	SSL_get0_alpn_selected(cl, &p, &n);
	snprintf(r.client_alpn, sizeof r.client_alpn, "%.*s", (int)n, p ? (const char *)p : "");
	snprintf(r.cipher, sizeof r.cipher, "%s", SSL_get_cipher_name(cl));
	/* TLS 1.3 tickets arrive after the handshake: let the client read them. */
	char byte;
	SSL_read(cl, &byte, 1);
	/* A client freed without close_notify marks its session not resumable. */
	SSL_shutdown(cl);
	SSL_SESSION *s = SSL_get1_session(cl);
	if (s && SSL_SESSION_is_resumable(s))
		r.session = s;
	else
		SSL_SESSION_free(s);
out:
	ERR_clear_error();
	SSL_free(cl);
	SSL_free(sv);
	SSL_CTX_free(cctx);
	return r;
}

static void test_ctx_settings(void)
{
	struct tls_ctx_opts o = {.min_version = TLS1_1_VERSION};
	errbuf[0] = '\0';
	CHECK(tls_ctx_new(&o, errbuf, sizeof errbuf) == NULL && strstr(errbuf, "1.2"));
	o.min_version = 0; /* unset means 1.2 */
	SSL_CTX *ctx = tls_ctx_new(&o, errbuf, sizeof errbuf);
	CHECK(ctx != NULL);
	if (!ctx)
		return;
	CHECK(SSL_CTX_get_min_proto_version(ctx) == TLS1_2_VERSION);
	CHECK(SSL_CTX_get_max_proto_version(ctx) == TLS1_3_VERSION);
	uint64_t want = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
			SSL_OP_CIPHER_SERVER_PREFERENCE;
	CHECK((SSL_CTX_get_options(ctx) & want) == want);
	CHECK((SSL_CTX_get_options(ctx) & (SSL_OP_NO_TICKET | SSL_OP_ALLOW_CLIENT_RENEGOTIATION)) ==
	      0);
	long mode = SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
		    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER;
	CHECK((SSL_CTX_get_mode(ctx) & mode) == mode);
	CHECK(SSL_CTX_get_session_cache_mode(ctx) == SSL_SESS_CACHE_OFF);
	CHECK(SSL_CTX_get_num_tickets(ctx) == 1);
	SSL_CTX_free(ctx);
}

static void test_versions_and_suites(void)
{
	SSL_CTX *sctx = server_ctx(TLS1_2_VERSION, false, false);
	SSL_CTX *strict = server_ctx(TLS1_3_VERSION, false, false);
	CHECK(sctx && strict);
	if (!sctx || !strict)
		goto out;
	struct result r = handshake(sctx, &(struct client){.sni = "test.example"});
	CHECK(r.ok && r.version == TLS1_3_VERSION);
	CHECK(seen.sni_rc == 12);
	CHECK_STR(seen.sni, "test.example");
	/* OpenSSL's clients list AES-256-GCM first; the server's order wins */
	CHECK_STR(r.cipher, "TLS_AES_128_GCM_SHA256");
	SSL_SESSION_free(r.session);

	/* a client without AES hardware lists ChaCha first, and gets it */
	r = handshake(sctx, &(struct client){.suites13 = "TLS_CHACHA20_POLY1305_SHA256:"
							 "TLS_AES_128_GCM_SHA256"});
	CHECK(r.ok && r.version == TLS1_3_VERSION);
	CHECK_STR(r.cipher, "TLS_CHACHA20_POLY1305_SHA256");
	SSL_SESSION_free(r.session);
	/* one that insists on AES-256-GCM gets it */
	r = handshake(sctx, &(struct client){.suites13 = "TLS_AES_256_GCM_SHA384"});
	CHECK(r.ok && r.version == TLS1_3_VERSION);
	CHECK_STR(r.cipher, "TLS_AES_256_GCM_SHA384");
	SSL_SESSION_free(r.session);

	r = handshake(sctx, &(struct client){.max = TLS1_2_VERSION, .sni = "test.example"});
	CHECK(r.ok && r.version == TLS1_2_VERSION);
	CHECK_STR(r.cipher, "ECDHE-ECDSA-AES128-GCM-SHA256");
	SSL_SESSION_free(r.session);

	/* TLS 1.1 is refused by the server itself, not by the client's policy:
	 * the same legacy client gets in with 1.2. */
	r = handshake(sctx, &(struct client){.min = TLS1_1_VERSION, .max = TLS1_1_VERSION,
					     .legacy = true, .sni = "test.example"});
	CHECK(!r.ok && r.server_reason == SSL_R_UNSUPPORTED_PROTOCOL);
	r = handshake(sctx, &(struct client){.min = TLS1_1_VERSION, .max = TLS1_2_VERSION,
					     .legacy = true, .sni = "test.example"});
	CHECK(r.ok && r.version == TLS1_2_VERSION);
	SSL_SESSION_free(r.session);

	/* min_version 1.3 */
	r = handshake(strict, &(struct client){.max = TLS1_2_VERSION});
	CHECK(!r.ok);
	r = handshake(strict, &(struct client){0});
	CHECK(r.ok && r.version == TLS1_3_VERSION);
	SSL_SESSION_free(r.session);

	/* TLS 1.2: no CBC, no static RSA key exchange */
	r = handshake(sctx, &(struct client){.max = TLS1_2_VERSION,
					     .ciphers12 = "ECDHE-ECDSA-AES128-SHA256"});
	CHECK(!r.ok);
	r = handshake(sctx, &(struct client){.max = TLS1_2_VERSION, .legacy = true,
					     .ciphers12 = "AES128-GCM-SHA256:@SECLEVEL=0"});
	CHECK(!r.ok);
	/* a client that prefers ChaCha gets it */
	r = handshake(sctx, &(struct client){.max = TLS1_2_VERSION,
					     .ciphers12 = "ECDHE-ECDSA-CHACHA20-POLY1305:"
							  "ECDHE-ECDSA-AES128-GCM-SHA256"});
	CHECK(r.ok);
	CHECK_STR(r.cipher, "ECDHE-ECDSA-CHACHA20-POLY1305");
	SSL_SESSION_free(r.session);

	/* groups */
	r = handshake(sctx, &(struct client){.groups = "P-384"});
	CHECK(r.ok);
	SSL_SESSION_free(r.session);
	r = handshake(sctx, &(struct client){.groups = "P-521"});
	CHECK(!r.ok);
	r = handshake(sctx, &(struct client){.max = TLS1_2_VERSION, .groups = "P-521"});
	CHECK(!r.ok);
out:
	SSL_CTX_free(sctx);
	SSL_CTX_free(strict);
}

#define ALPN_H2 "\x02h2"
#define ALPN_H11 "\x08http/1.1"
#define ALPN_ACME "\x0a" "acme-tls/1"

static void check_alpn(SSL_CTX *sctx, const char *offer, enum tls_alpn want,
		       const char *want_text)
{
	struct result r = handshake(sctx, &(struct client){.alpn = offer, .sni = "test.example"});
	CHECK(r.ok);
	CHECK(r.server_alpn == want);
	CHECK_STR(r.client_alpn, want_text);
	SSL_SESSION_free(r.session);
}

static void test_alpn(void)
{
	SSL_CTX *plain = server_ctx(TLS1_2_VERSION, false, false);
	SSL_CTX *h2 = server_ctx(TLS1_2_VERSION, true, false);
	SSL_CTX *acme = server_ctx(TLS1_2_VERSION, true, true);
	CHECK(plain && h2 && acme);
	if (!plain || !h2 || !acme)
		goto out;
	check_alpn(plain, ALPN_H2 ALPN_H11, TLS_ALPN_HTTP11, "http/1.1");
	check_alpn(plain, ALPN_H11, TLS_ALPN_HTTP11, "http/1.1");
	check_alpn(plain, ALPN_H2, TLS_ALPN_NONE, "");
	check_alpn(plain, NULL, TLS_ALPN_NONE, "");
	check_alpn(plain, "\x06spdy/3", TLS_ALPN_NONE, "");
	check_alpn(h2, ALPN_H2 ALPN_H11, TLS_ALPN_H2, "h2");
	check_alpn(h2, ALPN_H11 ALPN_H2, TLS_ALPN_H2, "h2"); /* server's order wins */
	check_alpn(h2, ALPN_H11, TLS_ALPN_HTTP11, "http/1.1");
	/* acme-tls/1 only when enabled, and only when offered */
	check_alpn(h2, ALPN_ACME, TLS_ALPN_NONE, "");
	check_alpn(acme, ALPN_ACME, TLS_ALPN_ACME_TLS1, "acme-tls/1");
	check_alpn(acme, ALPN_H2 ALPN_H11, TLS_ALPN_H2, "h2");
	check_alpn(acme, ALPN_H11 ALPN_ACME, TLS_ALPN_HTTP11, "http/1.1");
	check_alpn(acme, NULL, TLS_ALPN_NONE, "");
	/* TLS 1.2 path too */
	struct result r = handshake(acme, &(struct client){.max = TLS1_2_VERSION, .alpn = ALPN_ACME});
	CHECK(r.ok && r.server_alpn == TLS_ALPN_ACME_TLS1);
	SSL_SESSION_free(r.session);
out:
	SSL_CTX_free(plain);
	SSL_CTX_free(h2);
	SSL_CTX_free(acme);
}

/* acme_only: what the ClientHello callback made of a client offering offer. */
static bool acme_only(SSL_CTX *sctx, const char *offer)
{
	seen.acme_only = true; /* the callback must overwrite it */
	struct result r = handshake(sctx, &(struct client){.alpn = offer, .sni = "test.example"});
	CHECK(r.ok);
	SSL_SESSION_free(r.session);
	return seen.acme_only;
}

/* test_alpn_only_acme: RFC 8737 validators offer acme-tls/1 alone; a client
 * that lists it among others must never be taken for one. */
static void test_alpn_only_acme(void)
{
	static const unsigned char good[] = "\x00\x0b" ALPN_ACME;
	CHECK(tls_alpn_only_acme(good, 13));
	CHECK(!tls_alpn_only_acme(good, 12));                    /* truncated */
	CHECK(!tls_alpn_only_acme(good, 14));                    /* trailing byte */
	CHECK(!tls_alpn_only_acme(NULL, 13));
	CHECK(!tls_alpn_only_acme((const unsigned char *)"", 0));
	CHECK(!tls_alpn_only_acme((const unsigned char *)"\x00\x0c" ALPN_ACME "x", 14));
	CHECK(!tls_alpn_only_acme((const unsigned char *)"\x00\x0b\x0a" "acme-tls/2", 13));
	CHECK(!tls_alpn_only_acme((const unsigned char *)"\x00\x0b\x0a" "ACME-TLS/1", 13));
	CHECK(!tls_alpn_only_acme((const unsigned char *)"\x00\x0b\x0b" "acme-tls/1", 13));
	CHECK(!tls_alpn_only_acme((const unsigned char *)"\x00\x16" ALPN_ACME ALPN_ACME, 24));
	CHECK(!tls_alpn_only_acme((const unsigned char *)"\x00\x0e" ALPN_ACME ALPN_H2, 16));
	CHECK(!tls_alpn_only_acme((const unsigned char *)"\x00\x0e" ALPN_H2 ALPN_ACME, 16));

	/* the same through real ClientHellos */
	SSL_CTX *acme = server_ctx(TLS1_2_VERSION, true, true);
	CHECK(acme != NULL);
	if (!acme)
		return;
	CHECK(acme_only(acme, ALPN_ACME));
	CHECK(!acme_only(acme, ALPN_H2 ALPN_H11 ALPN_ACME));
	CHECK(!acme_only(acme, ALPN_ACME ALPN_H11));
	CHECK(!acme_only(acme, ALPN_ACME ALPN_ACME));
	CHECK(!acme_only(acme, ALPN_H11));
	CHECK(!acme_only(acme, NULL));
	SSL_CTX_free(acme);
}

static void check_sni(SSL_CTX *sctx, const char *sent, int want_rc, const char *want)
{
	seen.calls = 0;
	seen.sni_rc = 99;
	struct result r = handshake(sctx, &(struct client){.sni = sent});
	SSL_SESSION_free(r.session);
	CHECK(seen.calls >= 1);
	CHECK(seen.sni_rc == want_rc);
	if (want)
		CHECK_STR(seen.sni, want);
}

static void test_sni(void)
{
	SSL_CTX *sctx = server_ctx(TLS1_2_VERSION, false, false);
	CHECK(sctx != NULL);
	if (!sctx)
		return;
	check_sni(sctx, "Test.EXAMPLE.", 12, "test.example");
	check_sni(sctx, "test.example", 12, "test.example");
	check_sni(sctx, NULL, 0, NULL);
	check_sni(sctx, "a_b.test", 8, "a_b.test");
	check_sni(sctx, "bad name.test", -1, NULL);
	check_sni(sctx, "semi;colon", -1, NULL);
	check_sni(sctx, "a..b", -1, NULL);
	check_sni(sctx, ".lead", -1, NULL);
	check_sni(sctx, "two..", -1, NULL);
	check_sni(sctx, ".", -1, NULL);
	char name[256];
	memset(name, 'a', 253);
	name[253] = '\0';
	check_sni(sctx, name, 253, name);
	name[253] = '.';
	name[254] = '\0';
	check_sni(sctx, name, 253, NULL); /* the trailing dot does not count */
	name[253] = 'a';
	check_sni(sctx, name, -1, NULL);
	SSL_CTX_free(sctx);
}

/* raw_hello: a TLS 1.2 ClientHello record whose only extension is
 * server_name with the given body, to reach the parser with bytes no real
 * client would send. */
static size_t raw_hello(unsigned char *out, const unsigned char *sni, size_t sni_len)
{
	unsigned char body[1024];
	size_t n = 0;
	body[n++] = 0x03, body[n++] = 0x03;        /* client_version */
	memset(body + n, 0x42, 32), n += 32;        /* random */
	body[n++] = 0;                              /* session id */
	body[n++] = 0, body[n++] = 2;               /* cipher suites */
	body[n++] = 0xc0, body[n++] = 0x2b;
	body[n++] = 1, body[n++] = 0;               /* compression: null */
	size_t ext_len = 4 + sni_len;
	body[n++] = (unsigned char)(ext_len >> 8), body[n++] = (unsigned char)ext_len;
	body[n++] = 0, body[n++] = 0;               /* server_name */
	body[n++] = (unsigned char)(sni_len >> 8), body[n++] = (unsigned char)sni_len;
	memcpy(body + n, sni, sni_len), n += sni_len;

	size_t o = 0, hs = n + 4;
	out[o++] = 0x16, out[o++] = 0x03, out[o++] = 0x01;
	out[o++] = (unsigned char)(hs >> 8), out[o++] = (unsigned char)hs;
	out[o++] = 0x01;
	out[o++] = 0, out[o++] = (unsigned char)(n >> 8), out[o++] = (unsigned char)n;
	memcpy(out + o, body, n);
	return o + n;
}

static int raw_sni(SSL_CTX *sctx, const void *ext, size_t len)
{
	unsigned char rec[1200];
	size_t n = raw_hello(rec, ext, len);
	SSL *sv = SSL_new(sctx);
	BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
	BIO_write(in, rec, (int)n);
	SSL_set_bio(sv, in, out);
	SSL_set_accept_state(sv);
	seen.calls = 0;
	seen.sni_rc = 99;
	SSL_do_handshake(sv);
	SSL_free(sv);
	ERR_clear_error();
	return seen.calls ? seen.sni_rc : 98;
}

static void test_sni_malformed(void)
{
	SSL_CTX *sctx = server_ctx(TLS1_2_VERSION, false, false);
	CHECK(sctx != NULL);
	if (!sctx)
		return;
	/* well formed, to show the harness reaches the parser */
	CHECK(raw_sni(sctx, "\x00\x09\x00\x00\x06" "ab.CDE", 11) == 6);
	CHECK_STR(seen.sni, "ab.cde");
	CHECK(raw_sni(sctx, "", 0) == -1);                            /* no list length */
	CHECK(raw_sni(sctx, "\x00", 1) == -1);                        /* half a length */
	CHECK(raw_sni(sctx, "\x00\x00", 2) == -1);                    /* empty list */
	CHECK(raw_sni(sctx, "\x00\x0a\x00\x00\x06" "ab.cde", 11) == -1); /* list too long */
	CHECK(raw_sni(sctx, "\x00\x08\x00\x00\x06" "ab.cde", 11) == -1); /* list too short */
	CHECK(raw_sni(sctx, "\x00\x09\x00\x00\x07" "ab.cde", 11) == -1); /* name past list */
	CHECK(raw_sni(sctx, "\x00\x02\x00\x00", 4) == -1);            /* truncated entry */
	CHECK(raw_sni(sctx, "\x00\x03\x00\x00\x00", 5) == -1);        /* empty name */
	CHECK(raw_sni(sctx, "\x00\x09\x01\x00\x06" "ab.cde", 11) == -1); /* not host_name */
	CHECK(raw_sni(sctx, "\x00\x09\x00\x00\x06" "ab\0cde", 11) == -1); /* NUL byte */
	CHECK(raw_sni(sctx, "\x00\x09\x00\x00\x06" "ab\xc3\xa9" "de", 11) == -1); /* UTF-8 */
	CHECK(raw_sni(sctx, "\x00\x04\x00\x00\x01.", 6) == -1);       /* only a dot */
	/* an unknown name type first, then host_name */
	CHECK(raw_sni(sctx, "\x00\x0c\x07\x00\x00\x00\x00\x06" "ab.cde", 14) == 6);
	/* 300-byte name: over 253 */
	unsigned char big[310];
	big[0] = 0x01, big[1] = 0x2f, big[2] = 0, big[3] = 0x01, big[4] = 0x2c;
	memset(big + 5, 'a', 300);
	CHECK(raw_sni(sctx, big, 305) == -1);
	SSL_CTX_free(sctx);
}

static void test_resumption(int max)
{
	SSL_CTX *a = server_ctx(TLS1_2_VERSION, false, false);
	SSL_CTX *b = server_ctx(TLS1_2_VERSION, true, false);
	CHECK(a && b);
	if (!a || !b)
		goto out;
	struct client c = {.max = max, .sni = "test.example"};
	struct result first = handshake(a, &c);
	CHECK(first.ok && !first.reused && first.session != NULL);
	if (!first.session)
		goto out;
	/* the ticket from context a resumes on context b: keys are shared */
	c.session = first.session;
	struct result r = handshake(b, &c);
	CHECK(r.ok && r.reused);
	SSL_SESSION_free(r.session);
	/* one rotation: the previous key still decrypts */
	tls_ticket_keys_rotate();
	r = handshake(a, &c);
	CHECK(r.ok && r.reused && r.session);
	/* ...and the renewed ticket it handed out survives the next rotation */
	SSL_SESSION *renewed = r.session;
	tls_ticket_keys_rotate();
	/* two rotations: the first ticket's key is gone, full handshake */
	r = handshake(b, &c);
	CHECK(r.ok && !r.reused);
	SSL_SESSION_free(r.session);
	c.session = renewed;
	r = handshake(b, &c);
	CHECK(r.ok && r.reused);
	SSL_SESSION_free(r.session);
	SSL_SESSION_free(renewed);
	SSL_SESSION_free(first.session);
out:
	SSL_CTX_free(a);
	SSL_CTX_free(b);
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/portier-tls-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	struct internal_ca *ca = internal_ca_open(tmpdir, errbuf, sizeof errbuf);
	server_cert = ca ? internal_ca_issue(ca, "test.example", errbuf, sizeof errbuf) : NULL;
	CHECK(server_cert != NULL);
	if (server_cert) {
		test_ctx_settings();
		test_versions_and_suites();
		test_alpn();
		test_alpn_only_acme();
		test_sni();
		test_sni_malformed();
		test_resumption(TLS1_3_VERSION);
		test_resumption(TLS1_2_VERSION);
	} else {
		fprintf(stderr, "setup: %s\n", errbuf);
	}
	cert_release(server_cert);
	internal_ca_free(ca);
	tls_ctx_free_globals();
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return check_done();
}
