/*
 * san.h - the subjectAltName of a certificate or request for one name,
 * built as ASN.1 directly so that a host name never passes through
 * OpenSSL's config-string parser.
 */
#pragma once

#include <openssl/x509v3.h>

/* san_names: a GENERAL_NAMES holding name as a dNSName, or as an iPAddress
 * when kind is GEN_IPADD. NULL on failure; caller frees with GENERAL_NAMES_free. */
GENERAL_NAMES *san_names(const char *name, int kind);

/* san_add: add the subjectAltName for name (as san_names) to x, critical or
 * not. 1 on success, 0 on failure. */
int san_add(X509 *x, const char *name, int kind, int critical);
