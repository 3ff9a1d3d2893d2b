/*
 * csr.c - PKCS#10 requests for ACME finalization. The subjectAltName is
 * built as ASN.1 directly so that no host name passes through OpenSSL's
 * config-string parser.
 */
#include "acme/csr.h"
#include "acme/san.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "acme/b64url.h"
#include "acme/pem.h"

/* RFC 5280: a CN is at most 64 characters; DNS names at most 253. */
#define CSR_CN_MAX 64
#define CSR_HOST_MAX 253
#define CSR_LABEL_MAX 63

EVP_PKEY *csr_new_key(void)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	if (!key)
		ERR_clear_error();
	return key;
}

/* csr_host_kind: host lowercased into out, and GEN_DNS for a DNS name
 * (LDH labels of 1..63, optional "*." first) or GEN_IPADD for an IP
 * literal; -1 for anything else. */
static int csr_host_kind(const char *host, char out[CSR_HOST_MAX + 1])
{
	unsigned char ip[16];
	size_t n = host ? strlen(host) : 0, label = 0;
	if (n == 0 || n > CSR_HOST_MAX)
		return -1;
	if (inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1) {
		memcpy(out, host, n + 1);
		return GEN_IPADD;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)host[i];
		if (ch >= 'A' && ch <= 'Z')
			ch = (unsigned char)(ch - 'A' + 'a');
		if (ch == '.') {
			if (label == 0 || out[i - 1] == '-')
				return -1;
			label = 0;
		} else if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
			   (ch == '-' && label > 0) || (ch == '*' && i == 0 && host[1] == '.')) {
			if (++label > CSR_LABEL_MAX)
				return -1;
		} else {
			return -1;
		}
		out[i] = (char)ch;
	}
	out[n] = '\0';
	return label == 0 || out[n - 1] == '-' ? -1 : GEN_DNS;
}

/* csr_echo: host as printable ASCII (others as '?'), cut to fit out, for
 * messages that operators read and logs keep. */
static const char *csr_echo(const char *host, char *out, size_t cap)
{
	size_t i = 0;
	for (; host && host[i] && i + 1 < cap; i++)
		out[i] = host[i] > 0x20 && host[i] < 0x7f ? host[i] : '?';
	out[i] = '\0';
	return out;
}

/* csr_san_ext: the subjectAltName extension for one name. */
static X509_EXTENSION *csr_san_ext(const char *name, int kind, int critical)
{
	GENERAL_NAMES *gens = san_names(name, kind);
	X509_EXTENSION *ext = gens ? X509V3_EXT_i2d(NID_subject_alt_name, critical, gens) : NULL;
	GENERAL_NAMES_free(gens);
	return ext;
}

/* csr_build: the signed request; NULL on any OpenSSL failure. */
static X509_REQ *csr_build(const char *name, int kind, EVP_PKEY *key)
{
	int with_cn = kind == GEN_DNS && strlen(name) <= CSR_CN_MAX;
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	X509_EXTENSION *san = csr_san_ext(name, kind, !with_cn);
	X509_REQ *req = X509_REQ_new();
	X509_NAME *subject = req ? X509_REQ_get_subject_name(req) : NULL;
	int ok = exts && san && subject && X509_REQ_set_version(req, X509_REQ_VERSION_1) &&
		 (!with_cn || X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
							 (const unsigned char *)name, -1, -1,
							 0)) &&
		 X509_REQ_set_pubkey(req, key) && sk_X509_EXTENSION_push(exts, san);
	if (ok)
		san = NULL; /* now owned by exts */
	ok = ok && X509_REQ_add_extensions(req, exts) && X509_REQ_sign(req, key, EVP_sha256()) > 0;
	X509_EXTENSION_free(san);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	if (!ok) {
		X509_REQ_free(req);
		return NULL;
	}
	return req;
}

int csr_new(const char *host, EVP_PKEY *key, unsigned char **der, size_t *der_len, char **b64,
	    char *errbuf, size_t errlen)
{
	char name[CSR_HOST_MAX + 1], reason[160], echo[CSR_CN_MAX + 1];
	unsigned char *buf = NULL;
	char *text = NULL;
	int kind = csr_host_kind(host, name);
	if (kind < 0) {
		snprintf(errbuf, errlen, "CSR: \"%s\" is not a host name or IP address",
			 csr_echo(host, echo, sizeof echo));
		return -1;
	}
	if (!key) {
		snprintf(errbuf, errlen, "CSR for %s: no key", name);
		return -1;
	}
	X509_REQ *req = csr_build(name, kind, key);
	int n = req ? i2d_X509_REQ(req, NULL) : -1;
	if (n <= 0) {
		snprintf(errbuf, errlen, "CSR for %s: %s", name,
			 pem_ssl_reason(reason, sizeof reason));
		X509_REQ_free(req);
		return -1;
	}
	unsigned char *p = buf = malloc((size_t)n);
	if (!buf || i2d_X509_REQ(req, &p) != n ||
	    (b64 && !(text = b64url_encode_alloc(buf, (size_t)n)))) {
		snprintf(errbuf, errlen, "CSR for %s: out of memory", name);
		ERR_clear_error();
		X509_REQ_free(req);
		free(buf);
		return -1;
	}
	X509_REQ_free(req);
	*der = buf;
	*der_len = (size_t)n;
	if (b64)
		*b64 = text;
	return 0;
}
