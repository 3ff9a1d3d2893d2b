/*
 * tls_ctx.h - the one place TLS policy is decided: protocol versions, cipher
 * suites, curves, ALPN, session tickets. One SSL_CTX serves every worker so
 * ticket keys are shared; the certificate is chosen per connection in the
 * ClientHello callback (tls_conn.c).
 */
#pragma once

#include <stdbool.h>

#include <openssl/ssl.h>

/* ALPN protocols portier can speak, in server preference order. A front
 * registers by enabling its entry; tls_alpn_selected reports the pick. */
enum tls_alpn {
	TLS_ALPN_NONE = 0,
	TLS_ALPN_HTTP11,
	TLS_ALPN_H2,
	TLS_ALPN_ACME_TLS1,
};

struct tls_ctx_opts {
	int min_version;  /* TLS1_2_VERSION or TLS1_3_VERSION */
	bool enable_h2;   /* offer "h2" in ALPN */
	bool enable_acme; /* accept "acme-tls/1" */
	/* client_hello_cb: SSL_CTX_set_client_hello_cb's callback, chooses the certificate. */
	SSL_client_hello_cb_fn client_hello_cb;
	void *client_hello_arg;
};

/* tls_ctx_new: a server SSL_CTX: TLS 1.2/1.3 only, ECDHE with AEAD suites,
 * X25519/P-256/P-384, no compression or renegotiation, ALPN from opts,
 * stateless session tickets with keys from the rotating ticket key set. */
SSL_CTX *tls_ctx_new(const struct tls_ctx_opts *opts, char *errbuf, size_t errlen);

/* tls_alpn_selected: what ALPN picked on ssl (TLS_ALPN_NONE if nothing). */
enum tls_alpn tls_alpn_selected(const SSL *ssl);

/* tls_ticket_keys_rotate: make a new current ticket-encryption key, keeping
 * the previous one for decryption only. Called by the main thread on a timer
 * (every 12 hours); safe while workers handshake. */
void tls_ticket_keys_rotate(void);

/* tls_ctx_free_globals: wipe and free the ticket keys at exit (after every
 * SSL_CTX is gone), so leak checkers see a clean process. A later tls_ctx_new
 * starts a new key set. */
void tls_ctx_free_globals(void);

/* tls_client_hello_sni: the server_name from the ClientHello being processed
 * (inside the client hello callback), copied lowercased without trailing dot
 * into out. Returns its length, 0 when absent, -1 when malformed. */
int tls_client_hello_sni(SSL *ssl, char *out, size_t outcap);

/* tls_alpn_only_acme: whether ext, the body of a ClientHello's ALPN
 * extension (u16 list length, then u8-length-prefixed names), offers
 * "acme-tls/1" and nothing else, as RFC 8737 section 4 has validators do.
 * Any bytes may be passed; malformed lists give false. */
bool tls_alpn_only_acme(const unsigned char *ext, size_t len);

/* tls_client_hello_acme_only: tls_alpn_only_acme for the ClientHello being
 * processed (inside the client hello callback); false without ALPN. */
bool tls_client_hello_acme_only(SSL *ssl);
