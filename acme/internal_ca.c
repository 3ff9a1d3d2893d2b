/*
 * internal_ca.c - portier's local CA: an ECDSA P-256 root created once in
 * STATE_DIR/ca/, and leaf certificates issued from it in well under a
 * millisecond (this runs on the main thread at a host's first handshake).
 */
#include "acme/internal_ca.h"
#include "acme/san.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "config/fileio.h"
#include "acme/pem.h"

#define CA_ROOT_DAYS (10 * 365)
#define CA_LEAF_DAYS 90
/* Leaves start an hour in the past so clients with a slow clock accept them. */
#define CA_BACKDATE_SECS 3600
/* RFC 5280: a CN is at most 64 characters. */
#define CA_CN_MAX 64

struct internal_ca {
	struct cert *root; /* root certificate and its key */
	char root_path[PATH_MAX];
	char key_path[PATH_MAX];
};

/* ca_serial: a random positive 128-bit serial (RFC 5280 allows 20 octets;
 * random serials keep two leaves from ever sharing one). */
static int ca_serial(X509 *x)
{
	unsigned char buf[16];
	int ok = 0;
	if (RAND_bytes(buf, sizeof buf) != 1)
		return 0;
	buf[0] &= 0x7f;
	buf[0] |= 0x01; /* no leading zero octet: DER stays 16 bytes */
	BIGNUM *bn = BN_bin2bn(buf, sizeof buf, NULL);
	if (bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
		ok = 1;
	BN_free(bn);
	return ok;
}

/* ca_add_ext: add one extension written in OpenSSL's config syntax; only
 * used with fixed strings, never with host names. */
static int ca_add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
	int ok = ext && X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

/* ca_new_cert: an X509 v3 with a random serial, subject and key set. */
static X509 *ca_new_cert(X509_NAME *subject, EVP_PKEY *key)
{
	X509 *x = X509_new();
	if (!x || !X509_set_version(x, X509_VERSION_3) || !ca_serial(x) ||
	    !X509_set_subject_name(x, subject) || !X509_set_pubkey(x, key)) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* ca_printable: a non-empty name of plain ASCII, safe in a CN as it is. */
static int ca_printable(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '-'))
			return 0;
	return 1;
}

/* ca_root_name: "portier internal CA (HOSTNAME)", or a random suffix when the
 * host name says nothing (containers, "localhost"). */
static X509_NAME *ca_root_name(void)
{
	char host[256] = "", cn[CA_CN_MAX + 1];
	if (gethostname(host, sizeof host - 1) < 0 || !ca_printable(host) ||
	    !strcmp(host, "localhost")) {
		unsigned char r[4];
		if (RAND_bytes(r, sizeof r) != 1)
			return NULL;
		snprintf(host, sizeof host, "%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
	}
	snprintf(cn, sizeof cn, "portier internal CA (%.*s)", CA_CN_MAX - 23, host);
	X509_NAME *name = X509_NAME_new();
	if (!name ||
	    !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"portier",
					-1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
					-1, 0)) {
		X509_NAME_free(name);
		return NULL;
	}
	return name;
}

/* ca_make_root: a fresh self-signed root and its key. */
static struct cert *ca_make_root(char *errbuf, size_t errlen)
{
	char reason[160];
	X509V3_CTX v3;
	X509 *x = NULL;
	X509_NAME *name = ca_root_name();
	EVP_PKEY *key = EVP_EC_gen("P-256");
	if (!name || !key || !(x = ca_new_cert(name, key)) || !X509_set_issuer_name(x, name) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -CA_BACKDATE_SECS) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), CA_ROOT_DAYS, 0, NULL))
		goto fail;
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	/* pathlen:0 - the root signs leaves directly, never another CA. */
	if (!ca_add_ext(x, &v3, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
	    !ca_add_ext(x, &v3, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    !ca_add_ext(x, &v3, NID_subject_key_identifier, "hash") ||
	    !X509_sign(x, key, EVP_sha256()))
		goto fail;
	X509_NAME_free(name);
	struct cert *root = cert_new("portier-internal-ca", x, key, NULL, CFG_TLS_INTERNAL);
	if (!root)
		snprintf(errbuf, errlen, "internal CA: out of memory");
	return root;
fail:
	snprintf(errbuf, errlen, "internal CA: cannot create the root: %s",
		 pem_ssl_reason(reason, sizeof reason));
	X509_NAME_free(name);
	EVP_PKEY_free(key);
	X509_free(x);
	return NULL;
}

/* ca_write_root: root.key then root.pem, each atomically. The key goes first:
 * a crash in between leaves a key without a certificate, which the next
 * start replaces (no client can trust a root that was never written). */
static int ca_write_root(const struct internal_ca *ca, const char *dir, char *errbuf,
			 size_t errlen)
{
	size_t klen = 0, clen = 0;
	char *ktext = pem_encode_key(ca->root->key, &klen, errbuf, errlen);
	char *ctext = ktext ? pem_encode_certs(ca->root->leaf, NULL, &clen, errbuf, errlen) : NULL;
	int rc = -1;
	if (ctext && fileio_write_atomic(dir, "root.key", ktext, klen, 0600, errbuf, errlen) == 0 &&
	    fileio_write_atomic(dir, "root.pem", ctext, clen, 0644, errbuf, errlen) == 0)
		rc = 0;
	pem_free_secret(ktext, klen);
	free(ctext);
	return rc;
}

/* ca_check_root: a loaded root must be able to sign leaves. */
static int ca_check_root(const struct internal_ca *ca, char *errbuf, size_t errlen)
{
	if (X509_check_ca(ca->root->leaf) != 1) {
		snprintf(errbuf, errlen, "%s is not a CA certificate", ca->root_path);
		return -1;
	}
	if (ca->root->not_after <= time(NULL)) {
		snprintf(errbuf, errlen,
			 "%s has expired; move %s and %s away to create a new root",
			 ca->root_path, ca->root_path, ca->key_path);
		return -1;
	}
	return 0;
}

/* ca_paths: STATE_DIR/ca and the two file paths in it. */
static int ca_paths(struct internal_ca *ca, const char *state_dir, char *dir, size_t dirlen)
{
	int a = snprintf(dir, dirlen, "%s/ca", state_dir);
	int b = snprintf(ca->root_path, sizeof ca->root_path, "%s/root.pem", dir);
	int c = snprintf(ca->key_path, sizeof ca->key_path, "%s/root.key", dir);
	return a > 0 && b > 0 && c > 0 && (size_t)a < dirlen && (size_t)b < sizeof ca->root_path &&
			       (size_t)c < sizeof ca->key_path
		       ? 0
		       : -1;
}

struct internal_ca *internal_ca_open(const char *state_dir, char *errbuf, size_t errlen)
{
	char dir[PATH_MAX];
	struct stat sb;
	struct internal_ca *ca = calloc(1, sizeof *ca);
	if (!ca) {
		snprintf(errbuf, errlen, "internal CA: out of memory");
		return NULL;
	}
	if (ca_paths(ca, state_dir, dir, sizeof dir) < 0) {
		snprintf(errbuf, errlen, "state dir path too long: %s", state_dir);
		goto fail;
	}
	/* The state dir holds keys: private itself; parents the usual 0755. */
	if (fileio_mkdirs(state_dir, 0700, 0755, errbuf, errlen) < 0 ||
	    fileio_mkdirs(dir, 0700, 0700, errbuf, errlen) < 0)
		goto fail;

	if (stat(ca->root_path, &sb) == 0) {
		if (stat(ca->key_path, &sb) < 0) {
			snprintf(errbuf, errlen,
				 "%s exists but %s is missing (%s); restore the key, or move "
				 "root.pem away to create a new root",
				 ca->root_path, ca->key_path, strerror(errno));
			goto fail;
		}
		ca->root = cert_load_pem("portier-internal-ca", ca->root_path, ca->key_path,
					 CFG_TLS_INTERNAL, errbuf, errlen);
		if (!ca->root || ca_check_root(ca, errbuf, errlen) < 0)
			goto fail;
		return ca;
	}
	if (errno != ENOENT) {
		snprintf(errbuf, errlen, "%s: %s", ca->root_path, strerror(errno));
		goto fail;
	}
	ca->root = ca_make_root(errbuf, errlen);
	if (!ca->root || ca_write_root(ca, dir, errbuf, errlen) < 0)
		goto fail;
	return ca;
fail:
	internal_ca_free(ca);
	return NULL;
}

void internal_ca_free(struct internal_ca *ca)
{
	if (!ca)
		return;
	cert_release(ca->root);
	free(ca);
}

const char *internal_ca_root_path(const struct internal_ca *ca)
{
	return ca->root_path;
}

int internal_ca_signed(const struct internal_ca *ca, X509 *leaf)
{
	if (!ca || !leaf)
		return 0;
	int ok = X509_check_issued(ca->root->leaf, leaf) == X509_V_OK &&
		 X509_verify(leaf, ca->root->key) == 1;
	ERR_clear_error();
	return ok;
}

/* ca_host_kind: normalise host into out (lowercase) and say whether it is a
 * DNS name (GEN_DNS) or an IP literal (GEN_IPADD); -1 if it is neither. */
static int ca_host_kind(const char *host, char *out, size_t outcap)
{
	unsigned char ip[16];
	size_t n = strlen(host);
	if (n == 0 || n > 253 || n >= outcap)
		return -1;
	if (inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1) {
		memcpy(out, host, n + 1);
		return GEN_IPADD;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)host[i];
		if (ch >= 'A' && ch <= 'Z')
			ch = (unsigned char)(ch - 'A' + 'a');
		int ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
			 (ch == '.' && i > 0 && out[i - 1] != '.') ||
			 (ch == '*' && i == 0 && host[1] == '.');
		if (!ok)
			return -1;
		out[i] = (char)ch;
	}
	out[n] = '\0';
	return out[n - 1] == '.' ? -1 : GEN_DNS;
}

/* ca_leaf_subject: CN=host when it fits in a CN, else an empty subject (the
 * SAN then carries the name alone and is marked critical, RFC 5280 4.2.1.6). */
static X509_NAME *ca_leaf_subject(const char *host)
{
	X509_NAME *name = X509_NAME_new();
	if (name && strlen(host) <= CA_CN_MAX &&
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)host, -1,
					-1, 0)) {
		X509_NAME_free(name);
		return NULL;
	}
	return name;
}

/* ca_leaf_validity: now - 1h .. now + 90d, never beyond the root's end. */
static int ca_leaf_validity(const struct internal_ca *ca, X509 *x)
{
	time_t now = time(NULL);
	time_t end = now + (time_t)CA_LEAF_DAYS * 86400;
	if (end > ca->root->not_after)
		end = ca->root->not_after;
	return X509_time_adj(X509_getm_notBefore(x), -CA_BACKDATE_SECS, &now) &&
	       X509_time_adj(X509_getm_notAfter(x), 0, &end);
}

struct cert *internal_ca_issue(struct internal_ca *ca, const char *host, char *errbuf,
			       size_t errlen)
{
	char name[256], reason[160];
	X509V3_CTX v3;
	X509 *x = NULL;
	X509_NAME *subject = NULL;
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *key = NULL;
	int kind = ca_host_kind(host, name, sizeof name);
	if (kind < 0) {
		snprintf(errbuf, errlen, "internal CA: \"%.64s\" is not a host name or IP address",
			 host);
		return NULL;
	}
	subject = ca_leaf_subject(name);
	key = EVP_EC_gen("P-256");
	if (!subject || !key || !(x = ca_new_cert(subject, key)) ||
	    !X509_set_issuer_name(x, X509_get_subject_name(ca->root->leaf)) ||
	    !ca_leaf_validity(ca, x) || !san_add(x, name, kind, strlen(name) > CA_CN_MAX))
		goto fail;
	X509V3_set_ctx(&v3, ca->root->leaf, x, NULL, NULL, 0);
	if (!ca_add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE") ||
	    !ca_add_ext(x, &v3, NID_key_usage, "critical,digitalSignature") ||
	    !ca_add_ext(x, &v3, NID_ext_key_usage, "serverAuth") ||
	    !ca_add_ext(x, &v3, NID_subject_key_identifier, "hash") ||
	    !ca_add_ext(x, &v3, NID_authority_key_identifier, "keyid:always") ||
	    !X509_sign(x, ca->root->key, EVP_sha256()))
		goto fail;
	chain = sk_X509_new_null();
	if (!chain || !X509_up_ref(ca->root->leaf))
		goto fail;
	if (!sk_X509_push(chain, ca->root->leaf)) {
		X509_free(ca->root->leaf);
		goto fail;
	}
	X509_NAME_free(subject);
	struct cert *c = cert_new(name, x, key, chain, CFG_TLS_INTERNAL);
	if (!c)
		snprintf(errbuf, errlen, "internal CA: out of memory");
	return c;
fail:
	snprintf(errbuf, errlen, "internal CA: cannot issue a certificate for %s: %s", name,
		 pem_ssl_reason(reason, sizeof reason));
	X509_NAME_free(subject);
	EVP_PKEY_free(key);
	X509_free(x);
	sk_X509_pop_free(chain, X509_free);
	return NULL;
}
