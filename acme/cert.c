/*
 * cert.c - the refcounted certificate object: construction from OpenSSL
 * objects or PEM files, and host coverage checks.
 */
#include "acme/cert.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "config/fileio.h"
#include "acme/pem.h"

/* Certificate chains are a few KB; the cap keeps a wrong path (a log file,
 * a disk image) from being read into memory. */
#define CERT_FILE_CAP (1024 * 1024)

/* cert_time: an ASN1_TIME as a time_t, 0 if unreadable. */
static time_t cert_time(const ASN1_TIME *t)
{
	struct tm tm;
	if (!t || !ASN1_TIME_to_tm(t, &tm))
		return 0;
	return timegm(&tm);
}

/* cert_name_text: the CN of name, else its RFC 2253 form; "" if neither. */
static char *cert_name_text(const X509_NAME *name)
{
	int idx = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
	if (idx >= 0) {
		const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
		unsigned char *utf8 = NULL;
		int n = ASN1_STRING_to_UTF8(&utf8, s);
		if (n >= 0) {
			char *out = strndup((const char *)utf8, (size_t)n);
			OPENSSL_free(utf8);
			return out;
		}
	}
	char *out = NULL;
	BIO *bio = name ? BIO_new(BIO_s_mem()) : NULL;
	if (bio && X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0) {
		char *data = NULL;
		long n = BIO_get_mem_data(bio, &data);
		out = strndup(n > 0 ? data : "", n > 0 ? (size_t)n : 0);
	}
	BIO_free(bio);
	ERR_clear_error();
	return out ? out : strdup("");
}

struct cert *cert_new(const char *host, X509 *leaf, EVP_PKEY *key, STACK_OF(X509) *chain,
		      enum cfg_tls_mode source)
{
	size_t hlen = strlen(host);
	struct cert *c = calloc(1, sizeof *c + hlen + 1);
	if (!c)
		goto fail;
	if (!chain && !(chain = sk_X509_new_null()))
		goto fail;
	c->issuer = cert_name_text(X509_get_issuer_name(leaf));
	if (!c->issuer)
		goto fail;
	atomic_init(&c->refs, 1);
	c->leaf = leaf;
	c->key = key;
	c->chain = chain;
	c->not_before = cert_time(X509_get0_notBefore(leaf));
	c->not_after = cert_time(X509_get0_notAfter(leaf));
	c->source = source;
	memcpy(c->host, host, hlen + 1);
	return c;
fail:
	/* Ownership was handed over even on failure: the caller never frees. */
	free(c);
	X509_free(leaf);
	EVP_PKEY_free(key);
	sk_X509_pop_free(chain, X509_free);
	return NULL;
}

struct cert *cert_retain(struct cert *c)
{
	if (c)
		atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	return c;
}

void cert_release(struct cert *c)
{
	if (!c || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	X509_free(c->leaf);
	EVP_PKEY_free(c->key);
	sk_X509_pop_free(c->chain, X509_free);
	free(c->issuer);
	free(c);
}

struct cert *cert_load_pem(const char *host, const char *cert_path, const char *key_path,
			   enum cfg_tls_mode source, char *errbuf, size_t errlen)
{
	char why[256], reason[160];
	size_t clen = 0, klen = 0;
	char *ctext = NULL, *ktext = NULL;
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *key = NULL;
	struct cert *c = NULL;

	ctext = fileio_read(cert_path, CERT_FILE_CAP, &clen, errbuf, errlen);
	if (!ctext)
		goto out;
	if (pem_decode_certs(ctext, clen, &leaf, &chain, why, sizeof why) < 0) {
		snprintf(errbuf, errlen, "%s: %s", cert_path, why);
		goto out;
	}
	ktext = fileio_read(key_path, CERT_FILE_CAP, &klen, errbuf, errlen);
	if (!ktext)
		goto out;
	key = pem_decode_key(ktext, klen, why, sizeof why);
	if (!key) {
		snprintf(errbuf, errlen, "%s: %s", key_path, why);
		goto out;
	}
	if (X509_check_private_key(leaf, key) != 1) {
		snprintf(errbuf, errlen, "%s does not match the certificate in %s: %s", key_path,
			 cert_path, pem_ssl_reason(reason, sizeof reason));
		goto out;
	}
	c = cert_new(host, leaf, key, chain, source);
	leaf = NULL, key = NULL, chain = NULL;
	if (!c)
		snprintf(errbuf, errlen, "%s: out of memory", cert_path);
out:
	X509_free(leaf);
	EVP_PKEY_free(key);
	sk_X509_pop_free(chain, X509_free);
	free(ctext);
	pem_free_secret(ktext, klen);
	return c;
}

/* cert_is_ip: whether host is an IPv4 or IPv6 literal (no brackets). */
static int cert_is_ip(const char *host)
{
	unsigned char buf[16];
	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* cert_has_dns_san: whether one dNSName SAN equals name exactly (ignoring
 * case); a wildcard host is covered only by the same wildcard. */
static int cert_has_dns_san(X509 *leaf, const char *name)
{
	int found = 0;
	GENERAL_NAMES *gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; gens && !found && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
		if (gn->type != GEN_DNS)
			continue;
		const ASN1_IA5STRING *s = gn->d.dNSName;
		size_t n = (size_t)ASN1_STRING_length(s);
		found = n == strlen(name) &&
			strncasecmp((const char *)ASN1_STRING_get0_data(s), name, n) == 0;
	}
	GENERAL_NAMES_free(gens);
	return found;
}

int cert_covers(const struct cert *c, const char *host)
{
	if (!c || !c->leaf || !host || !*host)
		return 0;
	if (cert_is_ip(host))
		return X509_check_ip_asc(c->leaf, host, 0) == 1;
	if (host[0] == '*' && host[1] == '.')
		return cert_has_dns_san(c->leaf, host);
	/* SANs only (the CN fallback is obsolete) and wildcards for a whole label. */
	unsigned flags = X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS;
	return X509_check_host(c->leaf, host, 0, flags, NULL) == 1;
}
