/*
 * tls_ctx.c - TLS policy: versions, suites, groups, ALPN, and the process-wide
 * session ticket keys that let any SSL_CTX (any worker) resume a session that
 * another one started.
 */
#include "proxy/tls/tls_ctx.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/tls1.h>

#include "acme/pem.h"

/* TLS 1.2: forward secret key exchange and AEAD. Server order puts
 * AES-128-GCM first (cheapest with AES-NI); SSL_OP_PRIORITIZE_CHACHA lets
 * clients without AES hardware, which list ChaCha first, get ChaCha. */
#define TLS_CIPHERS_12                                                                    \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                      \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                      \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
/* TLS 1.3: AES-128-GCM first too, as Go's servers (Caddy, Traefik) do. OpenSSL's
 * default puts AES-256-GCM-SHA384 first, which adds nothing over the 128-bit
 * security of X25519/P-256 and ECDSA P-256, while its SHA-384 key schedule
 * makes a full handshake 6% dearer (SHA-256 has CPU instructions). */
#define TLS_SUITES_13 "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384"
#define TLS_GROUPS "X25519:P-256:P-384"

/* ---- session ticket keys ---------------------------------------------- */

struct tls_ticket_key {
	unsigned char name[16];
	unsigned char aes[32];
	unsigned char hmac[32];
};

/* An immutable key set: the current key encrypts, both decrypt. Rotation
 * publishes a new set; handshakes read the pointer without locking. */
struct tls_ticket_keys {
	struct tls_ticket_key cur, prev;
	bool has_prev;
};

static _Atomic(struct tls_ticket_keys *) tls_keys_live;
/* The set replaced by the last rotation. A handshake may still be reading it
 * when it is replaced; it is freed one rotation later (hours, not the
 * microseconds a ticket callback takes). Writers hold tls_keys_lock. */
static struct tls_ticket_keys *tls_keys_retired;
static pthread_mutex_t tls_keys_lock = PTHREAD_MUTEX_INITIALIZER;
/* Fetched once: an implicit fetch on every ticket would take a lock each time.
 * Written before the first key set is published, read only after. */
static EVP_CIPHER *tls_ticket_cipher;

static void tls_keys_free(struct tls_ticket_keys *k)
{
	if (!k)
		return;
	OPENSSL_cleanse(k, sizeof *k);
	free(k);
}

/* tls_keys_next: a set whose current key is fresh and whose previous key is
 * old's current one (NULL old: the first set). NULL if the RNG fails. */
static struct tls_ticket_keys *tls_keys_next(const struct tls_ticket_keys *old)
{
	struct tls_ticket_keys *k = calloc(1, sizeof *k);
	if (!k)
		return NULL;
	if (RAND_bytes((unsigned char *)&k->cur, sizeof k->cur) != 1) {
		tls_keys_free(k);
		return NULL;
	}
	if (old) {
		k->prev = old->cur;
		k->has_prev = true;
	}
	return k;
}

/* tls_keys_rotate_locked: publish a new set after live; caller holds the lock. */
static int tls_keys_rotate_locked(void)
{
	struct tls_ticket_keys *old = atomic_load_explicit(&tls_keys_live, memory_order_relaxed);
	struct tls_ticket_keys *next = tls_keys_next(old);
	if (!next)
		return -1;
	atomic_store_explicit(&tls_keys_live, next, memory_order_release);
	tls_keys_free(tls_keys_retired);
	tls_keys_retired = old;
	return 0;
}

/* tls_keys_init: the first key set, made at the first tls_ctx_new. */
static int tls_keys_init(void)
{
	int rc = 0;
	pthread_mutex_lock(&tls_keys_lock);
	if (!tls_ticket_cipher)
		tls_ticket_cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
	if (!tls_ticket_cipher)
		rc = -1;
	else if (!atomic_load_explicit(&tls_keys_live, memory_order_relaxed))
		rc = tls_keys_rotate_locked();
	pthread_mutex_unlock(&tls_keys_lock);
	return rc;
}

void tls_ticket_keys_rotate(void)
{
	pthread_mutex_lock(&tls_keys_lock);
	/* On RNG failure the current keys stay: tickets keep working. */
	if (tls_ticket_cipher)
		tls_keys_rotate_locked();
	pthread_mutex_unlock(&tls_keys_lock);
}

void tls_ctx_free_globals(void)
{
	pthread_mutex_lock(&tls_keys_lock);
	tls_keys_free(atomic_exchange(&tls_keys_live, NULL));
	tls_keys_free(tls_keys_retired);
	tls_keys_retired = NULL;
	EVP_CIPHER_free(tls_ticket_cipher);
	tls_ticket_cipher = NULL;
	pthread_mutex_unlock(&tls_keys_lock);
}

/* tls_ticket_init: key the cipher and HMAC contexts with k. */
static int tls_ticket_init(const struct tls_ticket_key *k, const unsigned char *iv,
			   EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	static char digest[] = "SHA256";
	OSSL_PARAM params[3];
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac,
						      sizeof k->hmac);
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
	params[2] = OSSL_PARAM_construct_end();
	return EVP_CipherInit_ex(cctx, tls_ticket_cipher, NULL, k->aes, iv, enc) == 1 &&
	       EVP_MAC_CTX_set_params(hctx, params) == 1;
}

/* tls_ticket_cb: OpenSSL's ticket key callback. Encrypting: 1 with a ticket,
 * 0 for none (the handshake goes on). Decrypting: 1 ticket good, 2 good but
 * under the previous key (the client gets a fresh ticket), 0 unknown key
 * (full handshake), -1 error. */
static int tls_ticket_cb(SSL *ssl, unsigned char key_name[16], unsigned char *iv,
			 EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	(void)ssl;
	const struct tls_ticket_keys *keys =
		atomic_load_explicit(&tls_keys_live, memory_order_acquire);
	if (!keys)
		return 0; /* after tls_ctx_free_globals: no tickets */
	if (enc) {
		int ivlen = EVP_CIPHER_get_iv_length(tls_ticket_cipher);
		if (ivlen <= 0 || RAND_bytes(iv, ivlen) != 1)
			return 0;
		memcpy(key_name, keys->cur.name, sizeof keys->cur.name);
		return tls_ticket_init(&keys->cur, iv, cctx, hctx, 1) ? 1 : 0;
	}
	if (!memcmp(key_name, keys->cur.name, sizeof keys->cur.name))
		return tls_ticket_init(&keys->cur, iv, cctx, hctx, 0) ? 1 : -1;
	if (keys->has_prev && !memcmp(key_name, keys->prev.name, sizeof keys->prev.name))
		return tls_ticket_init(&keys->prev, iv, cctx, hctx, 0) ? 2 : -1;
	return 0;
}

/* ---- ALPN -------------------------------------------------------------- */

/* What a context accepts; SSL_CTX_set_alpn_select_cb's argument points at one
 * of these constant entries, so nothing needs freeing with the context. */
struct tls_alpn_policy {
	bool h2, acme;
};
static const struct tls_alpn_policy tls_alpn_policies[4] = {
	{false, false}, {true, false}, {false, true}, {true, true}};

static const struct {
	enum tls_alpn id;
	const char *name;
} tls_alpn_names[] = {
	{TLS_ALPN_HTTP11, "http/1.1"},
	{TLS_ALPN_H2, "h2"},
	{TLS_ALPN_ACME_TLS1, "acme-tls/1"},
};

static enum tls_alpn tls_alpn_lookup(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < sizeof tls_alpn_names / sizeof tls_alpn_names[0]; i++)
		if (strlen(tls_alpn_names[i].name) == n && !memcmp(tls_alpn_names[i].name, p, n))
			return tls_alpn_names[i].id;
	return TLS_ALPN_NONE;
}

/* tls_alpn_find: where the client's list (wire format) offers id, or NULL. */
static const unsigned char *tls_alpn_find(const unsigned char *in, unsigned inlen,
					  enum tls_alpn id)
{
	for (unsigned i = 0; i < inlen;) {
		unsigned n = in[i];
		if (n == 0 || n > inlen - i - 1)
			return NULL;
		if (tls_alpn_lookup(in + i + 1, n) == id)
			return in + i;
		i += 1 + n;
	}
	return NULL;
}

/* tls_alpn_cb: server preference h2 (when enabled), http/1.1, then
 * acme-tls/1 (when enabled; RFC 8737 validators offer it alone). No overlap:
 * no ALPN in the answer, and the connection is served as HTTP/1.1. */
static int tls_alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned inlen, void *arg)
{
	(void)ssl;
	const struct tls_alpn_policy *pol = arg;
	const unsigned char *hit = NULL;
	if (pol->h2)
		hit = tls_alpn_find(in, inlen, TLS_ALPN_H2);
	if (!hit)
		hit = tls_alpn_find(in, inlen, TLS_ALPN_HTTP11);
	if (!hit && pol->acme)
		hit = tls_alpn_find(in, inlen, TLS_ALPN_ACME_TLS1);
	if (!hit)
		return SSL_TLSEXT_ERR_NOACK;
	*out = hit + 1;
	*outlen = hit[0];
	return SSL_TLSEXT_ERR_OK;
}

enum tls_alpn tls_alpn_selected(const SSL *ssl)
{
	const unsigned char *p = NULL;
	unsigned n = 0;
	SSL_get0_alpn_selected(ssl, &p, &n);
	return p ? tls_alpn_lookup(p, n) : TLS_ALPN_NONE;
}

bool tls_alpn_only_acme(const unsigned char *ext, size_t len)
{
	/* A list holding acme-tls/1 alone has exactly one encoding: list length
	 * 11, name length 10, the name. Comparing with it is the whole parse,
	 * with nothing to walk and nothing to overrun; anything longer (a second
	 * name, a duplicate, trailing bytes) or shorter is not a validator. */
	static const unsigned char only[] = {0x00, 0x0b, 0x0a, 'a', 'c', 'm', 'e', '-',
					     't', 'l', 's', '/', '1'};
	return ext && len == sizeof only && !memcmp(ext, only, sizeof only);
}

bool tls_client_hello_acme_only(SSL *ssl)
{
	const unsigned char *p = NULL;
	size_t len = 0;
	if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation,
				       &p, &len))
		return false;
	return tls_alpn_only_acme(p, len);
}

/* ---- SNI --------------------------------------------------------------- */

/* tls_sni_copy: name (n bytes off the wire) lowercased without one trailing
 * dot; -1 for empty labels, bytes outside [a-z0-9.-_*], over 253 bytes. */
static int tls_sni_copy(const unsigned char *name, size_t n, char *out, size_t outcap)
{
	if (n > 0 && name[n - 1] == '.')
		n--;
	if (n == 0 || n > 253 || n >= outcap)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = name[i];
		if (ch >= 'A' && ch <= 'Z')
			ch = (unsigned char)(ch - 'A' + 'a');
		int ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
			 ch == '_' || ch == '*' || (ch == '.' && i > 0 && name[i - 1] != '.');
		if (!ok)
			return -1;
		out[i] = (char)ch;
	}
	if (out[n - 1] == '.')
		return -1;
	out[n] = '\0';
	return (int)n;
}

int tls_client_hello_sni(SSL *ssl, char *out, size_t outcap)
{
	const unsigned char *p = NULL;
	size_t len = 0;
	if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len))
		return 0;
	/* ServerNameList: u16 length, then entries of u8 type, u16 length, bytes. */
	if (len < 2 || ((size_t)p[0] << 8 | p[1]) != len - 2)
		return -1;
	const unsigned char *end = p + len;
	p += 2;
	while (end - p >= 3) {
		unsigned type = p[0];
		size_t n = (size_t)p[1] << 8 | p[2];
		p += 3;
		if ((size_t)(end - p) < n)
			return -1;
		if (type == TLSEXT_NAMETYPE_host_name)
			return tls_sni_copy(p, n, out, outcap);
		p += n;
	}
	return -1; /* no host_name entry, or trailing bytes */
}

/* ---- the context ------------------------------------------------------- */

SSL_CTX *tls_ctx_new(const struct tls_ctx_opts *opts, char *errbuf, size_t errlen)
{
	char reason[160];
	const char *what = NULL;
	int min = opts->min_version ? opts->min_version : TLS1_2_VERSION;
	if (min != TLS1_2_VERSION && min != TLS1_3_VERSION) {
		snprintf(errbuf, errlen, "TLS minimum version must be 1.2 or 1.3");
		return NULL;
	}
	if (tls_keys_init() < 0) {
		snprintf(errbuf, errlen, "cannot create session ticket keys: %s",
			 pem_ssl_reason(reason, sizeof reason));
		return NULL;
	}
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		what = "SSL_CTX_new";
		goto fail;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, min) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
		what = "protocol versions";
		goto fail;
	}
	if (!SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12) ||
	    !SSL_CTX_set_ciphersuites(ctx, TLS_SUITES_13)) {
		what = "cipher suites";
		goto fail;
	}
	if (!SSL_CTX_set1_groups_list(ctx, TLS_GROUPS)) {
		what = "groups";
		goto fail;
	}
	/* Renegotiation is refused both ways (ALLOW_CLIENT_RENEGOTIATION stays
	 * clear); tickets must stay on (SSL_OP_NO_TICKET clear). A client that
	 * closes without close_notify (most do, between requests) ends the
	 * connection as one that sends it: otherwise OpenSSL answers the closed
	 * socket with an alert, a write and a segment for a reset. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA |
					 SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_clear_options(ctx, SSL_OP_ALLOW_CLIENT_RENEGOTIATION | SSL_OP_NO_TICKET);
	/* Buffers go back to the pool on idle connections; conn_io retries
	 * writes from a moved buffer and wants partial writes. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* Stateless resumption only: a server-side cache would be per worker and
	 * per context, tickets work across all of them. One TLS 1.3 ticket per
	 * handshake instead of two halves the ticket crypto. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (!SSL_CTX_set_num_tickets(ctx, 1) ||
	    !SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tls_ticket_cb)) {
		what = "session tickets";
		goto fail;
	}
	const struct tls_alpn_policy *pol =
		&tls_alpn_policies[(opts->enable_h2 ? 1 : 0) | (opts->enable_acme ? 2 : 0)];
	SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_cb, (void *)pol);
	if (opts->client_hello_cb)
		SSL_CTX_set_client_hello_cb(ctx, opts->client_hello_cb, opts->client_hello_arg);
	return ctx;
fail:
	snprintf(errbuf, errlen, "TLS context: %s: %s", what, pem_ssl_reason(reason, sizeof reason));
	SSL_CTX_free(ctx);
	return NULL;
}
