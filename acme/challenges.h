/*
 * challenges.h - the answers portier gives the ACME CA's validators: http-01
 * key authorizations (RFC 8555 section 8.3) by token, and tls-alpn-01
 * certificates (RFC 8737) by host. The main thread's ACME client writes the
 * table while orders are in flight; every worker reads it. All functions are
 * thread-safe. The table holds at most CHALLENGES_MAX entries of both kinds
 * together: a put beyond that fails.
 */
#pragma once

#include <stddef.h>

#include "acme/cert.h"

#define CHALLENGES_MAX 4096
#define CHALLENGES_TOKEN_MAX 128   /* http-01 token, base64url characters */
#define CHALLENGES_KEYAUTH_MAX 512 /* key authorization, bytes */

struct challenges;

/* challenges_new: an empty table; NULL when out of memory. */
struct challenges *challenges_new(void);
/* challenges_free: NULL-safe. Certificates handed out by challenges_get_alpn
 * stay valid until their holders release them. */
void challenges_free(struct challenges *ch);

/* http-01 (RFC 8555 8.3): token -> key authorization. put replaces an
 * existing token. -1 on bad input (token not base64url [A-Za-z0-9_-],
 * 1..128 chars; keyauth empty or over 512 bytes), out of memory, or a full
 * table; the table is then unchanged. */
int challenges_put_http01(struct challenges *ch, const char *token, const char *keyauth);
/* challenges_del_http01: forget token; nothing happens when it is unknown. */
void challenges_del_http01(struct challenges *ch, const char *token);
/* challenges_get_http01: copy the key authorization for token[0..token_len)
 * into out (not NUL-terminated); returns its length, or -1 when the token is
 * malformed, unknown, or its answer does not fit in outcap. ch may be NULL
 * (no tokens). Called by workers. */
int challenges_get_http01(struct challenges *ch, const char *token, size_t token_len, char *out,
			  size_t outcap);

/* tls-alpn-01 (RFC 8737): host -> a self-signed certificate for exactly that
 * host (one dNSName SAN) carrying the critical id-pe-acmeIdentifier
 * extension (1.3.6.1.5.5.7.1.31) whose value is the DER OCTET STRING of
 * SHA-256(keyauth). A fresh P-256 key per certificate. put replaces. host is
 * a DNS name (compared without regard to case; no wildcard, no IP literal).
 * -1 with a message in errbuf on failure; the table is then unchanged. */
int challenges_put_alpn(struct challenges *ch, const char *host, const char *keyauth,
			char *errbuf, size_t errlen);
/* challenges_del_alpn: forget host's certificate; nothing when unknown. */
void challenges_del_alpn(struct challenges *ch, const char *host);
/* challenges_get_alpn: a new reference (cert_release when done) to host's
 * challenge certificate, or NULL. ch may be NULL (no certificates). */
struct cert *challenges_get_alpn(struct challenges *ch, const char *host);

/* challenges_count: entries of both kinds, for status and tests. */
size_t challenges_count(struct challenges *ch);
