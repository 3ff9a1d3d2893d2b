/*
 * test_acme_misc.c - the ACME client's other pure parts: certificate
 * requests (parsed back and verified), problem documents (classification,
 * bounds, sanitising), and the retry schedule and order limiter with time
 * moved by hand.
 */
#include "tests/unit/check.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "acme/b64url.h"
#include "acme/ari.h"
#include "acme/backoff.h"
#include "acme/csr.h"
#include "acme/problem.h"

/* ---- CSR ---- */

/* parse_csr: the request in der, checked against its base64url form. */
static X509_REQ *parse_csr(const unsigned char *der, size_t len, const char *b64)
{
	unsigned char back[4096];
	if (b64 && (b64url_decode(b64, strlen(b64), back, sizeof back) != (ssize_t)len ||
		    memcmp(back, der, len) != 0))
		return NULL;
	const unsigned char *p = der;
	X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)len);
	if (req && p != der + len) {
		X509_REQ_free(req);
		return NULL;
	}
	return req;
}

/* csr_cn: the subject's CN into out, or "" when the subject has none. */
static void csr_cn(X509_REQ *req, char *out, size_t cap)
{
	out[0] = '\0';
	X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req), NID_commonName, out, (int)cap);
}

/* csr_san: the one general name of the SAN extension, and its criticality. */
static GENERAL_NAMES *csr_san(X509_REQ *req, int *critical)
{
	STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
	GENERAL_NAMES *gens = exts ? X509V3_get_d2i(exts, NID_subject_alt_name, critical, NULL)
				   : NULL;
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return gens;
}

static void test_csr_dns(EVP_PKEY *key)
{
	unsigned char *der = NULL;
	size_t len = 0;
	char *b64 = NULL, err[256] = "", cn[128];
	int crit = -1;
	CHECK(csr_new("WWW.Example.com", key, &der, &len, &b64, err, sizeof err) == 0);
	CHECK_STR(err, "");
	X509_REQ *req = der ? parse_csr(der, len, b64) : NULL;
	CHECK(req != NULL);
	if (req) {
		CHECK(X509_REQ_get_version(req) == X509_REQ_VERSION_1);
		CHECK(X509_REQ_verify(req, key) == 1);
		CHECK(X509_REQ_get_signature_nid(req) == NID_ecdsa_with_SHA256);
		EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
		CHECK(pub && EVP_PKEY_eq(pub, key) == 1);
		csr_cn(req, cn, sizeof cn);
		CHECK_STR(cn, "www.example.com");
		GENERAL_NAMES *gens = csr_san(req, &crit);
		CHECK(gens && sk_GENERAL_NAME_num(gens) == 1);
		CHECK(crit == 0);
		GENERAL_NAME *gn = gens ? sk_GENERAL_NAME_value(gens, 0) : NULL;
		CHECK(gn && gn->type == GEN_DNS);
		if (gn && gn->type == GEN_DNS)
			CHECK_STR((const char *)ASN1_STRING_get0_data(gn->d.dNSName),
				  "www.example.com");
		GENERAL_NAMES_free(gens);
		X509_REQ_free(req);
	}
	free(der);
	free(b64);

	/* Without the base64url form; a wildcard. */
	der = NULL;
	CHECK(csr_new("*.example.org", key, &der, &len, NULL, err, sizeof err) == 0);
	req = der ? parse_csr(der, len, NULL) : NULL;
	CHECK(req && X509_REQ_verify(req, key) == 1);
	if (req) {
		csr_cn(req, cn, sizeof cn);
		CHECK_STR(cn, "*.example.org");
	}
	X509_REQ_free(req);
	free(der);
}

static void test_csr_long_and_ip(EVP_PKEY *key)
{
	char host[128], cn[128], err[256];
	unsigned char *der = NULL;
	size_t len = 0;
	int crit = -1;
	/* 70 characters: no CN, the SAN carries the name and is critical. */
	snprintf(host, sizeof host, "%s.%s.example",
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbb");
	CHECK(strlen(host) > 64);
	CHECK(csr_new(host, key, &der, &len, NULL, err, sizeof err) == 0);
	X509_REQ *req = der ? parse_csr(der, len, NULL) : NULL;
	CHECK(req && X509_REQ_verify(req, key) == 1);
	if (req) {
		CHECK(X509_NAME_entry_count(X509_REQ_get_subject_name(req)) == 0);
		GENERAL_NAMES *gens = csr_san(req, &crit);
		GENERAL_NAME *gn = gens ? sk_GENERAL_NAME_value(gens, 0) : NULL;
		CHECK(gn && gn->type == GEN_DNS && crit == 1);
		if (gn && gn->type == GEN_DNS)
			CHECK_STR((const char *)ASN1_STRING_get0_data(gn->d.dNSName), host);
		GENERAL_NAMES_free(gens);
	}
	X509_REQ_free(req);
	free(der);

	/* Exactly 64: still a CN. */
	memset(host, 'a', 60);
	memcpy(host + 60, ".com", 5);
	der = NULL;
	CHECK(csr_new(host, key, &der, &len, NULL, err, sizeof err) == 0);
	req = der ? parse_csr(der, len, NULL) : NULL;
	if (req) {
		csr_cn(req, cn, sizeof cn);
		CHECK_STR(cn, host);
	}
	X509_REQ_free(req);
	free(der);

	/* IP literals: an iPAddress SAN of 4 or 16 octets, never a CN. */
	static const struct {
		const char *ip;
		int octets;
		unsigned char first, last;
	} ips[] = {{"192.0.2.7", 4, 192, 7}, {"2001:db8::1", 16, 0x20, 1}};
	for (size_t i = 0; i < sizeof ips / sizeof ips[0]; i++) {
		der = NULL;
		CHECK(csr_new(ips[i].ip, key, &der, &len, NULL, err, sizeof err) == 0);
		req = der ? parse_csr(der, len, NULL) : NULL;
		CHECK(req && X509_REQ_verify(req, key) == 1);
		if (!req) {
			free(der);
			continue;
		}
		CHECK(X509_NAME_entry_count(X509_REQ_get_subject_name(req)) == 0);
		GENERAL_NAMES *gens = csr_san(req, &crit);
		GENERAL_NAME *gn = gens ? sk_GENERAL_NAME_value(gens, 0) : NULL;
		CHECK(gn && gn->type == GEN_IPADD && crit == 1);
		if (gn && gn->type == GEN_IPADD) {
			const unsigned char *o = ASN1_STRING_get0_data(gn->d.iPAddress);
			int n = ASN1_STRING_length(gn->d.iPAddress);
			CHECK(n == ips[i].octets && o[0] == ips[i].first &&
			      o[n - 1] == ips[i].last);
		}
		GENERAL_NAMES_free(gens);
		X509_REQ_free(req);
		free(der);
	}
}

static void test_csr_refused(EVP_PKEY *key)
{
	char label64[80], long_host[300], err[256];
	memset(label64, 'a', 64);
	memcpy(label64 + 64, ".com", 5);
	memset(long_host, 'a', sizeof long_host);
	for (int i = 63; i < 290; i += 64)
		long_host[i] = '.';
	long_host[254] = '\0'; /* 254 characters */
	const char *bad[] = {"", "exa mple.com", "-a.example", "a-.example", "a..example",
			     "a.example.", ".example", "a.*.example", "a*.example", "ex_ample.com",
			     "host\n.example", "ünï.example", label64, long_host, NULL};
	unsigned char *der = (unsigned char *)"untouched";
	size_t len = 42;
	char *b64 = (char *)"untouched";
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		CHECK(csr_new(bad[i], key, &der, &len, &b64, err, sizeof err) == -1);
		CHECK(strstr(err, "not a host name") != NULL);
	}
	CHECK(csr_new("a\x1b[2J.example", key, &der, &len, &b64, err, sizeof err) == -1);
	CHECK_STR(err, "CSR: \"a?[2J.example\" is not a host name or IP address");
	CHECK(csr_new("ok.example", NULL, &der, &len, &b64, err, sizeof err) == -1);
	CHECK(!strcmp((char *)der, "untouched") && len == 42 && !strcmp(b64, "untouched"));
	/* 253 characters is the limit, and fine. */
	long_host[253] = '\0';
	long_host[252] = 'a';
	unsigned char *ok = NULL;
	CHECK(csr_new(long_host, key, &ok, &len, NULL, err, sizeof err) == 0);
	free(ok);
	CHECK(ERR_peek_error() == 0);
}

static void test_csr(void)
{
	EVP_PKEY *key = csr_new_key();
	char group[32] = "";
	CHECK(key && EVP_PKEY_is_a(key, "EC"));
	CHECK(key && EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group,
						    sizeof group, NULL));
	CHECK_STR(group, "prime256v1");
	EVP_PKEY *other = csr_new_key();
	CHECK(other && EVP_PKEY_eq(key, other) != 1);
	if (key) {
		test_csr_dns(key);
		test_csr_long_and_ip(key);
		test_csr_refused(key);
	}
	EVP_PKEY_free(other);
	EVP_PKEY_free(key);
}

/* ---- problem documents ---- */

#define ACME_ERR "urn:ietf:params:acme:error:"

static int parse(const char *json, int http, struct problem *p)
{
	return problem_parse(json, json ? strlen(json) : 0, http, p);
}

static void test_problem_kinds(void)
{
	static const struct {
		const char *name;
		enum problem_kind kind;
	} kinds[] = {
		{"badNonce", PROBLEM_BAD_NONCE},         {"rateLimited", PROBLEM_RATE_LIMITED},
		{"unauthorized", PROBLEM_UNAUTHORIZED},   {"connection", PROBLEM_CONNECTION},
		{"dns", PROBLEM_DNS},                     {"malformed", PROBLEM_MALFORMED},
		{"serverInternal", PROBLEM_SERVER_INTERNAL}, {"accountDoesNotExist", PROBLEM_ACCOUNT_MISSING}, {"caa", PROBLEM_OTHER},
		{"badNonceX", PROBLEM_OTHER},             {"BADNONCE", PROBLEM_OTHER},
	};
	struct problem p;
	char doc[256], msg[128];
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		snprintf(doc, sizeof doc, "{\"type\":\"" ACME_ERR "%s\",\"detail\":\"d\"}",
			 kinds[i].name);
		CHECK(parse(doc, 400, &p) == 0);
		CHECK(p.kind == kinds[i].kind);
		snprintf(msg, sizeof msg, "%s: d", kinds[i].name);
		CHECK_STR(p.message, msg);
	}
	CHECK_STR(problem_kind_name(PROBLEM_RATE_LIMITED), "rateLimited");
	CHECK_STR(problem_kind_name(PROBLEM_SERVER_INTERNAL), "serverInternal");
	CHECK_STR(problem_kind_name(PROBLEM_OTHER), "other");

	/* The full RFC 8555 example with status from the document. */
	CHECK(parse("{\"type\":\"" ACME_ERR "rateLimited\",\"detail\":\"too many certificates "
		    "already issued\",\"status\":429}", 400, &p) == 0);
	CHECK(p.kind == PROBLEM_RATE_LIMITED && p.status == 429 && p.nsub == 0);
	CHECK_STR(p.message, "rateLimited: too many certificates already issued");

	/* The prefix must be exact; other URIs shown whole. */
	CHECK(parse("{\"type\":\"urn:ietf:params:acme:errors:badNonce\"}", 400, &p) == 0);
	CHECK(p.kind == PROBLEM_OTHER);
	CHECK_STR(p.message, "urn:ietf:params:acme:errors:badNonce");
	CHECK(parse("{\"type\":\"" ACME_ERR "\"}", 400, &p) == 0);
	CHECK(p.kind == PROBLEM_OTHER);
	CHECK_STR(p.message, ACME_ERR);
	CHECK(parse("{\"type\":\"https://example.com/probs/out-of-credit\",\"detail\":\"x\"}", 403,
		    &p) == 0);
	CHECK_STR(p.message, "https://example.com/probs/out-of-credit: x");
	CHECK(p.status == 403);
}

static void test_problem_missing(void)
{
	struct problem p;
	CHECK(parse("{\"detail\":\"no type here\"}", 500, &p) == 0);
	CHECK(p.kind == PROBLEM_OTHER && p.status == 500);
	CHECK_STR(p.message, "about:blank: no type here");
	CHECK(parse("{\"type\":\"" ACME_ERR "malformed\"}", 400, &p) == 0);
	CHECK(p.kind == PROBLEM_MALFORMED);
	CHECK_STR(p.message, "malformed");
	CHECK(parse("{}", 404, &p) == 0);
	CHECK_STR(p.message, "about:blank");
	/* Wrongly typed members are ignored; the HTTP status stands in. */
	CHECK(parse("{\"type\":7,\"detail\":[1],\"status\":\"429\",\"subproblems\":{}}", 429, &p) ==
	      0);
	CHECK(p.kind == PROBLEM_OTHER && p.status == 429 && p.nsub == 0);
	CHECK_STR(p.message, "about:blank");
	CHECK(parse("{\"status\":99999}", 0, &p) == 0);
	CHECK(p.status == 0);
	CHECK(parse("{\"type\":\"\",\"detail\":\"\"}", 418, &p) == 0);
	CHECK_STR(p.message, "about:blank");

	/* Not JSON, or not an object: -1 and a message that says so. */
	static const char *bad[] = {"", "{", "[]", "null", "\"str\"", "<html>502</html>"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK(parse(bad[i], 502, &p) == -1);
		CHECK(p.kind == PROBLEM_OTHER && p.status == 502 && p.nsub == 0);
		CHECK_STR(p.message, "unreadable error response from the CA (HTTP 502)");
	}
	CHECK(parse(NULL, 503, &p) == -1);
	/* A JSON NUL escape inside a string is refused by the parser. */
	CHECK(problem_parse("{\"detail\":\"a\\u0000b\"}", 20, 400, &p) == -1);
	/* Length is honoured: a valid prefix parses, the rest is not read. */
	CHECK(problem_parse("{}garbage", 2, 400, &p) == 0);
}

/* utf8_ok: s is well-formed UTF-8 with no C0 controls or DEL. */
static int utf8_ok(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	while (*u) {
		int n = *u < 0x80 ? 1 : (*u & 0xe0) == 0xc0 ? 2 : (*u & 0xf0) == 0xe0 ? 3
			: (*u & 0xf8) == 0xf0 ? 4 : 0;
		if (n == 0 || (n == 1 && (*u < 0x20 || *u == 0x7f)))
			return 0;
		for (int i = 1; i < n; i++)
			if ((u[i] & 0xc0) != 0x80)
				return 0;
		u += n;
	}
	return 1;
}

static void test_problem_bounds(void)
{
	struct problem p;
	size_t big = 20000;
	char *doc = malloc(big + 64);
	CHECK(doc != NULL);
	if (!doc)
		return;
	/* A huge detail is cut, ends with "...", fits the buffer. */
	int n = snprintf(doc, big + 64, "{\"type\":\"" ACME_ERR "dns\",\"detail\":\"");
	memset(doc + n, 'x', big);
	strcpy(doc + n + big, "\"}");
	CHECK(parse(doc, 400, &p) == 0);
	CHECK(p.kind == PROBLEM_DNS);
	CHECK(strlen(p.message) == PROBLEM_MSG_SIZE - 1);
	CHECK(!strncmp(p.message, "dns: xxx", 8));
	CHECK(!strcmp(p.message + strlen(p.message) - 3, "..."));

	/* Cut between two-byte characters: never half a sequence. */
	for (int shift = 0; shift < 3; shift++) {
		n = snprintf(doc, big + 64, "{\"type\":\"t%.*s\",\"detail\":\"", shift, "ab");
		for (size_t i = 0; i < 400; i++)
			memcpy(doc + n + 2 * i, "\xc3\xa9", 2); /* é */
		strcpy(doc + n + 800, "\"}");
		CHECK(parse(doc, 400, &p) == 0);
		CHECK(utf8_ok(p.message));
		CHECK(strlen(p.message) < PROBLEM_MSG_SIZE);
		CHECK(!strcmp(p.message + strlen(p.message) - 3, "..."));
	}
	free(doc);

	/* Exactly fitting text is not cut, one more character is. */
	char fit[PROBLEM_MSG_SIZE + 64];
	n = snprintf(fit, sizeof fit, "{\"type\":\"t\",\"detail\":\"");
	size_t room = PROBLEM_MSG_SIZE - 1 - 3 - strlen("t: ");
	memset(fit + n, 'y', room);
	strcpy(fit + n + room, "\"}");
	CHECK(parse(fit, 400, &p) == 0);
	CHECK(strlen(p.message) == PROBLEM_MSG_SIZE - 4 && !strstr(p.message, "..."));
}

static void test_problem_sanitize(void)
{
	struct problem p;
	/* Line breaks and tabs become one space; other controls, DEL, C1
	 * (U+0085, U+009B CSI) and bidi overrides disappear. */
	CHECK(parse("{\"type\":\"" ACME_ERR "connection\",\"detail\":\"line1\\r\\nline2\\t\\ttab "
		    "\\u001b[31mred\\u007f\\u0085\\u009b!\\u202egnp.exe\\u2066x\\u2028end\"}",
		    400, &p) == 0);
	CHECK(p.kind == PROBLEM_CONNECTION);
	CHECK_STR(p.message, "connection: line1 line2 tab [31mred!gnp.exex end");
	CHECK(utf8_ok(p.message));
	/* Ordinary non-ASCII text stays. */
	CHECK(parse("{\"type\":\"t\",\"detail\":\"caf\\u00e9 \\u65e5\\u672c \\ud83d\\ude00\"}", 400,
		    &p) == 0);
	CHECK_STR(p.message, "t: caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80");
	/* Controls in the type and identifier too. */
	CHECK(parse("{\"type\":\"" ACME_ERR "dns\\n\",\"detail\":\"x\"}", 400, &p) == 0);
	CHECK(p.kind == PROBLEM_OTHER);
	CHECK_STR(p.message, "dns : x");
}

static void test_problem_subproblems(void)
{
	struct problem p;
	const char *doc =
		"{\"type\":\"" ACME_ERR "compound\",\"detail\":\"Errors during validation\","
		"\"status\":403,\"subproblems\":["
		"{\"type\":\"" ACME_ERR "dns\",\"detail\":\"no A record\","
		"\"identifier\":{\"type\":\"dns\",\"value\":\"a.example\\n\"}},"
		"17,"
		"{\"type\":\"" ACME_ERR "unauthorized\",\"detail\":\"bad key authorization\","
		"\"identifier\":{\"type\":\"dns\",\"value\":\"b.example\"}},"
		"{\"type\":\"" ACME_ERR "connection\"},"
		"{\"type\":\"" ACME_ERR "caa\"},"
		"{\"detail\":\"fifth\"},"
		"{\"type\":\"" ACME_ERR "malformed\"}"
		"]}";
	CHECK(parse(doc, 400, &p) == 0);
	CHECK(p.status == 403);
	CHECK(p.kind == PROBLEM_DNS); /* a compound problem takes its first kind */
	CHECK_STR(p.message, "compound: Errors during validation");
	CHECK(p.nsub == PROBLEM_SUB_MAX && p.nsub_total == 6);
	CHECK(p.sub[0].kind == PROBLEM_DNS);
	CHECK_STR(p.sub[0].message, "dns: no A record (a.example )");
	CHECK(p.sub[1].kind == PROBLEM_UNAUTHORIZED);
	CHECK_STR(p.sub[1].message, "unauthorized: bad key authorization (b.example)");
	CHECK(p.sub[2].kind == PROBLEM_CONNECTION);
	CHECK_STR(p.sub[2].message, "connection");
	CHECK(p.sub[3].kind == PROBLEM_OTHER);
	CHECK_STR(p.sub[3].message, "caa");
	/* Not compound: the top-level kind stands. */
	CHECK(parse("{\"type\":\"" ACME_ERR "rejectedIdentifier\",\"subproblems\":[{\"type\":\""
		    ACME_ERR "dns\"}]}", 400, &p) == 0);
	CHECK(p.kind == PROBLEM_OTHER && p.nsub == 1);
}

/* ---- backoff ---- */

#define MIN_MS (60LL * 1000)

/* ---- ARI (RFC 9773) ---- */

/* A bare certificate with the AKI and serial of RFC 9773's example. */
static X509 *ari_example_cert(void)
{
	static const unsigned char kid[] = {0x69, 0x88, 0x5b, 0x6b, 0x87, 0x46, 0x40,
					    0x41, 0xe1, 0xb3, 0x7b, 0x84, 0x7b, 0xa0,
					    0xae, 0x2c, 0xde, 0x01, 0xc8, 0xd4};
	X509 *x = X509_new();
	AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
	ASN1_INTEGER *serial = ASN1_INTEGER_new();
	BIGNUM *bn = NULL;
	BN_hex2bn(&bn, "87654321");
	akid->keyid = ASN1_OCTET_STRING_new();
	ASN1_OCTET_STRING_set(akid->keyid, kid, sizeof kid);
	BN_to_ASN1_INTEGER(bn, serial);
	X509_set_serialNumber(x, serial);
	X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0, X509V3_ADD_DEFAULT);
	AUTHORITY_KEYID_free(akid);
	ASN1_INTEGER_free(serial);
	BN_free(bn);
	return x;
}

static void test_ari(void)
{
	char id[ARI_ID_SIZE];
	X509 *x = ari_example_cert();
	CHECK(ari_cert_id(x, id, sizeof id) == 0);
	CHECK_STR(id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
	CHECK(ari_cert_id(x, id, 10) == -1);
	X509_free(x);
	X509 *bare = X509_new();
	CHECK(ari_cert_id(bare, id, sizeof id) == -1); /* no AKI */
	X509_free(bare);

	int64_t s = 0, e = 0;
	const char *ok = "{\"suggestedWindow\":{\"start\":\"2025-01-02T04:00:00Z\","
			 "\"end\":\"2025-01-03T04:00:00.123+02:00\"},\"explanationURL\":\"x\"}";
	CHECK(ari_parse_window(ok, strlen(ok), &s, &e) == 0);
	CHECK(s == 1735790400 && e == 1735790400 + 86400 - 7200);
	static const char *const bad[] = {
		"{}", "[]", "not json", "{\"suggestedWindow\":{\"start\":\"2025-01-02T04:00:00Z\"}}",
		"{\"suggestedWindow\":{\"start\":\"2025-01-03T04:00:00Z\",\"end\":\"2025-01-02T04:00:00Z\"}}",
		"{\"suggestedWindow\":{\"start\":\"2025-01-02 04:00:00\",\"end\":\"2025-01-03T04:00:00Z\"}}",
		"{\"suggestedWindow\":{\"start\":\"2025-01-02T04:00:00Zjunk\",\"end\":\"2025-01-03T04:00:00Z\"}}",
		"{\"suggestedWindow\":{\"start\":1,\"end\":2}}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK(ari_parse_window(bad[i], strlen(bad[i]), &s, &e) == -1);
	CHECK(ari_pick(100, 200, 0) == 100);
	CHECK(ari_pick(100, 200, UINT32_MAX) >= 199 && ari_pick(100, 200, UINT32_MAX) <= 200);
	CHECK(ari_pick(100, 100, 5) == 100 && ari_pick(100, 50, 5) == 100);
}

static void test_renew_at(void)
{
	/* 90 days: renew with 30 days left, up to 3 days earlier. */
	int64_t nb = 1700000000, day = 86400, na = nb + 90 * day;
	CHECK(backoff_renew_at(nb, na, 0) == na - 30 * day);
	int64_t late = backoff_renew_at(nb, na, UINT32_MAX);
	CHECK(late < na - 30 * day && late >= na - 33 * day);
	CHECK(backoff_renew_at(nb, na, 1u << 31) < na - 30 * day);
	/* pebble's 120 s certificates (notAfter = notBefore + 119): renew at 80 s or
	 * a few seconds before. */
	CHECK(backoff_renew_at(nb, nb + 119, 0) == nb + 119 - 39);
	CHECK(backoff_renew_at(nb, nb + 119, UINT32_MAX) >= nb + 119 - 39 - 3);
	/* Nonsense validity renews at once rather than never. */
	CHECK(backoff_renew_at(nb, nb, 7) == nb);
	CHECK(backoff_renew_at(nb, nb - 5, 7) == nb);
}

static void test_backoff_schedule(void)
{
	CHECK(backoff_delay_ms(0) == 0);
	CHECK(backoff_delay_ms(1) == 1 * MIN_MS);
	CHECK(backoff_delay_ms(2) == 10 * MIN_MS);
	CHECK(backoff_delay_ms(3) == 100 * MIN_MS);
	CHECK(backoff_delay_ms(4) == 1440 * MIN_MS);
	CHECK(backoff_delay_ms(50) == 1440 * MIN_MS);
	CHECK(backoff_delay_ms(UINT_MAX) == 1440 * MIN_MS);

	const int64_t now = 5000000;
	CHECK(backoff_next(0, now, 0, 12345) == now);
	for (unsigned f = 1; f <= 5; f++) {
		int64_t d = backoff_delay_ms(f);
		/* The extremes of random are the extremes of the jitter. */
		CHECK(backoff_next(f, now, 0, 0) == now + d - d / 10);
		CHECK(backoff_next(f, now, 0, UINT32_MAX) == now + d + d / 10);
		int64_t mid = backoff_next(f, now, 0, UINT32_MAX / 2);
		CHECK(mid >= now + d - 1 && mid <= now + d + 1);
		/* Everything in between stays within +/- 10 %, and random spreads it. */
		int64_t lo = INT64_MAX, hi = INT64_MIN;
		uint32_t r = 2463534242u;
		int in_bounds = 1;
		for (int i = 0; i < 10000; i++) {
			r ^= r << 13, r ^= r >> 17, r ^= r << 5; /* xorshift32 */
			int64_t t = backoff_next(f, now, 0, r);
			in_bounds &= t >= now + d - d / 10 && t <= now + d + d / 10;
			lo = t < lo ? t : lo;
			hi = t > hi ? t : hi;
		}
		CHECK(in_bounds);
		CHECK(hi - lo > d / 10); /* covers more than half the range */
	}
	/* Negative and large clock values are fine. */
	CHECK(backoff_next(1, -1000, 0, 0) == -1000 + 54000);
	CHECK(backoff_next(4, INT64_C(1) << 50, 0, UINT32_MAX) ==
	      (INT64_C(1) << 50) + 1584 * MIN_MS);
}

static void test_backoff_retry_after(void)
{
	const int64_t now = 1000000;
	/* Later than the schedule: Retry-After wins. */
	CHECK(backoff_next(1, now, now + 3600 * 1000, UINT32_MAX) == now + 3600 * 1000);
	/* Earlier: the schedule wins (never earlier than either). */
	CHECK(backoff_next(3, now, now + 1000, 0) == now + 90 * MIN_MS);
	CHECK(backoff_next(0, now, now + 1000, 0) == now + 1000);
	CHECK(backoff_next(0, now, now - 5000, 0) == now);
	/* Absurd values are clamped to 30 days. */
	CHECK(backoff_next(1, now, INT64_MAX / 2, 0) == now + BACKOFF_RETRY_AFTER_MAX_MS);
	CHECK(backoff_next(1, now, now + BACKOFF_RETRY_AFTER_MAX_MS, 0) ==
	      now + BACKOFF_RETRY_AFTER_MAX_MS);
	/* A week (Let's Encrypt's duplicate-certificate limit) is honoured. */
	int64_t week = 7LL * 24 * 3600 * 1000;
	CHECK(backoff_next(4, now, now + week, UINT32_MAX) == now + week);
}

static void test_limiter(void)
{
	struct backoff_limiter l;
	backoff_limiter_init(&l, 2, 3);
	int64_t t = 1000;
	CHECK(backoff_limiter_try(&l, t) == 1);
	CHECK(backoff_limiter_try(&l, t + 10) == 1);
	CHECK(backoff_limiter_try(&l, t + 20) == 0); /* two running */
	CHECK(l.active == 2 && l.count == 2);      /* a refusal counts nothing */
	backoff_limiter_done(&l);
	CHECK(backoff_limiter_try(&l, t + 30) == 1); /* third start this minute */
	backoff_limiter_done(&l);
	CHECK(backoff_limiter_try(&l, t + 40) == 0); /* per-minute cap */
	CHECK(backoff_limiter_free_at(&l, t + 40) == t + MIN_MS);
	CHECK(backoff_limiter_try(&l, t + MIN_MS - 1) == 0);
	CHECK(backoff_limiter_try(&l, t + MIN_MS) == 1); /* the first start left */
	CHECK(backoff_limiter_free_at(&l, t + MIN_MS) == t + 10 + MIN_MS);
	CHECK(backoff_limiter_try(&l, t + MIN_MS + 5) == 0); /* 2 running again */
	backoff_limiter_done(&l);
	backoff_limiter_done(&l);
	backoff_limiter_done(&l); /* extra: ignored */
	backoff_limiter_done(&l);
	CHECK(l.active == 0);
	/* Much later, the window is empty. */
	t += 10 * MIN_MS;
	CHECK(backoff_limiter_free_at(&l, t) == t);
	CHECK(backoff_limiter_try(&l, t) == 1 && backoff_limiter_try(&l, t) == 1);
	backoff_limiter_done(&l);
	backoff_limiter_done(&l);
	CHECK(backoff_limiter_try(&l, t) == 1);
	CHECK(backoff_limiter_try(&l, t) == 0);

	/* Clamps: zero limits become 1, a large per-minute limit the window. */
	backoff_limiter_init(&l, 0, 0);
	CHECK(l.max_concurrent == 1 && l.max_per_minute == 1);
	backoff_limiter_init(&l, 1000, 1000);
	CHECK(l.max_per_minute == BACKOFF_WINDOW_MAX);
	t = 0;
	int started = 0;
	for (int i = 0; i < 200; i++)
		started += backoff_limiter_try(&l, t + i);
	CHECK(started == BACKOFF_WINDOW_MAX);
	/* The ring wraps: entries leave one by one as time passes. */
	for (int round = 0; round < 3; round++) {
		int64_t base = (round + 1) * MIN_MS;
		started = 0;
		for (int i = 0; i < 200; i++)
			started += backoff_limiter_try(&l, base + i);
		CHECK(started == BACKOFF_WINDOW_MAX);
		CHECK(backoff_limiter_free_at(&l, base + 199) == base + MIN_MS);
	}
	/* A clock that steps back admits nothing extra. */
	CHECK(backoff_limiter_try(&l, 0) == 0);
}

int main(void)
{
	test_csr();
	test_problem_kinds();
	test_problem_missing();
	test_problem_bounds();
	test_problem_sanitize();
	test_problem_subproblems();
	test_backoff_schedule();
	test_renew_at();
	test_ari();
	test_backoff_retry_after();
	test_limiter();
	return check_done();
}
