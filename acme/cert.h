/*
 * cert.h - a certificate ready to serve: leaf, key and chain, refcounted so
 * a cert index snapshot and live handshakes can share it.
 */
#pragma once

#include <stdatomic.h>
#include <time.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "config/model.h"

struct cert {
	_Atomic unsigned refs;
	X509 *leaf;
	EVP_PKEY *key;
	STACK_OF(X509) *chain; /* intermediates, may be empty */
	time_t not_before, not_after;
	enum cfg_tls_mode source; /* CFG_TLS_INTERNAL, CFG_TLS_FILES or CFG_TLS_ACME */
	char *issuer;             /* issuer's CN, for status output */
	char host[];
};

/* cert_new: takes ownership of leaf, key and chain (chain may be NULL). */
struct cert *cert_new(const char *host, X509 *leaf, EVP_PKEY *key, STACK_OF(X509) *chain,
		      enum cfg_tls_mode source);
struct cert *cert_retain(struct cert *c);
/* cert_release: NULL-safe; the last reference frees. */
void cert_release(struct cert *c);

/* cert_load_pem: read a PEM chain (leaf first) and a PEM key; checks that the
 * key matches the leaf. Returns NULL with a message naming the file. */
struct cert *cert_load_pem(const char *host, const char *cert_path, const char *key_path,
			   enum cfg_tls_mode source, char *errbuf, size_t errlen);

/* cert_covers: whether the leaf's SANs cover host (wildcards one label). */
int cert_covers(const struct cert *c, const char *host);
