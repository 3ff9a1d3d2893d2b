/*
 * jws.c - JWK, thumbprint, ES256 and HS256 flattened JWS for ACME. The
 * protected header and payload are base64url'd once and joined with "." as
 * the signing input; the ES256 signature is OpenSSL's DER ECDSA-Sig-Value
 * rewritten as the fixed 64-byte R||S that JWA (RFC 7518 3.4) requires.
 */
#include "acme/jws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>

#include "acme/b64url.h"

/* P-256 field elements and signature halves are 32 bytes. */
#define JWS_P256_LEN 32
#define JWS_COORD_SIZE 44 /* base64url of 32 bytes and a NUL */

/* A flattened JWS being built: the two encoded parts and the signing input. */
struct jws_parts {
	char *protected_b64;
	char *payload_b64;
	char *input; /* protected_b64 "." payload_b64 */
	size_t input_len;
};

/* jws_is_p256: whether key is an EC key on NIST P-256. */
static int jws_is_p256(EVP_PKEY *key)
{
	char group[64];
	size_t n = 0;
	if (!key || !EVP_PKEY_is_a(key, "EC") ||
	    !EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
					    &n)) {
		ERR_clear_error();
		return 0;
	}
	return OBJ_txt2nid(group) == NID_X9_62_prime256v1 || !strcmp(group, "P-256");
}

/* jws_encode_bn: bn left-padded to 32 bytes, base64url'd into out. */
static int jws_encode_bn(const BIGNUM *bn, char out[JWS_COORD_SIZE])
{
	unsigned char buf[JWS_P256_LEN];
	return BN_bn2binpad(bn, buf, sizeof buf) == JWS_P256_LEN &&
	       b64url_encode(buf, sizeof buf, out, JWS_COORD_SIZE) == JWS_COORD_SIZE - 1;
}

/* jws_coords: the public point of a P-256 key as base64url x and y. */
static int jws_coords(EVP_PKEY *key, char x[JWS_COORD_SIZE], char y[JWS_COORD_SIZE])
{
	BIGNUM *bx = NULL, *by = NULL;
	int ok = jws_is_p256(key) && EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &bx) &&
		 EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &by) &&
		 jws_encode_bn(bx, x) && jws_encode_bn(by, y);
	BN_free(bx);
	BN_free(by);
	if (!ok)
		ERR_clear_error();
	return ok;
}

json_t *jws_jwk(EVP_PKEY *key)
{
	char x[JWS_COORD_SIZE], y[JWS_COORD_SIZE];
	if (!jws_coords(key, x, y))
		return NULL;
	return json_pack("{s:s, s:s, s:s, s:s}", "crv", "P-256", "kty", "EC", "x", x, "y", y);
}

int jws_sha256(const void *data, size_t len, unsigned char out[32])
{
	unsigned int n = 0;
	if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32) {
		ERR_clear_error();
		return -1;
	}
	return 0;
}

int jws_thumbprint(EVP_PKEY *key, char out[JWS_THUMBPRINT_SIZE])
{
	char x[JWS_COORD_SIZE], y[JWS_COORD_SIZE], canon[160];
	unsigned char digest[32];
	if (!jws_coords(key, x, y))
		return -1;
	/* RFC 7638 3.2: required members only, sorted, no whitespace; the
	 * values are base64url, which needs no JSON escaping. */
	int n = snprintf(canon, sizeof canon,
			 "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", x, y);
	if (n < 0 || (size_t)n >= sizeof canon || jws_sha256(canon, (size_t)n, digest) < 0)
		return -1;
	ssize_t e = b64url_encode(digest, sizeof digest, out, JWS_THUMBPRINT_SIZE);
	return e == JWS_THUMBPRINT_LEN ? 0 : -1;
}

/* jws_token_ok: a challenge token is non-empty base64url (RFC 8555 8.3);
 * it ends up in an http-01 response body and in a digest. */
static int jws_token_ok(const char *token)
{
	return token && *token && b64url_is_alphabet(token, strlen(token));
}

char *jws_key_authorization(const char *token, EVP_PKEY *key)
{
	char tp[JWS_THUMBPRINT_SIZE];
	if (!jws_token_ok(token) || jws_thumbprint(key, tp) < 0)
		return NULL;
	size_t n = strlen(token);
	char *out = malloc(n + 1 + JWS_THUMBPRINT_LEN + 1);
	if (!out)
		return NULL;
	memcpy(out, token, n);
	out[n] = '.';
	memcpy(out + n + 1, tp, JWS_THUMBPRINT_SIZE);
	return out;
}

/* jws_parts_free: NULL-safe on a zeroed or partly built jws_parts. */
static void jws_parts_free(struct jws_parts *p)
{
	free(p->protected_b64);
	free(p->payload_b64);
	free(p->input);
	memset(p, 0, sizeof *p);
}

/* jws_parts_make: encode header (compact JSON) and payload (NULL for the
 * empty payload of POST-as-GET) and join them as the signing input. */
static int jws_parts_make(struct jws_parts *p, const json_t *header, const char *payload)
{
	memset(p, 0, sizeof *p);
	char *htext = json_dumps(header, JSON_COMPACT);
	if (!htext)
		return -1;
	p->protected_b64 = b64url_encode_alloc(htext, strlen(htext));
	free(htext);
	p->payload_b64 = payload ? b64url_encode_alloc(payload, strlen(payload)) : strdup("");
	if (!p->protected_b64 || !p->payload_b64)
		goto fail;
	size_t a = strlen(p->protected_b64), b = strlen(p->payload_b64);
	p->input = malloc(a + 1 + b + 1);
	if (!p->input)
		goto fail;
	memcpy(p->input, p->protected_b64, a);
	p->input[a] = '.';
	memcpy(p->input + a + 1, p->payload_b64, b + 1);
	p->input_len = a + 1 + b;
	return 0;
fail:
	jws_parts_free(p);
	return -1;
}

/* jws_parts_finish: the flattened JWS object with sig base64url'd. */
static json_t *jws_parts_finish(const struct jws_parts *p, const unsigned char *sig,
				size_t siglen)
{
	char *s = b64url_encode_alloc(sig, siglen);
	json_t *jws = s ? json_pack("{s:s, s:s, s:s}", "protected", p->protected_b64, "payload",
				    p->payload_b64, "signature", s)
			: NULL;
	free(s);
	return jws;
}

/* jws_es256: ECDSA P-256 SHA-256 over data as raw R||S (RFC 7518 3.4). */
static int jws_es256(EVP_PKEY *key, const char *data, size_t len, unsigned char raw[64])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char *der = NULL;
	size_t dlen = 0;
	ECDSA_SIG *sig = NULL;
	const BIGNUM *r = NULL, *s = NULL;
	int ok = 0;
	if (!md || EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, key, NULL) != 1 ||
	    EVP_DigestSign(md, NULL, &dlen, (const unsigned char *)data, len) != 1 ||
	    !(der = OPENSSL_malloc(dlen)) ||
	    EVP_DigestSign(md, der, &dlen, (const unsigned char *)data, len) != 1)
		goto out;
	const unsigned char *q = der;
	if (!(sig = d2i_ECDSA_SIG(NULL, &q, (long)dlen)) || q != der + dlen)
		goto out;
	ECDSA_SIG_get0(sig, &r, &s);
	ok = BN_bn2binpad(r, raw, JWS_P256_LEN) == JWS_P256_LEN &&
	     BN_bn2binpad(s, raw + JWS_P256_LEN, JWS_P256_LEN) == JWS_P256_LEN;
out:
	if (!ok)
		ERR_clear_error();
	ECDSA_SIG_free(sig);
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	return ok;
}

char *jws_sign(EVP_PKEY *key, const char *nonce, const char *url, const char *kid,
	       const char *payload_json)
{
	struct jws_parts parts = {0};
	unsigned char raw[2 * JWS_P256_LEN];
	json_t *jws = NULL;
	char *out = NULL;
	if (!nonce || !*nonce || !url || !*url || (kid && !*kid) || !jws_is_p256(key))
		return NULL;
	json_t *hdr = json_pack("{s:s, s:s, s:s}", "alg", "ES256", "nonce", nonce, "url", url);
	/* set_new takes the value even on failure, and refuses a NULL one. */
	if (!hdr ||
	    json_object_set_new(hdr, kid ? "kid" : "jwk", kid ? json_string(kid) : jws_jwk(key)) < 0 ||
	    jws_parts_make(&parts, hdr, payload_json) < 0 ||
	    !jws_es256(key, parts.input, parts.input_len, raw) ||
	    !(jws = jws_parts_finish(&parts, raw, sizeof raw)))
		goto out;
	out = json_dumps(jws, JSON_COMPACT);
out:
	json_decref(jws);
	json_decref(hdr);
	jws_parts_free(&parts);
	return out;
}

json_t *jws_eab(EVP_PKEY *account_key, const char *eab_kid, const char *eab_hmac_key_b64,
		const char *url, char *errbuf, size_t errlen)
{
	struct jws_parts parts = {0};
	unsigned char mac[32];
	size_t keylen = 0, maclen = 0;
	unsigned char *key = NULL;
	char *jwk_text = NULL;
	json_t *hdr = NULL, *jwk = NULL, *eab = NULL;
	if (!eab_kid || !*eab_kid || !url || !*url) {
		snprintf(errbuf, errlen, "external account binding: missing key id or URL");
		return NULL;
	}
	key = eab_hmac_key_b64 ? b64url_decode_alloc(eab_hmac_key_b64, strlen(eab_hmac_key_b64),
						    &keylen)
			       : NULL;
	if (!key || keylen == 0) {
		snprintf(errbuf, errlen, "external account binding: the HMAC key must be "
					 "base64url without padding, and not empty");
		goto out;
	}
	if (!(jwk = jws_jwk(account_key))) {
		snprintf(errbuf, errlen, "external account binding: the account key is not an "
					 "ECDSA P-256 key");
		goto out;
	}
	hdr = json_pack("{s:s, s:s, s:s}", "alg", "HS256", "kid", eab_kid, "url", url);
	jwk_text = json_dumps(jwk, JSON_COMPACT);
	if (!hdr || !jwk_text || jws_parts_make(&parts, hdr, jwk_text) < 0 ||
	    !EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, keylen,
		       (const unsigned char *)parts.input, parts.input_len, mac, sizeof mac,
		       &maclen) ||
	    maclen != sizeof mac || !(eab = jws_parts_finish(&parts, mac, maclen))) {
		ERR_clear_error();
		snprintf(errbuf, errlen, "external account binding: cannot build the JWS (key id "
					 "or URL not UTF-8, or out of memory)");
		goto out;
	}
out:
	if (key)
		OPENSSL_cleanse(key, keylen);
	OPENSSL_cleanse(mac, sizeof mac);
	free(key);
	free(jwk_text);
	json_decref(jwk);
	json_decref(hdr);
	jws_parts_free(&parts);
	return eab;
}
