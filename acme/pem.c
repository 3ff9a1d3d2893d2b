/*
 * pem.c - PEM encoding and decoding through memory BIOs, so that file access
 * (fileio.c) stays separate and key text can be wiped after use.
 */
#include "acme/pem.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

const char *pem_ssl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	if (r)
		snprintf(buf, len, "%s", r);
	else if (e)
		ERR_error_string_n(e, buf, len);
	else
		snprintf(buf, len, "unknown error");
	ERR_clear_error();
	return buf;
}

/* pem_bio_take: copy a memory BIO's contents into a NUL-terminated buffer,
 * wiping the BIO's copy (it may hold a key). */
static char *pem_bio_take(BIO *bio, size_t *len)
{
	char *data = NULL;
	long n = BIO_get_mem_data(bio, &data);
	if (n <= 0 || !data)
		return NULL;
	char *out = malloc((size_t)n + 1);
	if (out) {
		memcpy(out, data, (size_t)n);
		out[n] = '\0';
		*len = (size_t)n;
	}
	OPENSSL_cleanse(data, (size_t)n);
	return out;
}

char *pem_encode_certs(X509 *leaf, STACK_OF(X509) *chain, size_t *len, char *errbuf,
		       size_t errlen)
{
	char reason[160];
	char *out = NULL;
	BIO *bio = BIO_new(BIO_s_mem());
	if (!bio || !PEM_write_bio_X509(bio, leaf))
		goto fail;
	for (int i = 0; chain && i < sk_X509_num(chain); i++)
		if (!PEM_write_bio_X509(bio, sk_X509_value(chain, i)))
			goto fail;
	out = pem_bio_take(bio, len);
	if (!out)
		goto fail;
	BIO_free(bio);
	return out;
fail:
	snprintf(errbuf, errlen, "cannot encode certificate: %s",
		 pem_ssl_reason(reason, sizeof reason));
	BIO_free(bio);
	return NULL;
}

char *pem_encode_key(EVP_PKEY *key, size_t *len, char *errbuf, size_t errlen)
{
	char reason[160];
	char *out = NULL;
	BIO *bio = BIO_new(BIO_s_mem());
	if (!bio || !PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL))
		goto fail;
	out = pem_bio_take(bio, len);
	if (!out)
		goto fail;
	BIO_free(bio);
	return out;
fail:
	snprintf(errbuf, errlen, "cannot encode key: %s", pem_ssl_reason(reason, sizeof reason));
	BIO_free(bio);
	return NULL;
}

void pem_free_secret(char *buf, size_t len)
{
	if (!buf)
		return;
	OPENSSL_cleanse(buf, len);
	free(buf);
}

/* pem_at_end: whether the last read failed only because no PEM block was
 * left, which is how a chain ends. */
static int pem_at_end(void)
{
	unsigned long e = ERR_peek_last_error();
	return ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
}

int pem_decode_certs(const char *buf, size_t len, X509 **leaf, STACK_OF(X509) **chain,
		     char *errbuf, size_t errlen)
{
	char reason[160];
	X509 *first = NULL, *x;
	STACK_OF(X509) *rest = NULL;
	BIO *bio = NULL;
	if (len > INT_MAX) {
		snprintf(errbuf, errlen, "too large");
		return -1;
	}
	ERR_clear_error();
	bio = BIO_new_mem_buf(buf, (int)len);
	rest = sk_X509_new_null();
	if (!bio || !rest)
		goto fail;
	first = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (!first) {
		if (pem_at_end()) {
			ERR_clear_error();
			snprintf(errbuf, errlen, "no PEM certificate found");
			goto out;
		}
		goto fail;
	}
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (!sk_X509_push(rest, x)) {
			X509_free(x);
			goto fail;
		}
	}
	if (!pem_at_end())
		goto fail;
	ERR_clear_error();
	BIO_free(bio);
	*leaf = first;
	*chain = rest;
	return 0;
fail:
	snprintf(errbuf, errlen, "%s", pem_ssl_reason(reason, sizeof reason));
out:
	X509_free(first);
	sk_X509_pop_free(rest, X509_free);
	BIO_free(bio);
	return -1;
}

/* pem_no_password: refuses encrypted keys instead of OpenSSL's default of
 * prompting on the controlling terminal, which would hang a daemon. */
static int pem_no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf, (void)size, (void)rwflag, (void)u;
	return -1;
}

EVP_PKEY *pem_decode_key(const char *buf, size_t len, char *errbuf, size_t errlen)
{
	char reason[160];
	EVP_PKEY *key = NULL;
	if (len > INT_MAX) {
		snprintf(errbuf, errlen, "too large");
		return NULL;
	}
	ERR_clear_error();
	BIO *bio = BIO_new_mem_buf(buf, (int)len);
	if (bio)
		key = PEM_read_bio_PrivateKey(bio, NULL, pem_no_password, NULL);
	BIO_free(bio);
	if (key) {
		ERR_clear_error();
		return key;
	}
	if (memmem(buf, len, "ENCRYPTED", 9)) {
		ERR_clear_error();
		snprintf(errbuf, errlen, "encrypted keys are not supported");
	} else {
		snprintf(errbuf, errlen, "%s", pem_ssl_reason(reason, sizeof reason));
	}
	return NULL;
}
