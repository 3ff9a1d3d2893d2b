/*
 * test_acme_challenges.c - the challenge answer table (acme/challenges.h):
 * http-01 tokens (validation, replacement, removal, the bound on entries),
 * the RFC 8737 tls-alpn-01 certificate taken apart with OpenSSL, and
 * workers reading while the main thread writes.
 */
#include "tests/unit/check.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "acme/challenges.h"

static char errbuf[512];

/* get_str: the key authorization for token as a string, "" when -1. */
static const char *get_str(struct challenges *ch, const char *token, char *out, size_t cap)
{
	int n = challenges_get_http01(ch, token, strlen(token), out, cap - 1);
	out[n < 0 ? 0 : n] = '\0';
	return out;
}

static void test_http01_basic(void)
{
	char buf[600];
	struct challenges *ch = challenges_new();
	CHECK(ch != NULL);
	if (!ch)
		return;
	CHECK(challenges_count(ch) == 0);
	CHECK(challenges_put_http01(ch, "tok-EN_1", "tok-EN_1.thumb") == 0);
	CHECK(challenges_count(ch) == 1);
	CHECK_STR(get_str(ch, "tok-EN_1", buf, sizeof buf), "tok-EN_1.thumb");
	CHECK(challenges_get_http01(ch, "tok-EN_1", 8, buf, sizeof buf) == 14);
	/* token_len counts, not the NUL: a prefix or an extension is another token */
	CHECK(challenges_get_http01(ch, "tok-EN_1/x", 8, buf, sizeof buf) == 14);
	CHECK(challenges_get_http01(ch, "tok-EN_1", 7, buf, sizeof buf) == -1);
	CHECK(challenges_get_http01(ch, "tok-EN_12", 9, buf, sizeof buf) == -1);
	CHECK(challenges_get_http01(ch, "TOK-EN_1", 8, buf, sizeof buf) == -1); /* case counts */
	/* an answer that does not fit is not cut */
	CHECK(challenges_get_http01(ch, "tok-EN_1", 8, buf, 13) == -1);
	CHECK(challenges_get_http01(ch, "tok-EN_1", 8, buf, 14) == 14);
	CHECK(challenges_get_http01(ch, "unknown", 7, buf, sizeof buf) == -1);
	CHECK(challenges_get_http01(NULL, "tok-EN_1", 8, buf, sizeof buf) == -1);

	/* replacement keeps one entry */
	CHECK(challenges_put_http01(ch, "tok-EN_1", "second") == 0);
	CHECK(challenges_count(ch) == 1);
	CHECK_STR(get_str(ch, "tok-EN_1", buf, sizeof buf), "second");
	CHECK(challenges_put_http01(ch, "other", "other.thumb") == 0);
	CHECK(challenges_count(ch) == 2);

	challenges_del_http01(ch, "nope"); /* unknown: nothing happens */
	CHECK(challenges_count(ch) == 2);
	challenges_del_http01(ch, "tok-EN_1");
	CHECK(challenges_count(ch) == 1);
	CHECK(challenges_get_http01(ch, "tok-EN_1", 8, buf, sizeof buf) == -1);
	CHECK_STR(get_str(ch, "other", buf, sizeof buf), "other.thumb");
	challenges_del_http01(ch, "other");
	CHECK(challenges_count(ch) == 0);
	challenges_del_http01(NULL, "other");
	challenges_free(ch);
	challenges_free(NULL);
}

static void test_http01_bad_input(void)
{
	char buf[600], token[200], keyauth[600];
	struct challenges *ch = challenges_new();
	CHECK(ch != NULL);
	if (!ch)
		return;
	static const char *bad[] = {"", "a/b", "../x", "a.b", "a b", "a%2Fb", "a=", "a+b",
				    "tok\n", "\xc3\xa9"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK(challenges_put_http01(ch, bad[i], "ka") == -1);
		CHECK(challenges_get_http01(ch, bad[i], strlen(bad[i]), buf, sizeof buf) == -1);
	}
	CHECK(challenges_put_http01(ch, NULL, "ka") == -1);
	CHECK(challenges_put_http01(NULL, "tok", "ka") == -1);
	CHECK(challenges_put_http01(ch, "tok", NULL) == -1);
	CHECK(challenges_put_http01(ch, "tok", "") == -1);

	memset(token, 'A', 128);
	token[128] = '\0';
	CHECK(challenges_put_http01(ch, token, "ka") == 0);
	CHECK(challenges_get_http01(ch, token, 128, buf, sizeof buf) == 2);
	token[128] = 'A';
	token[129] = '\0';
	CHECK(challenges_put_http01(ch, token, "ka") == -1);
	CHECK(challenges_get_http01(ch, token, 129, buf, sizeof buf) == -1);

	memset(keyauth, 'k', 512);
	keyauth[512] = '\0';
	CHECK(challenges_put_http01(ch, "long", keyauth) == 0);
	CHECK(challenges_get_http01(ch, "long", 4, buf, 512) == 512);
	CHECK(memcmp(buf, keyauth, 512) == 0);
	keyauth[512] = 'k';
	keyauth[513] = '\0';
	CHECK(challenges_put_http01(ch, "long", keyauth) == -1);
	/* a refused put leaves the old answer */
	CHECK(challenges_get_http01(ch, "long", 4, buf, sizeof buf) == 512);
	CHECK(challenges_count(ch) == 2);
	challenges_free(ch);
}

static void test_bound(void)
{
	char token[32], buf[64];
	struct challenges *ch = challenges_new();
	CHECK(ch != NULL);
	if (!ch)
		return;
	int failed = 0;
	for (int i = 0; i < CHALLENGES_MAX; i++) {
		snprintf(token, sizeof token, "t%d", i);
		failed += challenges_put_http01(ch, token, token) != 0;
	}
	CHECK(failed == 0);
	CHECK(challenges_count(ch) == CHALLENGES_MAX);
	CHECK(challenges_put_http01(ch, "one-more", "x") == -1);
	errbuf[0] = '\0';
	CHECK(challenges_put_alpn(ch, "full.example", "ka", errbuf, sizeof errbuf) == -1);
	CHECK(strstr(errbuf, "full.example") != NULL);
	CHECK(challenges_count(ch) == CHALLENGES_MAX);
	/* replacing an entry needs no room */
	CHECK(challenges_put_http01(ch, "t17", "new") == 0);
	CHECK_STR(get_str(ch, "t17", buf, sizeof buf), "new");
	CHECK_STR(get_str(ch, "t4095", buf, sizeof buf), "t4095");
	challenges_del_http01(ch, "t0");
	CHECK(challenges_put_http01(ch, "one-more", "x") == 0);
	CHECK(challenges_put_http01(ch, "two-more", "x") == -1);
	/* the entry moved into the freed slot is still found */
	CHECK_STR(get_str(ch, "t4095", buf, sizeof buf), "t4095");
	challenges_free(ch);
}

/* ---- tls-alpn-01 ---- */

/* acme_id: the id-pe-acmeIdentifier extension of x, or NULL. */
static X509_EXTENSION *acme_id(X509 *x)
{
	ASN1_OBJECT *oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
	int idx = oid ? X509_get_ext_by_OBJ(x, oid, -1) : -1;
	/* exactly one */
	int again = idx >= 0 ? X509_get_ext_by_OBJ(x, oid, idx) : -1;
	ASN1_OBJECT_free(oid);
	return idx >= 0 && again < 0 ? X509_get_ext(x, idx) : NULL;
}

/* check_acme_id: critical, and its value 04 20 SHA-256(keyauth). */
static void check_acme_id(X509 *x, const char *keyauth)
{
	unsigned char want[34] = {0x04, 0x20};
	unsigned int dlen = 0;
	CHECK(EVP_Digest(keyauth, strlen(keyauth), want + 2, &dlen, EVP_sha256(), NULL) == 1 &&
	      dlen == 32);
	X509_EXTENSION *ext = acme_id(x);
	CHECK(ext != NULL);
	if (!ext)
		return;
	CHECK(X509_EXTENSION_get_critical(ext) == 1);
	const ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(ext);
	CHECK(ASN1_STRING_length(v) == 34);
	CHECK(ASN1_STRING_length(v) == 34 && memcmp(ASN1_STRING_get0_data(v), want, 34) == 0);
}

/* check_san: exactly one subjectAltName, a dNSName equal to host. */
static void check_san(X509 *x, const char *host)
{
	int crit = -1, idx = -1;
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, &idx);
	CHECK(gens != NULL && sk_GENERAL_NAME_num(gens) == 1);
	CHECK(X509_get_ext_by_NID(x, NID_subject_alt_name, idx) < 0); /* one SAN extension */
	if (gens && sk_GENERAL_NAME_num(gens) == 1) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, 0);
		CHECK(gn->type == GEN_DNS);
		if (gn->type == GEN_DNS) {
			const ASN1_IA5STRING *s = gn->d.dNSName;
			CHECK((size_t)ASN1_STRING_length(s) == strlen(host) &&
			      !memcmp(ASN1_STRING_get0_data(s), host, strlen(host)));
		}
	}
	GENERAL_NAMES_free(gens);
}

/* check_key: a P-256 key that matches the self-signed leaf. */
static void check_key(const struct cert *c)
{
	char group[64] = "";
	size_t glen = 0;
	CHECK(X509_check_private_key(c->leaf, c->key) == 1);
	CHECK(X509_verify(c->leaf, c->key) == 1);
	CHECK(EVP_PKEY_is_a(c->key, "EC"));
	CHECK(EVP_PKEY_get_utf8_string_param(c->key, OSSL_PKEY_PARAM_GROUP_NAME, group,
					     sizeof group, &glen) == 1);
	CHECK_STR(group, "prime256v1");
	CHECK(sk_X509_num(c->chain) == 0);
	CHECK(X509_get_version(c->leaf) == X509_VERSION_3);
	CHECK(c->not_before < time(NULL) && c->not_after > time(NULL) + 86400);
	ERR_clear_error();
}

static void test_alpn_cert(void)
{
	const char *ka = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI";
	struct challenges *ch = challenges_new();
	CHECK(ch != NULL);
	if (!ch)
		return;
	CHECK(challenges_get_alpn(ch, "acme.example") == NULL);
	CHECK(challenges_put_alpn(ch, "acme.example", ka, errbuf, sizeof errbuf) == 0);
	CHECK(challenges_count(ch) == 1);
	struct cert *c = challenges_get_alpn(ch, "acme.example");
	CHECK(c != NULL);
	if (!c) {
		fprintf(stderr, "put_alpn: %s\n", errbuf);
		challenges_free(ch);
		return;
	}
	check_san(c->leaf, "acme.example");
	check_acme_id(c->leaf, ka);
	check_key(c);
	CHECK_STR(c->host, "acme.example");
	CHECK(cert_covers(c, "acme.example"));
	CHECK(!cert_covers(c, "other.example"));

	/* the SNI arrives lowercased; a host given in capitals is stored so */
	CHECK(challenges_put_alpn(ch, "Mixed.Example", "ka2", errbuf, sizeof errbuf) == 0);
	struct cert *m = challenges_get_alpn(ch, "mixed.example");
	CHECK(m != NULL);
	if (m)
		check_san(m->leaf, "mixed.example");
	cert_release(m);
	CHECK(challenges_count(ch) == 2);

	/* put replaces, with a fresh key; the old reference stays usable */
	CHECK(challenges_put_alpn(ch, "acme.example", "other-ka", errbuf, sizeof errbuf) == 0);
	CHECK(challenges_count(ch) == 2);
	struct cert *c2 = challenges_get_alpn(ch, "acme.example");
	CHECK(c2 != NULL && c2 != c);
	if (c2) {
		check_acme_id(c2->leaf, "other-ka");
		CHECK(EVP_PKEY_eq(c->key, c2->key) != 1);
	}
	check_acme_id(c->leaf, ka);
	cert_release(c2);

	/* tokens and hosts are kept apart */
	CHECK(challenges_put_http01(ch, "acme", "x") == 0);
	challenges_del_http01(ch, "acme.example");
	challenges_del_alpn(ch, "acme");
	CHECK(challenges_count(ch) == 3);
	challenges_del_http01(ch, "acme");

	challenges_del_alpn(ch, "acme.example");
	CHECK(challenges_get_alpn(ch, "acme.example") == NULL);
	CHECK(challenges_count(ch) == 1);
	check_san(c->leaf, "acme.example"); /* still ours after the delete */
	cert_release(c);

	/* a certificate handed out outlives the table */
	c = challenges_get_alpn(ch, "mixed.example");
	challenges_free(ch);
	CHECK(c != NULL && X509_check_private_key(c->leaf, c->key) == 1);
	cert_release(c);
	CHECK(challenges_get_alpn(NULL, "acme.example") == NULL);
}

static void test_alpn_bad_input(void)
{
	char host[300], ka[600];
	struct challenges *ch = challenges_new();
	CHECK(ch != NULL);
	if (!ch)
		return;
	static const char *bad[] = {"", "*.example.com", "1.2.3.4", "::1", "bad host.example",
				    "a..b", ".lead", "trail.", "-dash.example", "under_score.example",
				    "semi;colon", "\xc3\xa9.example"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		errbuf[0] = '\0';
		CHECK(challenges_put_alpn(ch, bad[i], "ka", errbuf, sizeof errbuf) == -1);
		CHECK(errbuf[0] != '\0');
	}
	CHECK(challenges_put_alpn(ch, NULL, "ka", errbuf, sizeof errbuf) == -1);
	CHECK(challenges_put_alpn(NULL, "a.example", "ka", errbuf, sizeof errbuf) == -1);
	errbuf[0] = '\0';
	CHECK(challenges_put_alpn(ch, "a.example", "", errbuf, sizeof errbuf) == -1);
	CHECK(strstr(errbuf, "a.example") != NULL);
	CHECK(challenges_put_alpn(ch, "a.example", NULL, errbuf, sizeof errbuf) == -1);
	memset(ka, 'k', 513);
	ka[513] = '\0';
	CHECK(challenges_put_alpn(ch, "a.example", ka, errbuf, sizeof errbuf) == -1);
	ka[512] = '\0';
	CHECK(challenges_put_alpn(ch, "a.example", ka, errbuf, sizeof errbuf) == 0);

	/* 253 characters is the longest name */
	memset(host, 'a', sizeof host);
	for (int i = 63; i < 253; i += 64)
		host[i] = '.';
	host[253] = '\0';
	CHECK(challenges_put_alpn(ch, host, "ka", errbuf, sizeof errbuf) == 0);
	struct cert *c = challenges_get_alpn(ch, host);
	CHECK(c != NULL);
	if (c)
		check_san(c->leaf, host);
	cert_release(c);
	host[253] = 'a';
	host[254] = '\0';
	CHECK(challenges_put_alpn(ch, host, "ka", errbuf, sizeof errbuf) == -1);
	CHECK(challenges_count(ch) == 2);
	challenges_free(ch);
}

/* ---- workers reading while the main thread writes ---- */

static atomic_bool stop;

/* reader: what it reads must be whole: the answer written for that token. */
static void *reader(void *arg)
{
	struct challenges *ch = arg;
	char token[16], buf[64];
	long bad = 0;
	for (unsigned i = 0; !atomic_load(&stop); i++) {
		int n = snprintf(token, sizeof token, "t%u", i % 8);
		int got = challenges_get_http01(ch, token, (size_t)n, buf, sizeof buf);
		if (got >= 0 && (got != n + 3 || memcmp(buf, token, (size_t)n) != 0 ||
				 memcmp(buf + n, ".ka", 3) != 0))
			bad++;
		struct cert *c = challenges_get_alpn(ch, i % 2 ? "r.example" : "s.example");
		if (c && (!c->leaf || !c->key || !cert_covers(c, c->host)))
			bad++;
		cert_release(c);
		(void)challenges_count(ch);
	}
	return (void *)bad;
}

static void test_concurrent(void)
{
	char token[16], ka[32];
	struct challenges *ch = challenges_new();
	CHECK(ch != NULL);
	if (!ch)
		return;
	pthread_t th[2];
	atomic_store(&stop, false);
	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&th[i], NULL, reader, ch) == 0);
	int failed = 0;
	for (unsigned i = 0; i < 20000; i++) {
		snprintf(token, sizeof token, "t%u", i % 8);
		snprintf(ka, sizeof ka, "%s.ka", token);
		if (i % 3 == 2)
			challenges_del_http01(ch, token);
		else
			failed += challenges_put_http01(ch, token, ka) != 0;
		if (i % 100 == 0) {
			const char *host = i % 200 ? "r.example" : "s.example";
			failed += challenges_put_alpn(ch, host, ka, errbuf, sizeof errbuf) != 0;
		}
		if (i % 300 == 150)
			challenges_del_alpn(ch, "r.example");
	}
	atomic_store(&stop, true);
	for (int i = 0; i < 2; i++) {
		void *bad = NULL;
		pthread_join(th[i], &bad);
		CHECK(bad == NULL);
	}
	CHECK(failed == 0);
	CHECK(challenges_count(ch) <= 10);
	challenges_free(ch);
}

int main(void)
{
	test_http01_basic();
	test_http01_bad_input();
	test_bound();
	test_alpn_cert();
	test_alpn_bad_input();
	test_concurrent();
	return check_done();
}
