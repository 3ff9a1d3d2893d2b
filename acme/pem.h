/*
 * pem.h - certificates and private keys to and from PEM text in memory, and
 * OpenSSL's error queue turned into one line for a message.
 */
#pragma once

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* pem_encode_certs: leaf then chain (may be NULL) as PEM. Caller frees.
 * NULL with a message on failure. */
char *pem_encode_certs(X509 *leaf, STACK_OF(X509) *chain, size_t *len, char *errbuf,
		       size_t errlen);

/* pem_encode_key: key as unencrypted PKCS#8 PEM. The caller releases it with
 * pem_free_secret, which wipes it first. NULL with a message on failure. */
char *pem_encode_key(EVP_PKEY *key, size_t *len, char *errbuf, size_t errlen);

/* pem_free_secret: wipe and free a buffer that held key material (NULL-safe). */
void pem_free_secret(char *buf, size_t len);

/* pem_decode_certs: the first certificate of buf in *leaf, the others in a new
 * *chain (possibly empty). -1 with OpenSSL's reason when none or malformed;
 * the outputs are untouched on failure. */
int pem_decode_certs(const char *buf, size_t len, X509 **leaf, STACK_OF(X509) **chain,
		     char *errbuf, size_t errlen);

/* pem_decode_key: the private key in buf (encrypted keys are refused rather
 * than prompting on the terminal). NULL with OpenSSL's reason on failure. */
EVP_PKEY *pem_decode_key(const char *buf, size_t len, char *errbuf, size_t errlen);

/* pem_ssl_reason: OpenSSL's last error as text, for messages; clears the
 * thread's error queue so later SSL calls on this thread start clean. */
const char *pem_ssl_reason(char *buf, size_t len);
