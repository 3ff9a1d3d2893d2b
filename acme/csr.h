/*
 * csr.h - the PKCS#10 certificate request an ACME order is finalized with
 * (RFC 8555 section 7.4): one host, its fresh key, SHA-256 signature.
 */
#pragma once

#include <stddef.h>

#include <openssl/evp.h>

/* csr_new_key: a fresh ECDSA P-256 key for a certificate (never the account
 * key). NULL on failure. The caller frees it with EVP_PKEY_free. */
EVP_PKEY *csr_new_key(void);

/* csr_new: a CSR for host signed with key. host is a DNS name (a leading
 * "*." allowed; upper case is lowered) or an IPv4/IPv6 literal. The subject
 * is CN=host for DNS names of at most 64 characters, else empty (IP literals
 * never go in a CN); the subjectAltName holds a dNSName or an iPAddress and
 * is critical when the subject is empty (RFC 5280 4.2.1.6).
 * On success returns 0, *der (malloc'd) and *der_len the DER encoding and,
 * when b64 is not NULL, *b64 a malloc'd base64url string of it (the
 * finalize "csr" field). On failure -1 with a message; outputs untouched. */
int csr_new(const char *host, EVP_PKEY *key, unsigned char **der, size_t *der_len, char **b64,
	    char *errbuf, size_t errlen);
