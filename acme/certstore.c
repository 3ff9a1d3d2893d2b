/*
 * certstore.c - certificates on disk, one directory per host:
 * STATE_DIR/certs/HOST/{cert.pem, key.pem, meta.json}. Host names become
 * directory names only after a strict check, so no name can leave certs/.
 */
#include "acme/certstore.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "config/fileio.h"
#include "acme/ari.h"
#include "acme/pem.h"

/* meta.json is a few hundred bytes; anything near the cap is not ours. */
#define CERTSTORE_META_CAP (64 * 1024)
/* A wildcard's directory: "*.example.com" is stored as "_wildcard.example.com"
 * ('_' cannot start a stored name otherwise, so the two never collide). */
#define CERTSTORE_WILDCARD "_wildcard"

struct certstore {
	char dir[PATH_MAX]; /* STATE_DIR/certs */
	struct internal_ca *ca;
};

/* A host's normalised name and the paths of its files. */
struct certstore_paths {
	char host[256];
	char dir[PATH_MAX];
	char cert[PATH_MAX], key[PATH_MAX], meta[PATH_MAX];
};

static const char *certstore_source_name(enum cfg_tls_mode source)
{
	switch (source) {
	case CFG_TLS_INTERNAL:
		return "internal";
	case CFG_TLS_ACME:
		return "acme";
	case CFG_TLS_FILES:
		return "files";
	default:
		return NULL;
	}
}

/* certstore_name_ok: [a-z0-9.-] labels, no empty label, optional leading
 * "*." - or an IPv6 literal, whose ':' is harmless in a file name. */
static int certstore_name_ok(const char *name)
{
	unsigned char ip[16];
	size_t n = strlen(name);
	if (n == 0 || n > 253)
		return 0;
	if (inet_pton(AF_INET6, name, ip) == 1)
		return 1;
	const char *p = name;
	if (p[0] == '*' && p[1] == '.')
		p += 2;
	if (*p == '\0' || *p == '.' || name[n - 1] == '.')
		return 0;
	for (; *p; p++) {
		int ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
			 (*p == '.' && p[1] != '.');
		if (!ok)
			return 0;
	}
	return 1;
}

/* certstore_paths: validate host (lowercased) and build its paths. */
static int certstore_paths(const struct certstore *cs, const char *host,
			   struct certstore_paths *p, char *errbuf, size_t errlen)
{
	size_t n = strlen(host);
	if (n >= sizeof p->host)
		goto bad;
	for (size_t i = 0; i <= n; i++)
		p->host[i] = (host[i] >= 'A' && host[i] <= 'Z') ? (char)(host[i] - 'A' + 'a') : host[i];
	if (!certstore_name_ok(p->host))
		goto bad;
	int wild = p->host[0] == '*';
	int a = snprintf(p->dir, sizeof p->dir, "%s/%s%s", cs->dir, wild ? CERTSTORE_WILDCARD : "",
			 p->host + wild);
	int b = snprintf(p->cert, sizeof p->cert, "%s/cert.pem", p->dir);
	int c = snprintf(p->key, sizeof p->key, "%s/key.pem", p->dir);
	int d = snprintf(p->meta, sizeof p->meta, "%s/meta.json", p->dir);
	if (a < 0 || b < 0 || c < 0 || d < 0 || (size_t)a >= sizeof p->dir ||
	    (size_t)b >= sizeof p->cert || (size_t)c >= sizeof p->key ||
	    (size_t)d >= sizeof p->meta) {
		snprintf(errbuf, errlen, "certificate path for %s is too long", p->host);
		return -1;
	}
	return 0;
bad:
	snprintf(errbuf, errlen, "\"%.64s\" is not a host name the certificate store accepts",
		 host);
	return -1;
}

struct certstore *certstore_new(const char *state_dir, struct internal_ca *ca, char *errbuf,
				size_t errlen)
{
	struct certstore *cs = calloc(1, sizeof *cs);
	if (!cs) {
		snprintf(errbuf, errlen, "certificate store: out of memory");
		return NULL;
	}
	int n = snprintf(cs->dir, sizeof cs->dir, "%s/certs", state_dir);
	if (n < 0 || (size_t)n >= sizeof cs->dir) {
		snprintf(errbuf, errlen, "state dir path too long: %s", state_dir);
		goto fail;
	}
	if (fileio_mkdirs(state_dir, 0700, 0755, errbuf, errlen) < 0 ||
	    fileio_mkdirs(cs->dir, 0700, 0700, errbuf, errlen) < 0)
		goto fail;
	cs->ca = ca;
	return cs;
fail:
	free(cs);
	return NULL;
}

void certstore_free(struct certstore *cs)
{
	free(cs);
}

/* certstore_rfc3339: t as "2025-01-31T12:00:00Z". */
static void certstore_rfc3339(time_t t, char *out, size_t outcap)
{
	struct tm tm;
	if (!gmtime_r(&t, &tm) || !strftime(out, outcap, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, outcap, "invalid");
}

/* certstore_meta_text: meta.json for c, NULL when out of memory. */
static char *certstore_meta_text(const struct cert *c, const char *source)
{
	char nb[32], na[32];
	certstore_rfc3339(c->not_before, nb, sizeof nb);
	certstore_rfc3339(c->not_after, na, sizeof na);
	char ari[ARI_ID_SIZE];
	bool has_ari = c->source == CFG_TLS_ACME && ari_cert_id(c->leaf, ari, sizeof ari) == 0;
	json_t *meta = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?}", "host", c->host, "source",
				 source, "issuer", c->issuer ? c->issuer : "", "not_before", nb,
				 "not_after", na, "ari_id", has_ari ? ari : NULL);
	char *text = meta ? json_dumps(meta, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	json_decref(meta);
	/* End with a newline, as a text file read by operators should. */
	size_t n = text ? strlen(text) : 0;
	char *line = text ? realloc(text, n + 2) : NULL;
	if (!line) {
		free(text);
		return NULL;
	}
	memcpy(line + n, "\n", 2);
	return line;
}

int certstore_save(struct certstore *cs, const struct cert *c, char *errbuf, size_t errlen)
{
	struct certstore_paths p;
	struct fileio_staged st[3];
	size_t klen = 0, clen = 0;
	char *ktext = NULL, *ctext = NULL, *mtext = NULL;
	int staged = 0, rc = -1;
	const char *source = certstore_source_name(c->source);
	if (!source) {
		snprintf(errbuf, errlen, "certificate for %s has no storable source", c->host);
		return -1;
	}
	if (certstore_paths(cs, c->host, &p, errbuf, errlen) < 0 ||
	    fileio_mkdirs(p.dir, 0700, 0700, errbuf, errlen) < 0)
		return -1;
	ktext = pem_encode_key(c->key, &klen, errbuf, errlen);
	ctext = ktext ? pem_encode_certs(c->leaf, c->chain, &clen, errbuf, errlen) : NULL;
	mtext = ctext ? certstore_meta_text(c, source) : NULL;
	if (ctext && !mtext)
		snprintf(errbuf, errlen, "%s: out of memory", p.meta);
	if (!mtext)
		goto out;
	/* Stage all three, then rename: the window in which a crash leaves a
	 * mixed set is three renames long, and the loader rejects a key that
	 * does not match its certificate, so a mixed set reads as "none". */
	if (fileio_stage(p.dir, "key.pem", ktext, klen, 0600, &st[staged], errbuf, errlen) < 0)
		goto out;
	staged++;
	if (fileio_stage(p.dir, "cert.pem", ctext, clen, 0644, &st[staged], errbuf, errlen) < 0)
		goto out;
	staged++;
	if (fileio_stage(p.dir, "meta.json", mtext, strlen(mtext), 0644, &st[staged], errbuf,
			 errlen) < 0)
		goto out;
	staged++;
	for (int i = 0; i < staged; i++)
		if (fileio_commit(&st[i], errbuf, errlen) < 0)
			goto out;
	rc = fileio_sync_dir(p.dir, errbuf, errlen);
out:
	for (int i = 0; i < staged; i++)
		fileio_abort(&st[i]);
	pem_free_secret(ktext, klen);
	free(ctext);
	free(mtext);
	return rc;
}

/* certstore_time: an RFC 3339 UTC time as certstore_rfc3339 writes it. */
static int certstore_time(const char *s, time_t *out)
{
	struct tm tm = {0};
	const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;
	if (!end || *end)
		return -1;
	*out = timegm(&tm);
	return 0;
}

int certstore_validity(struct certstore *cs, const char *host, enum cfg_tls_mode source,
		       time_t *not_before, time_t *not_after, char *issuer, size_t issuer_len,
		       char *ari_id, size_t ari_len, char *errbuf, size_t errlen)
{
	struct certstore_paths p;
	const char *sname = certstore_source_name(source);
	if (!sname) {
		snprintf(errbuf, errlen, "no certificates are stored for this TLS mode");
		return -1;
	}
	if (certstore_paths(cs, host, &p, errbuf, errlen) < 0)
		return -1;
	size_t len = 0;
	char *text = fileio_read(p.meta, CERTSTORE_META_CAP, &len, errbuf, errlen);
	bool found = text != NULL;
	json_t *meta = text ? json_loadb(text, len, 0, NULL) : NULL;
	free(text);
	const char *m_host = NULL, *m_source = NULL, *nb = NULL, *na = NULL, *iss = NULL,
		   *ari = NULL;
	int rc = -1;
	if (!meta || json_unpack(meta, "{s:s, s:s, s:s, s:s, s?s, s?s}", "host", &m_host, "source",
				 &m_source, "not_before", &nb, "not_after", &na, "issuer", &iss,
				 "ari_id", &ari) < 0 ||
	    strcmp(m_host, p.host) != 0 || strcmp(m_source, sname) != 0 ||
	    certstore_time(nb, not_before) < 0 || certstore_time(na, not_after) < 0) {
		if (found)
			snprintf(errbuf, errlen, "%s: not the metadata of a %s certificate for %s",
				 p.meta, sname, p.host);
	} else {
		if (issuer)
			snprintf(issuer, issuer_len, "%s", iss ? iss : "");
		if (ari_id)
			snprintf(ari_id, ari_len, "%s", ari && strlen(ari) < ari_len ? ari : "");
		rc = 0;
	}
	json_decref(meta);
	return rc;
}

/* certstore_check_meta: meta.json exists, names host and has source. */
static int certstore_check_meta(const struct certstore_paths *p, const char *source,
				char *errbuf, size_t errlen)
{
	size_t len = 0;
	json_error_t jerr;
	char *text = fileio_read(p->meta, CERTSTORE_META_CAP, &len, errbuf, errlen);
	if (!text) {
		if (errno == ENOENT)
			snprintf(errbuf, errlen, "no certificate stored for %s", p->host);
		return -1;
	}
	json_t *meta = json_loadb(text, len, 0, &jerr);
	free(text);
	int rc = -1;
	const char *m_host = NULL, *m_source = NULL;
	if (!meta || json_unpack(meta, "{s:s, s:s}", "host", &m_host, "source", &m_source) < 0)
		snprintf(errbuf, errlen, "%s: not a certificate metadata file", p->meta);
	else if (strcmp(m_host, p->host) != 0)
		snprintf(errbuf, errlen, "%s: names host %s", p->meta, m_host);
	else if (strcmp(m_source, source) != 0)
		snprintf(errbuf, errlen, "certificate stored for %s comes from %s, not %s", p->host,
			 m_source, source);
	else
		rc = 0;
	json_decref(meta);
	return rc;
}

struct cert *certstore_load(struct certstore *cs, const char *host, enum cfg_tls_mode source,
			    char *errbuf, size_t errlen)
{
	struct certstore_paths p;
	char when[32];
	const char *sname = certstore_source_name(source);
	if (!sname) {
		snprintf(errbuf, errlen, "no certificates are stored for this TLS mode");
		return NULL;
	}
	if (certstore_paths(cs, host, &p, errbuf, errlen) < 0 ||
	    certstore_check_meta(&p, sname, errbuf, errlen) < 0)
		return NULL;
	struct cert *c = cert_load_pem(p.host, p.cert, p.key, source, errbuf, errlen);
	if (!c)
		return NULL;
	if (c->not_after <= time(NULL)) {
		certstore_rfc3339(c->not_after, when, sizeof when);
		snprintf(errbuf, errlen, "certificate stored for %s expired at %s", p.host, when);
		goto fail;
	}
	if (!cert_covers(c, p.host)) {
		snprintf(errbuf, errlen, "%s does not cover %s", p.cert, p.host);
		goto fail;
	}
	return c;
fail:
	cert_release(c);
	return NULL;
}

/* certstore_fresh: more than a third of c's lifetime is left (the renewal
 * point RFC 8555 clients use), and its issuer is the CA's current root. */
static int certstore_fresh(const struct certstore *cs, const struct cert *c)
{
	time_t now = time(NULL);
	long long lifetime = (long long)c->not_after - (long long)c->not_before;
	long long left = (long long)c->not_after - (long long)now;
	return lifetime > 0 && left * 3 > lifetime && internal_ca_signed(cs->ca, c->leaf);
}

struct cert *certstore_get_internal(struct certstore *cs, const char *host, char *errbuf,
				    size_t errlen)
{
	char why[512];
	if (!cs->ca) {
		snprintf(errbuf, errlen, "the internal CA is not available");
		return NULL;
	}
	/* A missing or unreadable stored copy is not an error: we reissue. */
	struct cert *c = certstore_load(cs, host, CFG_TLS_INTERNAL, why, sizeof why);
	if (c && certstore_fresh(cs, c))
		return c;
	cert_release(c);
	c = internal_ca_issue(cs->ca, host, errbuf, errlen);
	if (c && certstore_save(cs, c, errbuf, errlen) < 0) {
		cert_release(c);
		return NULL;
	}
	return c;
}
