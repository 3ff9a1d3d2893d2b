/*
 * jws.h - the JOSE pieces of the ACME client (RFC 8555 section 6.2, RFC 7515,
 * RFC 7638): the account key as a JWK and its thumbprint, key authorizations,
 * ES256 requests in the flattened JSON serialization, and the HS256 external
 * account binding. Pure: no I/O, no logging; the private key never leaves
 * the EVP_PKEY. Account keys are ECDSA P-256; other keys are refused.
 */
#pragma once

#include <stddef.h>

#include <jansson.h>
#include <openssl/evp.h>

/* base64url of a SHA-256 digest: 43 characters, plus the NUL. */
#define JWS_THUMBPRINT_LEN 43
#define JWS_THUMBPRINT_SIZE (JWS_THUMBPRINT_LEN + 1)

/* jws_jwk: the public half of key as a new JWK object
 * {"crv":"P-256","kty":"EC","x":..,"y":..}. NULL when key is not a P-256
 * key or out of memory. The caller owns the reference. */
json_t *jws_jwk(EVP_PKEY *key);

/* jws_thumbprint: the RFC 7638 thumbprint of key's JWK (base64url of SHA-256
 * over the canonical JSON) into out. 0, or -1 (out untouched) when key is not
 * a P-256 key or OpenSSL fails. */
int jws_thumbprint(EVP_PKEY *key, char out[JWS_THUMBPRINT_SIZE]);

/* jws_key_authorization: token "." thumbprint (RFC 8555 section 8.1), a new
 * string the caller frees. NULL when the token is empty or not base64url
 * (it is echoed in an http-01 response), or on the failures above. */
char *jws_key_authorization(const char *token, EVP_PKEY *key);

/* jws_sign: an ES256 request body {"protected":..,"payload":..,"signature":..}
 * as a new compact JSON string the caller frees. The protected header holds
 * alg, nonce, url and either kid (the account URL) or, when kid is NULL, the
 * jwk (newAccount, revokeCert by certificate key). payload_json is the JSON
 * text of the payload, sent as is; NULL means POST-as-GET (empty payload).
 * NULL when an argument is missing or empty, key is not P-256, or OpenSSL
 * fails. */
char *jws_sign(EVP_PKEY *key, const char *nonce, const char *url, const char *kid,
	       const char *payload_json);

/* jws_sha256: SHA-256 of data into out (the tls-alpn-01 acmeIdentifier is
 * the digest of the key authorization, RFC 8737 section 3). 0 or -1. */
int jws_sha256(const void *data, size_t len, unsigned char out[32]);

/* jws_eab: the externalAccountBinding object for a newAccount payload
 * (RFC 8555 section 7.3.4): an HS256 flattened JWS with protected header
 * {"alg":"HS256","kid":eab_kid,"url":url}, payload the account key's JWK,
 * and the MAC key given base64url-encoded as the CA issued it. A new object
 * the caller owns; NULL with a message naming what is wrong on failure. The
 * decoded MAC key is wiped before return. */
json_t *jws_eab(EVP_PKEY *account_key, const char *eab_kid, const char *eab_hmac_key_b64,
		const char *url, char *errbuf, size_t errlen);
