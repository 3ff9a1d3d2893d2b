/*
 * test_acme_jws.c - base64url (RFC 4648 vectors and strictness), and the
 * JOSE layer of the ACME client: JWK and thumbprint of a fixed P-256 key
 * (the RFC 7515 A.3 key), ES256 requests verified back with OpenSSL, key
 * authorizations, POST-as-GET, and the HS256 external account binding.
 */
#include "tests/unit/check.h"

#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "acme/b64url.h"
#include "acme/jws.h"

/* RFC 7515 appendix A.3: an ES256 key (private scalar d, public x and y). */
static const char key_d[] = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";
static const char key_x[] = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
static const char key_y[] = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
/* SHA-256 of the canonical JWK below, computed outside portier. */
static const char key_thumbprint[] = "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U";

/* std_b64url: base64url through OpenSSL's standard base64, independently of
 * acme/b64url.c. */
static void std_b64url(const unsigned char *in, size_t len, char *out)
{
	int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	int o = 0;
	for (int i = 0; i < n; i++) {
		if (out[i] == '=')
			break;
		out[o++] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	}
	out[o] = '\0';
}

static EVP_PKEY *fixed_key(void)
{
	unsigned char d[32], pub[65];
	EVP_PKEY *key = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	OSSL_PARAM *params = NULL;
	BIGNUM *bd = NULL;
	pub[0] = 0x04;
	if (b64url_decode(key_d, strlen(key_d), d, sizeof d) != 32 ||
	    b64url_decode(key_x, strlen(key_x), pub + 1, 32) != 32 ||
	    b64url_decode(key_y, strlen(key_y), pub + 33, 32) != 32)
		return NULL;
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	bd = BN_bin2bn(d, sizeof d, NULL);
	if (bld && bd &&
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, bd) &&
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub) &&
	    (params = OSSL_PARAM_BLD_to_param(bld)) &&
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) &&
	    EVP_PKEY_fromdata_init(ctx) == 1)
		EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_KEYPAIR, params);
	OPENSSL_cleanse(d, sizeof d);
	BN_clear_free(bd);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	return key;
}

static void test_b64url_vectors(void)
{
	/* RFC 4648 section 10, without padding. */
	static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *enc[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
	char out[32];
	unsigned char dec[32];
	for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
		size_t n = strlen(plain[i]);
		CHECK(b64url_encoded_len(n) == strlen(enc[i]));
		CHECK(b64url_encode(plain[i], n, out, sizeof out) == (ssize_t)strlen(enc[i]));
		CHECK_STR(out, enc[i]);
		char *a = b64url_encode_alloc(plain[i], n);
		CHECK_STR(a, enc[i]);
		free(a);
		CHECK(b64url_decoded_len(strlen(enc[i])) == (ssize_t)n);
		CHECK(b64url_decode(enc[i], strlen(enc[i]), dec, sizeof dec) == (ssize_t)n);
		CHECK(memcmp(dec, plain[i], n) == 0);
	}
	/* The URL-safe alphabet (RFC 7515 appendix C) and all-ones bytes. */
	static const unsigned char c_bytes[] = {3, 236, 255, 224, 193};
	CHECK(b64url_encode(c_bytes, sizeof c_bytes, out, sizeof out) == 7);
	CHECK_STR(out, "A-z_4ME");
	static const unsigned char ones[] = {0xff, 0xff, 0xff, 0xfb};
	CHECK(b64url_encode(ones, sizeof ones, out, sizeof out) == 6);
	CHECK_STR(out, "____-w");
	CHECK(b64url_decode("A-z_4ME", 7, dec, sizeof dec) == 5 &&
	      memcmp(dec, c_bytes, 5) == 0);

	/* Every byte value round-trips, at every length mod 3. */
	unsigned char all[256], back[256];
	char big[400];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	for (size_t n = 253; n <= 256; n++) {
		ssize_t e = b64url_encode(all, n, big, sizeof big);
		CHECK(e == (ssize_t)b64url_encoded_len(n));
		CHECK(b64url_decode(big, (size_t)e, back, sizeof back) == (ssize_t)n);
		CHECK(memcmp(all, back, n) == 0);
	}
	/* Matches OpenSSL's base64 with the alphabet swapped. */
	char ref[400];
	std_b64url(all, sizeof all, ref);
	CHECK(b64url_encode(all, sizeof all, big, sizeof big) > 0);
	CHECK_STR(big, ref);
}

static void test_b64url_strict(void)
{
	unsigned char dec[16];
	memset(dec, 0xaa, sizeof dec);
	/* Padding, whitespace, the standard alphabet, stray bytes. */
	static const char *bad[] = {"Zg==", "Zg=", "Zm9v\n", " Zm9v", "Zm 9v", "Zm9v+A",
				    "Zm9v/A", "Zm9v.A", "Zm\x80v", "Z", "Zm9vY", "Zh", "Zm9"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK(b64url_decode(bad[i], strlen(bad[i]), dec, sizeof dec) == -1);
	/* An embedded NUL is just an invalid character. */
	CHECK(b64url_decode("Zm\0v", 4, dec, sizeof dec) == -1);
	/* Nothing was written by any of the failures. */
	int untouched = 1;
	for (size_t i = 0; i < sizeof dec; i++)
		untouched &= dec[i] == 0xaa;
	CHECK(untouched);
	/* Output too small: refused, untouched. */
	CHECK(b64url_decode("Zm9vYmFy", 8, dec, 5) == -1);
	CHECK(dec[0] == 0xaa);
	CHECK(b64url_decode("Zm9vYmFy", 8, dec, 6) == 6);
	CHECK(b64url_decode("", 0, dec, 0) == 0);
	CHECK(b64url_decoded_len(1) == -1 && b64url_decoded_len(5) == -1);
	/* Encoder capacity must include the NUL. */
	char out[8];
	memset(out, 'x', sizeof out);
	CHECK(b64url_encode("foo", 3, out, 4) == -1);
	CHECK(out[0] == 'x');
	CHECK(b64url_encode("foo", 3, out, 5) == 4);
	/* decode_alloc: NUL after the data; failure leaves *outlen alone. */
	size_t n = 99;
	unsigned char *p = b64url_decode_alloc("Zm9vYg", 6, &n);
	CHECK(p && n == 4 && !strcmp((char *)p, "foob"));
	free(p);
	n = 99;
	CHECK(b64url_decode_alloc("Zm9vYg==", 8, &n) == NULL && n == 99);
	CHECK(b64url_is_alphabet("abc-_XYZ09", 10));
	CHECK(!b64url_is_alphabet("abc=", 4));
}

/* decode_json: a base64url member of jws decoded and parsed as JSON. */
static json_t *decode_json(const json_t *jws, const char *member)
{
	const char *s = json_string_value(json_object_get(jws, member));
	size_t n = 0;
	unsigned char *raw = s ? b64url_decode_alloc(s, strlen(s), &n) : NULL;
	json_t *j = raw ? json_loadb((const char *)raw, n, 0, NULL) : NULL;
	free(raw);
	return j;
}

/* verify_es256: check a flattened JWS signature with key, by turning R||S
 * back into DER and verifying over "protected.payload". */
static int verify_es256(const json_t *jws, EVP_PKEY *key, int *short_half)
{
	const char *prot = json_string_value(json_object_get(jws, "protected"));
	const char *pay = json_string_value(json_object_get(jws, "payload"));
	const char *sig = json_string_value(json_object_get(jws, "signature"));
	unsigned char raw[64], *der = NULL;
	char input[4096];
	int ok = 0;
	if (!prot || !pay || !sig || b64url_decode(sig, strlen(sig), raw, sizeof raw) != 64)
		return 0;
	int n = snprintf(input, sizeof input, "%s.%s", prot, pay);
	if (n <= 0 || (size_t)n >= sizeof input)
		return 0;
	if (short_half && (raw[0] == 0 || raw[32] == 0))
		(*short_half)++;
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(raw, 32, NULL), *s = BN_bin2bn(raw + 32, 32, NULL);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s))
		goto out;
	r = s = NULL;
	int dlen = i2d_ECDSA_SIG(es, &der);
	ok = dlen > 0 && md &&
	     EVP_DigestVerifyInit_ex(md, NULL, "SHA256", NULL, NULL, key, NULL) == 1 &&
	     EVP_DigestVerify(md, der, (size_t)dlen, (unsigned char *)input, (size_t)n) == 1;
out:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return ok;
}

static void test_jwk_thumbprint(EVP_PKEY *key)
{
	json_t *jwk = jws_jwk(key);
	CHECK(jwk && json_object_size(jwk) == 4);
	CHECK_STR(json_string_value(json_object_get(jwk, "kty")), "EC");
	CHECK_STR(json_string_value(json_object_get(jwk, "crv")), "P-256");
	CHECK_STR(json_string_value(json_object_get(jwk, "x")), key_x);
	CHECK_STR(json_string_value(json_object_get(jwk, "y")), key_y);
	json_decref(jwk);

	/* The thumbprint, recomputed here from a hand-written canonical JWK. */
	char canon[200], expect[64], tp[JWS_THUMBPRINT_SIZE];
	unsigned char digest[32];
	unsigned int dn = 0;
	snprintf(canon, sizeof canon,
		 "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", key_x, key_y);
	CHECK(EVP_Digest(canon, strlen(canon), digest, &dn, EVP_sha256(), NULL) == 1 && dn == 32);
	std_b64url(digest, sizeof digest, expect);
	CHECK_STR(expect, key_thumbprint);
	memset(tp, 0, sizeof tp);
	CHECK(jws_thumbprint(key, tp) == 0);
	CHECK_STR(tp, key_thumbprint);
	CHECK(strlen(tp) == JWS_THUMBPRINT_LEN);

	/* Key authorization: token "." thumbprint; tokens must be base64url. */
	char *ka = jws_key_authorization("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA", key);
	char want[128];
	snprintf(want, sizeof want, "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.%s",
		 key_thumbprint);
	CHECK_STR(ka, want);
	free(ka);
	CHECK(jws_key_authorization("", key) == NULL);
	CHECK(jws_key_authorization(NULL, key) == NULL);
	CHECK(jws_key_authorization("a/b", key) == NULL);
	CHECK(jws_key_authorization("abc\n", key) == NULL);
	CHECK(jws_key_authorization("abc", NULL) == NULL);

	/* jws_sha256: FIPS 180-2 "abc". */
	unsigned char h[32];
	char hex[65];
	CHECK(jws_sha256("abc", 3, h) == 0);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", h[i]);
	CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_sign_kid(EVP_PKEY *key)
{
	const char *payload = "{\"status\":\"deactivated\"}";
	char *text = jws_sign(key, "nonce-1", "https://ca.example/acme/acct/7",
			      "https://ca.example/acme/acct/7", payload);
	CHECK(text != NULL);
	CHECK(text && !strchr(text, '\n') && !strchr(text, ' '));
	json_t *jws = text ? json_loads(text, 0, NULL) : NULL;
	CHECK(json_is_object(jws) && json_object_size(jws) == 3);
	json_t *hdr = decode_json(jws, "protected");
	CHECK(json_object_size(hdr) == 4);
	CHECK_STR(json_string_value(json_object_get(hdr, "alg")), "ES256");
	CHECK_STR(json_string_value(json_object_get(hdr, "nonce")), "nonce-1");
	CHECK_STR(json_string_value(json_object_get(hdr, "url")), "https://ca.example/acme/acct/7");
	CHECK_STR(json_string_value(json_object_get(hdr, "kid")), "https://ca.example/acme/acct/7");
	CHECK(json_object_get(hdr, "jwk") == NULL);
	/* The payload is exactly the text given. */
	const char *pay = json_string_value(json_object_get(jws, "payload"));
	size_t n = 0;
	unsigned char *raw = pay ? b64url_decode_alloc(pay, strlen(pay), &n) : NULL;
	CHECK(raw && n == strlen(payload) && !memcmp(raw, payload, n));
	free(raw);
	CHECK(verify_es256(jws, key, NULL));

	/* Tampering with the payload breaks the signature. */
	json_object_set_new(jws, "payload", json_string("e30"));
	CHECK(!verify_es256(jws, key, NULL));
	json_decref(hdr);
	json_decref(jws);
	free(text);
}

static void test_sign_jwk_and_post_as_get(EVP_PKEY *key)
{
	char *text = jws_sign(key, "n2", "https://ca.example/acme/new-acct", NULL,
			      "{\"termsOfServiceAgreed\":true}");
	json_t *jws = text ? json_loads(text, 0, NULL) : NULL;
	json_t *hdr = decode_json(jws, "protected");
	json_t *jwk = jws_jwk(key);
	CHECK(hdr && json_object_get(hdr, "kid") == NULL);
	CHECK(jwk && json_equal(json_object_get(hdr, "jwk"), jwk));
	CHECK(verify_es256(jws, key, NULL));
	json_decref(jwk);
	json_decref(hdr);
	json_decref(jws);
	free(text);

	/* POST-as-GET: the payload is the empty string, and still signed. */
	text = jws_sign(key, "n3", "https://ca.example/acme/order/1",
			"https://ca.example/acme/acct/7", NULL);
	jws = text ? json_loads(text, 0, NULL) : NULL;
	CHECK_STR(json_string_value(json_object_get(jws, "payload")), "");
	CHECK(verify_es256(jws, key, NULL));
	json_decref(jws);
	free(text);

	/* "{}" is a real payload, not POST-as-GET. */
	text = jws_sign(key, "n4", "https://ca.example/acme/chall/1", "k", "{}");
	jws = text ? json_loads(text, 0, NULL) : NULL;
	CHECK_STR(json_string_value(json_object_get(jws, "payload")), "e30");
	json_decref(jws);
	free(text);
}

/* Many signatures: R and S below 2^248 (a leading zero byte) must still be
 * 32 bytes each; about 1 in 128 signatures has one. */
static void test_sign_many(EVP_PKEY *key)
{
	int good = 0, short_half = 0, rounds = 800;
	for (int i = 0; i < rounds; i++) {
		char nonce[32];
		snprintf(nonce, sizeof nonce, "nonce-%d", i);
		char *text = jws_sign(key, nonce, "https://ca.example/x", "k", NULL);
		json_t *jws = text ? json_loads(text, 0, NULL) : NULL;
		good += verify_es256(jws, key, &short_half);
		json_decref(jws);
		free(text);
	}
	CHECK(good == rounds);
	printf("signatures with a short R or S: %d of %d\n", short_half, rounds);
}

static void test_sign_refused(EVP_PKEY *key)
{
	CHECK(jws_sign(key, NULL, "https://u", NULL, NULL) == NULL);
	CHECK(jws_sign(key, "", "https://u", NULL, NULL) == NULL);
	CHECK(jws_sign(key, "n", NULL, NULL, NULL) == NULL);
	CHECK(jws_sign(key, "n", "", NULL, NULL) == NULL);
	CHECK(jws_sign(key, "n", "https://u", "", NULL) == NULL);
	CHECK(jws_sign(NULL, "n", "https://u", NULL, NULL) == NULL);
	CHECK(jws_sign(key, "n\xff", "https://u", NULL, NULL) == NULL); /* not UTF-8 */
	CHECK(jws_sign(key, "n", "https://u", "k\xff", NULL) == NULL);

	/* Other curves and key types are not ES256 account keys. */
	EVP_PKEY *p384 = EVP_EC_gen("P-384");
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	char tp[JWS_THUMBPRINT_SIZE] = "untouched";
	CHECK(p384 && ed);
	CHECK(jws_jwk(p384) == NULL && jws_jwk(ed) == NULL);
	CHECK(jws_thumbprint(p384, tp) == -1 && jws_thumbprint(ed, tp) == -1);
	CHECK_STR(tp, "untouched");
	CHECK(jws_sign(p384, "n", "https://u", "k", NULL) == NULL);
	CHECK(jws_sign(ed, "n", "https://u", "k", NULL) == NULL);
	CHECK(jws_key_authorization("tok", p384) == NULL);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(ed);

	/* A public-only P-256 key has a JWK but cannot sign. */
	json_t *jwk = jws_jwk(key);
	unsigned char pub[65];
	pub[0] = 0x04;
	b64url_decode(key_x, strlen(key_x), pub + 1, 32);
	b64url_decode(key_y, strlen(key_y), pub + 33, 32);
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"P-256", 0),
		OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub),
		OSSL_PARAM_construct_end(),
	};
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *pubkey = NULL;
	CHECK(ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
	      EVP_PKEY_fromdata(ctx, &pubkey, EVP_PKEY_PUBLIC_KEY, params) == 1);
	json_t *pjwk = jws_jwk(pubkey);
	CHECK(pjwk && json_equal(pjwk, jwk));
	CHECK(jws_sign(pubkey, "n", "https://u", "k", NULL) == NULL);
	CHECK(ERR_peek_error() == 0); /* failures leave no stale OpenSSL errors */
	json_decref(pjwk);
	json_decref(jwk);
	EVP_PKEY_free(pubkey);
	EVP_PKEY_CTX_free(ctx);
}

static void test_eab(EVP_PKEY *key)
{
	static const char mac_key[] = "portier-eab-test-hmac-key-32byte";
	static const char mac_key_b64[] = "cG9ydGllci1lYWItdGVzdC1obWFjLWtleS0zMmJ5dGU";
	static const char url[] = "https://ca.example/acme/new-acct";
	char err[256] = "";
	json_t *eab = jws_eab(key, "kid-1", mac_key_b64, url, err, sizeof err);
	CHECK(eab && json_object_size(eab) == 3);
	CHECK_STR(err, "");

	json_t *hdr = decode_json(eab, "protected");
	CHECK(json_object_size(hdr) == 3);
	CHECK_STR(json_string_value(json_object_get(hdr, "alg")), "HS256");
	CHECK_STR(json_string_value(json_object_get(hdr, "kid")), "kid-1");
	CHECK_STR(json_string_value(json_object_get(hdr, "url")), url);
	json_t *payload = decode_json(eab, "payload");
	json_t *jwk = jws_jwk(key);
	CHECK(payload && json_equal(payload, jwk));

	/* HMAC-SHA256 recomputed here over "protected.payload". */
	const char *prot = json_string_value(json_object_get(eab, "protected"));
	const char *pay = json_string_value(json_object_get(eab, "payload"));
	char input[1024], expect[64];
	unsigned char mac[32];
	size_t maclen = 0;
	snprintf(input, sizeof input, "%s.%s", prot ? prot : "", pay ? pay : "");
	EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *mctx = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	CHECK(mctx && EVP_MAC_init(mctx, (const unsigned char *)mac_key, strlen(mac_key), params) &&
	      EVP_MAC_update(mctx, (const unsigned char *)input, strlen(input)) &&
	      EVP_MAC_final(mctx, mac, &maclen, sizeof mac) && maclen == 32);
	std_b64url(mac, sizeof mac, expect);
	CHECK_STR(json_string_value(json_object_get(eab, "signature")), expect);
	/* And the whole thing against a vector computed outside OpenSSL. */
	CHECK_STR(json_string_value(json_object_get(eab, "signature")),
		  "KSIv5gKto5wBuvGju0pPqv7bLT-g-B7f5lezkZhbeIs");
	EVP_MAC_CTX_free(mctx);
	EVP_MAC_free(hmac);
	json_decref(payload);
	json_decref(jwk);
	json_decref(hdr);
	json_decref(eab);

	/* The binding goes into a newAccount payload signed with the jwk. */
	json_t *acct = json_pack("{s:b, s:o}", "termsOfServiceAgreed", 1, "externalAccountBinding",
				 jws_eab(key, "kid-1", mac_key_b64, url, err, sizeof err));
	char *ptext = acct ? json_dumps(acct, JSON_COMPACT) : NULL;
	char *text = ptext ? jws_sign(key, "n", url, NULL, ptext) : NULL;
	json_t *jws = text ? json_loads(text, 0, NULL) : NULL;
	CHECK(jws && verify_es256(jws, key, NULL));
	json_decref(jws);
	free(text);
	free(ptext);
	json_decref(acct);

	/* Errors name what is wrong. */
	err[0] = '\0';
	CHECK(jws_eab(key, "kid-1", "cG9y=", url, err, sizeof err) == NULL);
	CHECK(strstr(err, "HMAC key") != NULL);
	CHECK(jws_eab(key, "kid-1", "", url, err, sizeof err) == NULL);
	CHECK(jws_eab(key, "kid-1", NULL, url, err, sizeof err) == NULL);
	err[0] = '\0';
	CHECK(jws_eab(key, "", mac_key_b64, url, err, sizeof err) == NULL);
	CHECK(strstr(err, "key id") != NULL);
	CHECK(jws_eab(key, "kid-1", mac_key_b64, NULL, err, sizeof err) == NULL);
	EVP_PKEY *p384 = EVP_EC_gen("P-384");
	err[0] = '\0';
	CHECK(jws_eab(p384, "kid-1", mac_key_b64, url, err, sizeof err) == NULL);
	CHECK(strstr(err, "P-256") != NULL);
	EVP_PKEY_free(p384);
}

int main(void)
{
	test_b64url_vectors();
	test_b64url_strict();
	EVP_PKEY *key = fixed_key();
	CHECK(key != NULL);
	if (key) {
		test_jwk_thumbprint(key);
		test_sign_kid(key);
		test_sign_jwk_and_post_as_get(key);
		test_sign_many(key);
		test_sign_refused(key);
		test_eab(key);
	}
	/* A generated key signs and verifies the same way. */
	EVP_PKEY *fresh = EVP_EC_gen("P-256");
	char *text = fresh ? jws_sign(fresh, "n", "https://u", NULL, "{}") : NULL;
	json_t *jws = text ? json_loads(text, 0, NULL) : NULL;
	CHECK(jws && verify_es256(jws, fresh, NULL) && !verify_es256(jws, key, NULL));
	json_decref(jws);
	free(text);
	EVP_PKEY_free(fresh);
	EVP_PKEY_free(key);
	return check_done();
}
