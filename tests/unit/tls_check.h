/*
 * tls_check.h - what the tests of portier's TLS transport share: a P-256
 * key with a self-signed certificate, made in process.
 */
#pragma once

#include <stdbool.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* self_signed: a P-256 key and a self-signed certificate for cn. */
static inline X509 *self_signed(EVP_PKEY **key, const char *cn)
{
	X509 *x = NULL;
	*key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!*key)
		return NULL;
	x = X509_new();
	X509_NAME *name = X509_NAME_new();
	bool ok = x && name && X509_set_version(x, X509_VERSION_3) &&
		  ASN1_INTEGER_set(X509_get_serialNumber(x), 1) &&
		  X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
		  X509_gmtime_adj(X509_getm_notAfter(x), 86400) &&
		  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn,
					     -1, -1, 0) &&
		  X509_set_subject_name(x, name) && X509_set_issuer_name(x, name) &&
		  X509_set_pubkey(x, *key) && X509_sign(x, *key, EVP_sha256()) > 0;
	X509_NAME_free(name);
	if (!ok) {
		X509_free(x);
		x = NULL;
	}
	return x;
}
