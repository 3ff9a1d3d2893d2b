/*
 * challenges.c - the table of challenge answers shared by the main thread
 * (which writes it) and the workers (which serve from it), and the RFC 8737
 * tls-alpn-01 certificate. Entries are few (one per authorization in
 * flight), so they sit in one array searched linearly under a mutex; the
 * expensive part, making a key and a certificate, happens outside the lock.
 */
#include "acme/challenges.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "acme/b64url.h"
#include "acme/jws.h"
#include "acme/pem.h"
#include "acme/san.h"
#include "config/hostname.h"

/* RFC 8737 section 3: id-pe-acmeIdentifier. OpenSSL 3.0 has no NID for it. */
#define CHAL_ACME_ID_OID "1.3.6.1.5.5.7.1.31"
/* The certificate lives only while its authorization is pending; a week
 * covers any validation, and the hour back covers a validator's slow clock. */
#define CHAL_CERT_DAYS 7
#define CHAL_BACKDATE_SECS 3600
#define CHAL_HOST_MAX 253

enum chal_kind { CHAL_HTTP01, CHAL_ALPN };

struct chal_entry {
	enum chal_kind kind;
	char name[CHAL_HOST_MAX + 1]; /* the token, or the host (lowercase) */
	char *keyauth;                 /* http-01 */
	size_t keyauth_len;
	struct cert *cert;             /* tls-alpn-01 */
};

struct challenges {
	pthread_mutex_t lock;
	struct chal_entry *v;
	size_t n, cap;
};

struct challenges *challenges_new(void)
{
	struct challenges *ch = calloc(1, sizeof *ch);
	if (ch && pthread_mutex_init(&ch->lock, NULL) != 0) {
		free(ch);
		return NULL;
	}
	return ch;
}

static void chal_entry_clear(struct chal_entry *e)
{
	free(e->keyauth);
	e->keyauth = NULL;
	cert_release(e->cert);
	e->cert = NULL;
}

void challenges_free(struct challenges *ch)
{
	if (!ch)
		return;
	for (size_t i = 0; i < ch->n; i++)
		chal_entry_clear(&ch->v[i]);
	free(ch->v);
	pthread_mutex_destroy(&ch->lock);
	free(ch);
}

/* chal_find: the entry of kind for name[0..len), or NULL; lock held. Hosts
 * are stored lowercase and matched without regard to case. */
static struct chal_entry *chal_find(struct challenges *ch, enum chal_kind kind, const char *name,
				    size_t len)
{
	for (size_t i = 0; i < ch->n; i++) {
		struct chal_entry *e = &ch->v[i];
		if (e->kind != kind || strlen(e->name) != len)
			continue;
		if (kind == CHAL_HTTP01 ? !memcmp(e->name, name, len)
					: !strncasecmp(e->name, name, len))
			return e;
	}
	return NULL;
}

/* chal_store: put e (its values owned by the table from now on) in place of
 * the entry with the same kind and name, or append it. The replaced values
 * go back in *e for the caller to clear outside the lock. -1 when the table
 * is full or cannot grow; *e then still holds the new values. */
static int chal_store(struct challenges *ch, struct chal_entry *e)
{
	int rc = 0;
	pthread_mutex_lock(&ch->lock);
	struct chal_entry *old = chal_find(ch, e->kind, e->name, strlen(e->name));
	if (old) {
		struct chal_entry tmp = *old;
		*old = *e;
		*e = tmp;
	} else if (ch->n == CHALLENGES_MAX) {
		rc = -1;
	} else if (ch->n == ch->cap) {
		size_t cap = ch->cap ? ch->cap * 2 : 8;
		if (cap > CHALLENGES_MAX)
			cap = CHALLENGES_MAX;
		struct chal_entry *v = realloc(ch->v, cap * sizeof *v);
		if (v) {
			ch->v = v;
			ch->cap = cap;
		} else {
			rc = -1;
		}
	}
	if (!old && rc == 0) {
		ch->v[ch->n++] = *e;
		e->keyauth = NULL;
		e->cert = NULL;
	}
	pthread_mutex_unlock(&ch->lock);
	return rc;
}

/* chal_remove: drop the entry of kind for name (the last entry takes its
 * slot); its values are cleared after the lock is released. */
static void chal_remove(struct challenges *ch, enum chal_kind kind, const char *name)
{
	struct chal_entry gone = {0};
	if (!ch || !name)
		return;
	pthread_mutex_lock(&ch->lock);
	struct chal_entry *e = chal_find(ch, kind, name, strlen(name));
	if (e) {
		gone = *e;
		*e = ch->v[--ch->n];
	}
	pthread_mutex_unlock(&ch->lock);
	chal_entry_clear(&gone);
}

/* chal_token_ok: 1..128 base64url characters, nothing else. */
static bool chal_token_ok(const char *token, size_t len)
{
	return token && len > 0 && len <= CHALLENGES_TOKEN_MAX && b64url_is_alphabet(token, len);
}

/* ---- http-01 ----------------------------------------------------------- */

int challenges_put_http01(struct challenges *ch, const char *token, const char *keyauth)
{
	size_t tlen = token ? strlen(token) : 0;
	size_t klen = keyauth ? strlen(keyauth) : 0;
	if (!ch || !chal_token_ok(token, tlen) || klen == 0 || klen > CHALLENGES_KEYAUTH_MAX)
		return -1;
	struct chal_entry e = {.kind = CHAL_HTTP01, .keyauth = strdup(keyauth), .keyauth_len = klen};
	if (!e.keyauth)
		return -1;
	memcpy(e.name, token, tlen + 1);
	int rc = chal_store(ch, &e);
	chal_entry_clear(&e);
	return rc;
}

void challenges_del_http01(struct challenges *ch, const char *token)
{
	chal_remove(ch, CHAL_HTTP01, token);
}

int challenges_get_http01(struct challenges *ch, const char *token, size_t token_len, char *out,
			  size_t outcap)
{
	if (!ch || !chal_token_ok(token, token_len))
		return -1;
	int rc = -1;
	pthread_mutex_lock(&ch->lock);
	const struct chal_entry *e = chal_find(ch, CHAL_HTTP01, token, token_len);
	if (e && e->keyauth_len <= outcap) {
		memcpy(out, e->keyauth, e->keyauth_len);
		rc = (int)e->keyauth_len;
	}
	pthread_mutex_unlock(&ch->lock);
	return rc;
}

/* ---- tls-alpn-01 ------------------------------------------------------- */

/* chal_host: host lowercased into out when it is a DNS name a tls-alpn-01
 * certificate can name (RFC 8737 covers dNSName identifiers; IP addresses
 * and wildcards are validated otherwise). */
static bool chal_host(const char *host, char out[CHAL_HOST_MAX + 1])
{
	unsigned char ip[4];
	size_t n = host ? strlen(host) : 0;
	if (n == 0 || n > CHAL_HOST_MAX)
		return false;
	for (size_t i = 0; i <= n; i++)
		out[i] = host[i] >= 'A' && host[i] <= 'Z' ? (char)(host[i] - 'A' + 'a') : host[i];
	return host_is_valid_name(out, n, false) && inet_pton(AF_INET, out, ip) != 1;
}

/* chal_serial: a random positive 64-bit serial; the CA never sees these
 * certificates, but clients that cache by issuer and serial should not mix
 * two of them up. */
static bool chal_serial(X509 *x)
{
	uint64_t r;
	if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
		return false;
	r = (r >> 1) | 1;
	return ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), r) == 1;
}

/* chal_add_acme_id: the critical id-pe-acmeIdentifier extension, whose
 * extnValue is the DER of Authorization ::= OCTET STRING (SIZE (32)):
 * 04 20 and SHA-256 of the key authorization (RFC 8737 section 3). */
static bool chal_add_acme_id(X509 *x, const char *keyauth)
{
	unsigned char der[2 + 32] = {V_ASN1_OCTET_STRING, 32};
	bool ok = false;
	ASN1_OBJECT *oid = OBJ_txt2obj(CHAL_ACME_ID_OID, 1);
	ASN1_OCTET_STRING *value = ASN1_OCTET_STRING_new();
	X509_EXTENSION *ext = NULL;
	if (oid && value && jws_sha256(keyauth, strlen(keyauth), der + 2) == 0 &&
	    ASN1_OCTET_STRING_set(value, der, sizeof der) &&
	    (ext = X509_EXTENSION_create_by_OBJ(NULL, oid, 1, value)))
		ok = X509_add_ext(x, ext, -1) == 1;
	X509_EXTENSION_free(ext);
	ASN1_OCTET_STRING_free(value);
	ASN1_OBJECT_free(oid);
	return ok;
}

/* chal_build: the self-signed challenge certificate for host and key. The
 * subject (and so the issuer) is a fixed name: validators read the SAN
 * only, and RFC 5280 wants a non-empty issuer. */
static X509 *chal_build(const char *host, const char *keyauth, EVP_PKEY *key)
{
	X509 *x = X509_new();
	X509_NAME *name = x ? X509_get_subject_name(x) : NULL;
	bool ok = name && X509_set_version(x, X509_VERSION_3) && chal_serial(x) &&
		  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
					     (const unsigned char *)"ACME tls-alpn-01 challenge",
					     -1, -1, 0) &&
		  X509_set_issuer_name(x, name) &&
		  X509_gmtime_adj(X509_getm_notBefore(x), -CHAL_BACKDATE_SECS) &&
		  X509_time_adj_ex(X509_getm_notAfter(x), CHAL_CERT_DAYS, 0, NULL) &&
		  X509_set_pubkey(x, key) && san_add(x, host, GEN_DNS, 0) && chal_add_acme_id(x, keyauth) &&
		  X509_sign(x, key, EVP_sha256()) > 0;
	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

int challenges_put_alpn(struct challenges *ch, const char *host, const char *keyauth,
			char *errbuf, size_t errlen)
{
	char name[CHAL_HOST_MAX + 1], reason[160];
	size_t klen = keyauth ? strlen(keyauth) : 0;
	if (!ch || !chal_host(host, name)) {
		snprintf(errbuf, errlen, "tls-alpn-01: \"%.64s\" is not a DNS name",
			 host ? host : "");
		return -1;
	}
	if (klen == 0 || klen > CHALLENGES_KEYAUTH_MAX) {
		snprintf(errbuf, errlen, "tls-alpn-01 for %s: key authorization is %s", name,
			 klen ? "over 512 bytes" : "empty");
		return -1;
	}
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = key ? chal_build(name, keyauth, key) : NULL;
	if (!x) {
		snprintf(errbuf, errlen, "tls-alpn-01 for %s: cannot make the certificate: %s",
			 name, pem_ssl_reason(reason, sizeof reason));
		EVP_PKEY_free(key);
		return -1;
	}
	struct chal_entry e = {.kind = CHAL_ALPN, .cert = cert_new(name, x, key, NULL,
								   CFG_TLS_ACME)};
	memcpy(e.name, name, sizeof name);
	int rc = e.cert ? chal_store(ch, &e) : -1;
	if (rc < 0)
		snprintf(errbuf, errlen, "tls-alpn-01 for %s: %s", name,
			 e.cert ? "no room for another challenge" : "out of memory");
	chal_entry_clear(&e);
	return rc;
}

void challenges_del_alpn(struct challenges *ch, const char *host)
{
	chal_remove(ch, CHAL_ALPN, host);
}

struct cert *challenges_get_alpn(struct challenges *ch, const char *host)
{
	if (!ch || !host)
		return NULL;
	pthread_mutex_lock(&ch->lock);
	const struct chal_entry *e = chal_find(ch, CHAL_ALPN, host, strlen(host));
	struct cert *c = e ? cert_retain(e->cert) : NULL;
	pthread_mutex_unlock(&ch->lock);
	return c;
}

size_t challenges_count(struct challenges *ch)
{
	if (!ch)
		return 0;
	pthread_mutex_lock(&ch->lock);
	size_t n = ch->n;
	pthread_mutex_unlock(&ch->lock);
	return n;
}
