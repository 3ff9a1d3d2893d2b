/*
 * test_internal_ca.c - the internal CA (root creation, reopening, leaf
 * issuance) and the certificate store (files, metadata, host checks, reuse
 * versus reissue), all inside a fresh temporary state directory.
 */
#include "tests/unit/check.h"

#include <dirent.h>
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "acme/cert.h"
#include "acme/certstore.h"
#include "acme/internal_ca.h"

static char tmpdir[64];
static char state[256];
static char errbuf[512];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static void rm_tree(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void path_of(char *out, size_t cap, const char *rel)
{
	snprintf(out, cap, "%s/%s", state, rel);
}

static int mode_of(const char *rel)
{
	char p[512];
	struct stat sb;
	path_of(p, sizeof p, rel);
	return stat(p, &sb) == 0 ? (int)(sb.st_mode & 07777) : -1;
}

static X509 *read_pem_cert(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	return x;
}

static EVP_PKEY *read_root_key(void)
{
	char p[512];
	path_of(p, sizeof p, "ca/root.key");
	FILE *f = fopen(p, "r");
	EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	return k;
}

static X509 *read_root(void)
{
	char p[512];
	path_of(p, sizeof p, "ca/root.pem");
	return read_pem_cert(p);
}

/* verify_leaf: X509_verify_cert of c's leaf against root as the only anchor,
 * for TLS server use. */
static int verify_leaf(X509 *root, const struct cert *c)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *vctx = X509_STORE_CTX_new();
	int ok = 0;
	if (store && vctx && X509_STORE_add_cert(store, root) &&
	    X509_STORE_CTX_init(vctx, store, c->leaf, NULL)) {
		X509_STORE_CTX_set_purpose(vctx, X509_PURPOSE_SSL_SERVER);
		ok = X509_verify_cert(vctx) == 1;
		if (!ok)
			fprintf(stderr, "verify: %s\n",
				X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx)));
	}
	X509_STORE_CTX_free(vctx);
	X509_STORE_free(store);
	return ok;
}

static void test_root_creation(void)
{
	struct internal_ca *ca = internal_ca_open(state, errbuf, sizeof errbuf);
	CHECK(ca != NULL);
	if (!ca) {
		fprintf(stderr, "internal_ca_open: %s\n", errbuf);
		return;
	}
	char want[512];
	path_of(want, sizeof want, "ca/root.pem");
	CHECK_STR(internal_ca_root_path(ca), want);
	CHECK(mode_of("") == 0700);
	CHECK(mode_of("ca") == 0700);
	CHECK(mode_of("ca/root.key") == 0600);
	CHECK(mode_of("ca/root.pem") != -1);

	X509 *root = read_root();
	CHECK(root != NULL);
	CHECK(X509_check_ca(root) == 1);
	CHECK(X509_check_issued(root, root) == X509_V_OK);
	char cn[128] = "";
	X509_NAME_get_text_by_NID(X509_get_subject_name(root), NID_commonName, cn, sizeof cn);
	CHECK(strncmp(cn, "portier internal CA (", 21) == 0);
	int crit = -1;
	BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(root, NID_basic_constraints, &crit, NULL);
	CHECK(bc && bc->ca && crit == 1);
	BASIC_CONSTRAINTS_free(bc);
	CHECK((X509_get_key_usage(root) & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) ==
	      (KU_KEY_CERT_SIGN | KU_CRL_SIGN));
	CHECK(X509_get0_subject_key_id(root) != NULL);
	/* ten years, give or take the backdating */
	int days = 0, secs = 0;
	ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(root), X509_get0_notAfter(root));
	CHECK(days >= 3649 && days <= 3651);
	internal_ca_free(ca);

	/* Reopening loads the same root instead of making a new one. */
	ca = internal_ca_open(state, errbuf, sizeof errbuf);
	CHECK(ca != NULL);
	X509 *again = read_root();
	CHECK(again && root && X509_cmp(root, again) == 0);
	X509_free(again);

	/* And it still signs leaves that chain to the root on disk. */
	struct cert *c = ca ? internal_ca_issue(ca, "app.example.test", errbuf, sizeof errbuf) : NULL;
	CHECK(c != NULL);
	if (c && root)
		CHECK(verify_leaf(root, c));
	cert_release(c);
	internal_ca_free(ca);
	X509_free(root);
}

static void test_issue(void)
{
	struct internal_ca *ca = internal_ca_open(state, errbuf, sizeof errbuf);
	X509 *root = read_root();
	CHECK(ca && root);
	if (!ca || !root)
		goto out;

	struct cert *c = internal_ca_issue(ca, "App.Example.TEST", errbuf, sizeof errbuf);
	CHECK(c != NULL);
	if (!c)
		goto out;
	CHECK_STR(c->host, "app.example.test");
	CHECK(c->source == CFG_TLS_INTERNAL);
	CHECK(verify_leaf(root, c));
	CHECK(X509_check_host(c->leaf, "app.example.test", 0, 0, NULL) == 1);
	CHECK(X509_check_host(c->leaf, "other.example.test", 0, 0, NULL) != 1);
	CHECK(cert_covers(c, "app.example.test"));
	CHECK(!cert_covers(c, "x.app.example.test"));
	CHECK(X509_check_private_key(c->leaf, c->key) == 1);
	CHECK(EVP_PKEY_is_a(c->key, "EC"));
	char group[64] = "";
	EVP_PKEY_get_utf8_string_param(c->key, "group", group, sizeof group, NULL);
	CHECK_STR(group, "prime256v1");
	CHECK(sk_X509_num(c->chain) == 1 && X509_cmp(sk_X509_value(c->chain, 0), root) == 0);
	CHECK(strncmp(c->issuer, "portier internal CA (", 21) == 0);
	time_t now = time(NULL);
	CHECK(c->not_before <= now - 3500 && c->not_before >= now - 3700);
	CHECK(c->not_after >= now + 90 * 86400 - 100 && c->not_after <= now + 90 * 86400 + 100);
	CHECK(X509_check_ca(c->leaf) == 0);
	CHECK((X509_get_extended_key_usage(c->leaf) & XKU_SSL_SERVER) != 0);
	CHECK(X509_get_key_usage(c->leaf) == KU_DIGITAL_SIGNATURE);
	CHECK(X509_get0_authority_key_id(c->leaf) != NULL);
	CHECK(X509_get0_subject_key_id(c->leaf) != NULL);
	BIGNUM *serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(c->leaf), NULL);
	CHECK(serial && BN_num_bits(serial) > 120 && !BN_is_negative(serial));
	BN_free(serial);
	struct cert *d = internal_ca_issue(ca, "app.example.test", errbuf, sizeof errbuf);
	CHECK(d && ASN1_INTEGER_cmp(X509_get0_serialNumber(c->leaf),
				    X509_get0_serialNumber(d->leaf)) != 0);
	cert_release(d);
	/* retain/release: the second reference keeps it alive */
	CHECK(cert_retain(c) == c);
	cert_release(c);
	CHECK(c->leaf != NULL);
	cert_release(c);

	c = internal_ca_issue(ca, "127.0.0.1", errbuf, sizeof errbuf);
	CHECK(c != NULL);
	if (c) {
		CHECK(X509_check_ip_asc(c->leaf, "127.0.0.1", 0) == 1);
		CHECK(X509_check_ip_asc(c->leaf, "127.0.0.2", 0) != 1);
		CHECK(cert_covers(c, "127.0.0.1"));
		CHECK(verify_leaf(root, c));
	}
	cert_release(c);
	c = internal_ca_issue(ca, "::1", errbuf, sizeof errbuf);
	CHECK(c && X509_check_ip_asc(c->leaf, "::1", 0) == 1 && cert_covers(c, "::1"));
	cert_release(c);

	c = internal_ca_issue(ca, "*.dev.example.test", errbuf, sizeof errbuf);
	CHECK(c && cert_covers(c, "a.dev.example.test") && !cert_covers(c, "a.b.dev.example.test"));
	CHECK(c && cert_covers(c, "*.dev.example.test") && !cert_covers(c, "dev.example.test"));
	cert_release(c);

	/* Host names longer than a CN fit only in the SAN, which turns critical. */
	char longname[200];
	memset(longname, 'a', sizeof longname);
	memcpy(longname + 90, ".", 1);
	memcpy(longname + sizeof longname - 6, ".test", 6);
	c = internal_ca_issue(ca, longname, errbuf, sizeof errbuf);
	CHECK(c && cert_covers(c, longname) && verify_leaf(root, c));
	cert_release(c);

	static const char *const bad[] = {"", "a/b", "../x", "a..b", "a b", "x.", "a,DNS:evil",
					  "*x.example", "a.*.example"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		errbuf[0] = '\0';
		c = internal_ca_issue(ca, bad[i], errbuf, sizeof errbuf);
		CHECK(c == NULL && errbuf[0]);
		cert_release(c);
	}
out:
	X509_free(root);
	internal_ca_free(ca);
}

static void test_ca_recovery(void)
{
	char other[256], p[512], q[512];
	snprintf(other, sizeof other, "%s/other", tmpdir);
	/* A key without root.pem (a crash between the two writes) is replaced. */
	struct internal_ca *ca = internal_ca_open(other, errbuf, sizeof errbuf);
	CHECK(ca != NULL);
	internal_ca_free(ca);
	snprintf(p, sizeof p, "%s/ca/root.pem", other);
	CHECK(unlink(p) == 0);
	ca = internal_ca_open(other, errbuf, sizeof errbuf);
	CHECK(ca != NULL);
	internal_ca_free(ca);
	/* root.pem without its key is an operator problem: refuse, name it. */
	snprintf(q, sizeof q, "%s/ca/root.key", other);
	CHECK(unlink(q) == 0);
	errbuf[0] = '\0';
	ca = internal_ca_open(other, errbuf, sizeof errbuf);
	CHECK(ca == NULL && strstr(errbuf, "root.key") != NULL);
	internal_ca_free(ca);
	rm_tree(other);
}

static void test_cert_load_pem_errors(void)
{
	char p[512], k[512], tmp[512];
	path_of(p, sizeof p, "ca/root.pem");
	path_of(k, sizeof k, "ca/root.key");
	path_of(tmp, sizeof tmp, "nonexistent.pem");
	errbuf[0] = '\0';
	struct cert *c = cert_load_pem("x", tmp, k, CFG_TLS_FILES, errbuf, sizeof errbuf);
	CHECK(c == NULL && strstr(errbuf, "nonexistent.pem") && strstr(errbuf, "No such file"));
	/* a certificate file as the key */
	c = cert_load_pem("x", p, p, CFG_TLS_FILES, errbuf, sizeof errbuf);
	CHECK(c == NULL && strstr(errbuf, "root.pem"));
	/* a key that belongs to another certificate */
	struct internal_ca *ca = internal_ca_open(state, errbuf, sizeof errbuf);
	struct cert *leaf = ca ? internal_ca_issue(ca, "mismatch.test", errbuf, sizeof errbuf) : NULL;
	struct certstore *cs = certstore_new(state, ca, errbuf, sizeof errbuf);
	CHECK(leaf && cs && certstore_save(cs, leaf, errbuf, sizeof errbuf) == 0);
	path_of(tmp, sizeof tmp, "certs/mismatch.test/cert.pem");
	c = cert_load_pem("x", tmp, k, CFG_TLS_FILES, errbuf, sizeof errbuf);
	CHECK(c == NULL && strstr(errbuf, "does not match"));
	/* a file over the size cap */
	path_of(tmp, sizeof tmp, "big.pem");
	FILE *f = fopen(tmp, "w");
	CHECK(f && ftruncate(fileno(f), 2 * 1024 * 1024) == 0);
	if (f)
		fclose(f);
	c = cert_load_pem("x", tmp, k, CFG_TLS_FILES, errbuf, sizeof errbuf);
	CHECK(c == NULL && strstr(errbuf, "larger than"));
	unlink(tmp);
	/* the good pair loads, chain included */
	path_of(tmp, sizeof tmp, "certs/mismatch.test/cert.pem");
	path_of(p, sizeof p, "certs/mismatch.test/key.pem");
	c = cert_load_pem("mismatch.test", tmp, p, CFG_TLS_FILES, errbuf, sizeof errbuf);
	CHECK(c && sk_X509_num(c->chain) == 1 && c->source == CFG_TLS_FILES);
	CHECK(c && leaf && c->not_after == leaf->not_after && !strcmp(c->issuer, leaf->issuer));
	cert_release(c);
	cert_release(leaf);
	certstore_free(cs);
	internal_ca_free(ca);
}

static json_t *read_meta(const char *dir)
{
	char p[512];
	snprintf(p, sizeof p, "%s/certs/%s/meta.json", state, dir);
	return json_load_file(p, 0, NULL);
}

static void test_store_round_trip(void)
{
	struct internal_ca *ca = internal_ca_open(state, errbuf, sizeof errbuf);
	struct certstore *cs = certstore_new(state, ca, errbuf, sizeof errbuf);
	CHECK(ca && cs);
	if (!ca || !cs)
		goto out;
	CHECK(mode_of("certs") == 0700);
	struct cert *c = internal_ca_issue(ca, "store.example.test", errbuf, sizeof errbuf);
	CHECK(c && certstore_save(cs, c, errbuf, sizeof errbuf) == 0);
	CHECK(mode_of("certs/store.example.test/key.pem") == 0600);
	CHECK(mode_of("certs/store.example.test/cert.pem") != -1);
	json_t *meta = read_meta("store.example.test");
	CHECK(meta != NULL);
	CHECK_STR(json_string_value(json_object_get(meta, "host")), "store.example.test");
	CHECK_STR(json_string_value(json_object_get(meta, "source")), "internal");
	CHECK(c && json_string_value(json_object_get(meta, "issuer")) &&
	      !strcmp(json_string_value(json_object_get(meta, "issuer")), c->issuer));
	const char *na = json_string_value(json_object_get(meta, "not_after"));
	struct tm tm = {0};
	const char *end = na ? strptime(na, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;
	CHECK(end && *end == '\0' && c && timegm(&tm) == c->not_after);
	CHECK(json_string_value(json_object_get(meta, "not_before")) != NULL);
	json_decref(meta);

	struct cert *l = certstore_load(cs, "store.example.test", CFG_TLS_INTERNAL, errbuf,
					sizeof errbuf);
	CHECK(l && c && X509_cmp(l->leaf, c->leaf) == 0 && EVP_PKEY_eq(l->key, c->key) == 1);
	CHECK(l && sk_X509_num(l->chain) == 1 && l->source == CFG_TLS_INTERNAL);
	cert_release(l);
	/* the same name in another case is the same host */
	l = certstore_load(cs, "STORE.example.test", CFG_TLS_INTERNAL, errbuf, sizeof errbuf);
	CHECK(l != NULL);
	cert_release(l);
	errbuf[0] = '\0';
	l = certstore_load(cs, "store.example.test", CFG_TLS_ACME, errbuf, sizeof errbuf);
	CHECK(l == NULL && strstr(errbuf, "internal"));
	l = certstore_load(cs, "missing.example.test", CFG_TLS_INTERNAL, errbuf, sizeof errbuf);
	CHECK(l == NULL && strstr(errbuf, "no certificate stored"));
	/* no stray temporary files */
	char p[512];
	path_of(p, sizeof p, "certs/store.example.test");
	int n = 0;
	DIR *dir = opendir(p);
	for (struct dirent *de; dir && (de = readdir(dir));)
		n += de->d_name[0] != '.';
	if (dir)
		closedir(dir);
	CHECK(n == 3);
	/* saving again replaces the set */
	struct cert *c2 = internal_ca_issue(ca, "store.example.test", errbuf, sizeof errbuf);
	CHECK(c2 && certstore_save(cs, c2, errbuf, sizeof errbuf) == 0);
	l = certstore_load(cs, "store.example.test", CFG_TLS_INTERNAL, errbuf, sizeof errbuf);
	CHECK(l && c2 && X509_cmp(l->leaf, c2->leaf) == 0);
	cert_release(l);
	cert_release(c2);
	cert_release(c);

	/* wildcards get a directory name of their own */
	c = internal_ca_issue(ca, "*.wild.example.test", errbuf, sizeof errbuf);
	CHECK(c && certstore_save(cs, c, errbuf, sizeof errbuf) == 0);
	CHECK(mode_of("certs/_wildcard.wild.example.test/key.pem") == 0600);
	l = certstore_load(cs, "*.wild.example.test", CFG_TLS_INTERNAL, errbuf, sizeof errbuf);
	CHECK(l != NULL);
	cert_release(l);
	cert_release(c);
out:
	certstore_free(cs);
	internal_ca_free(ca);
}

/* with_host: a cert for a chosen (possibly hostile) name, to hit the
 * store's own checks rather than the CA's. */
static struct cert *with_host(const struct cert *c, const char *host)
{
	EVP_PKEY_up_ref(c->key);
	return cert_new(host, X509_dup(c->leaf), c->key, NULL, CFG_TLS_INTERNAL);
}

static void test_store_rejects_paths(void)
{
	struct internal_ca *ca = internal_ca_open(state, errbuf, sizeof errbuf);
	struct certstore *cs = certstore_new(state, ca, errbuf, sizeof errbuf);
	struct cert *c = ca ? internal_ca_issue(ca, "ok.example.test", errbuf, sizeof errbuf) : NULL;
	CHECK(cs && c);
	if (!cs || !c)
		goto out;
	static const char *const bad[] = {"..", ".", "../evil", "../../etc", "a/b", "/abs",
					  "a..b", ".hidden", "x.", "", "a b", "a\\b",
					  "*", "*.", "**.x", "a.*.b", "_wildcard.x", "x\n"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct cert *h = with_host(c, bad[i]);
		errbuf[0] = '\0';
		CHECK(h && certstore_save(cs, h, errbuf, sizeof errbuf) == -1 && errbuf[0]);
		CHECK(certstore_load(cs, bad[i], CFG_TLS_INTERNAL, errbuf, sizeof errbuf) == NULL);
		CHECK(certstore_get_internal(cs, bad[i], errbuf, sizeof errbuf) == NULL);
		cert_release(h);
	}
	char p[512];
	snprintf(p, sizeof p, "%s/evil", state);
	CHECK(access(p, F_OK) != 0);
	snprintf(p, sizeof p, "%s/evil", tmpdir);
	CHECK(access(p, F_OK) != 0);
	/* a too long name */
	char longname[300];
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	CHECK(certstore_load(cs, longname, CFG_TLS_INTERNAL, errbuf, sizeof errbuf) == NULL);
out:
	cert_release(c);
	certstore_free(cs);
	internal_ca_free(ca);
}

/* store_resigned: save c's leaf again with validity [now+nb, now+na],
 * signed by signer, so the store holds a cert of a chosen age. */
static void store_resigned(struct certstore *cs, const struct cert *c, EVP_PKEY *signer,
			   long nb, long na)
{
	X509 *x = X509_dup(c->leaf);
	X509_gmtime_adj(X509_getm_notBefore(x), nb);
	X509_gmtime_adj(X509_getm_notAfter(x), na);
	CHECK(X509_sign(x, signer, EVP_sha256()) > 0);
	STACK_OF(X509) *chain = X509_chain_up_ref(c->chain);
	EVP_PKEY_up_ref(c->key);
	struct cert *d = cert_new(c->host, x, c->key, chain, CFG_TLS_INTERNAL);
	CHECK(d && certstore_save(cs, d, errbuf, sizeof errbuf) == 0);
	cert_release(d);
}

static int same_serial(const struct cert *a, const struct cert *b)
{
	return a && b &&
	       ASN1_INTEGER_cmp(X509_get0_serialNumber(a->leaf), X509_get0_serialNumber(b->leaf)) ==
		       0;
}

static void test_reuse_or_reissue(void)
{
	const char *host = "reuse.example.test";
	struct internal_ca *ca = internal_ca_open(state, errbuf, sizeof errbuf);
	struct certstore *cs = certstore_new(state, ca, errbuf, sizeof errbuf);
	EVP_PKEY *root_key = read_root_key();
	CHECK(ca && cs && root_key);
	if (!ca || !cs || !root_key)
		goto out;
	struct cert *a = certstore_get_internal(cs, host, errbuf, sizeof errbuf);
	struct cert *b = certstore_get_internal(cs, host, errbuf, sizeof errbuf);
	CHECK(a && b && same_serial(a, b)); /* fresh: reused from disk */
	cert_release(b);

	/* 80 of 90 days left: reused */
	store_resigned(cs, a, root_key, -10 * 86400L, 80 * 86400L);
	b = certstore_get_internal(cs, host, errbuf, sizeof errbuf);
	CHECK(same_serial(a, b) && b && b->not_after - time(NULL) > 79 * 86400L);
	cert_release(b);

	/* 10 of 90 days left: reissued and stored */
	store_resigned(cs, a, root_key, -80 * 86400L, 10 * 86400L);
	b = certstore_get_internal(cs, host, errbuf, sizeof errbuf);
	CHECK(b && !same_serial(a, b) && b->not_after - time(NULL) > 89 * 86400L);
	struct cert *l = certstore_load(cs, host, CFG_TLS_INTERNAL, errbuf, sizeof errbuf);
	CHECK(same_serial(l, b));
	cert_release(l);
	cert_release(b);

	/* expired: load says so, get_internal reissues */
	store_resigned(cs, a, root_key, -100 * 86400L, -86400L);
	errbuf[0] = '\0';
	l = certstore_load(cs, host, CFG_TLS_INTERNAL, errbuf, sizeof errbuf);
	CHECK(l == NULL && strstr(errbuf, "expired"));
	b = certstore_get_internal(cs, host, errbuf, sizeof errbuf);
	CHECK(b && !same_serial(a, b));
	cert_release(b);

	/* signed by some other root (the CA was recreated): reissued */
	EVP_PKEY *stranger = EVP_EC_gen("P-256");
	store_resigned(cs, a, stranger, -86400L, 89 * 86400L);
	b = certstore_get_internal(cs, host, errbuf, sizeof errbuf);
	CHECK(b && !same_serial(a, b) && internal_ca_signed(ca, b->leaf));
	CHECK(!internal_ca_signed(ca, NULL));
	cert_release(b);
	EVP_PKEY_free(stranger);

	/* a damaged stored copy is replaced, not fatal */
	char p[512];
	path_of(p, sizeof p, "certs/reuse.example.test/cert.pem");
	FILE *f = fopen(p, "w");
	if (f) {
		fputs("garbage\n", f);
		fclose(f);
	}
	b = certstore_get_internal(cs, host, errbuf, sizeof errbuf);
	CHECK(b != NULL);
	cert_release(b);
	cert_release(a);
out:
	EVP_PKEY_free(root_key);
	certstore_free(cs);
	internal_ca_free(ca);
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/portier-ca-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	/* parents of the state dir are created too */
	snprintf(state, sizeof state, "%s/var/lib/portier", tmpdir);
	test_root_creation();
	test_issue();
	test_ca_recovery();
	test_cert_load_pem_errors();
	test_store_round_trip();
	test_store_rejects_paths();
	test_reuse_or_reissue();
	rm_tree(tmpdir);
	return check_done();
}
