/*
 * client.c - the ACME account side: the account key on disk, the directory,
 * the nonce pool, and signed requests with their one badNonce retry. Orders
 * (order.c) wait here until the directory and the account are known; one
 * bootstrap serves every order waiting for it.
 */
#include "acme/client_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "acme/ari.h"
#include "acme/csr.h"
#include "acme/pem.h"
#include "config/fileio.h"

/* The account key and the account URL it was registered under (per CA). */
#define ACME_KEY_FILE "account.key"
#define ACME_ACCOUNT_FILE "account.json"
#define ACME_FILE_CAP (64 * 1024)

/* A renewalInfo question (RFC 9773 4) about one host's certificate. */
struct acme_ari {
	struct acme_ari *next;
	struct acme_client *cl;
	struct acme_http_req *req;
	char id[ARI_ID_SIZE];
	char host[];
};

struct acme_call {
	struct acme_client *cl;
	char *url, *payload;
	bool use_jwk;
	unsigned bad_nonces;
	acme_call_cb cb;
	void *arg;
	struct acme_http_req *req;
	struct event *later;     /* a failure before anything was sent, reported from the loop */
	const char *later_error;
};

json_t *acme_json_body(const struct acme_http_resp *r)
{
	if (!r->body_len)
		return NULL;
	json_t *doc = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, NULL);
	if (doc && !json_is_object(doc)) {
		json_decref(doc);
		return NULL;
	}
	return doc;
}

void acme_describe(const char *what, const struct acme_http_resp *r, const struct problem *p,
		   char *out, size_t outlen)
{
	if (p)
		snprintf(out, outlen, "%s: %d %s", what, p->status, p->message);
	else if (r->status == 0)
		snprintf(out, outlen, "%s: CA unreachable: %s", what, r->error ? r->error : "no answer");
	else
		snprintf(out, outlen, "%s: unexpected answer %d from the CA", what, r->status);
}

/* ---- nonces -------------------------------------------------------------- */

static void acme_nonce_keep(struct acme_client *cl, const char *nonce)
{
	if (!nonce || !nonce[0] || strlen(nonce) > 256)
		return;
	if (cl->n_nonces == ACME_NONCES) {
		free(cl->nonces[0]);
		memmove(cl->nonces, cl->nonces + 1, (ACME_NONCES - 1) * sizeof cl->nonces[0]);
		cl->n_nonces--;
	}
	char *copy = strdup(nonce);
	if (copy)
		cl->nonces[cl->n_nonces++] = copy;
}

static char *acme_nonce_take(struct acme_client *cl)
{
	return cl->n_nonces ? cl->nonces[--cl->n_nonces] : NULL;
}

/* ---- signed requests ----------------------------------------------------- */

static void acme_call_send(struct acme_call *c);

static void acme_call_free(struct acme_call *c)
{
	if (c->later)
		event_free(c->later);
	free(c->url);
	free(c->payload);
	free(c);
}

void acme_call_cancel(struct acme_call *c)
{
	if (!c)
		return;
	acme_http_cancel(c->req);
	acme_call_free(c);
}

static void acme_call_finish(struct acme_call *c, const struct acme_http_resp *r,
			     const struct problem *p)
{
	struct acme_client *cl = c->cl;
	acme_call_cb cb = c->cb;
	void *arg = c->arg;
	c->req = NULL;
	acme_call_free(c);
	cb(cl, r, p, arg);
}

static void acme_call_on_response(const struct acme_http_resp *r, void *arg)
{
	struct acme_call *c = arg;
	c->req = NULL;
	acme_nonce_keep(c->cl, r->nonce);
	if (r->status >= 200 && r->status < 300) {
		acme_call_finish(c, r, NULL);
		return;
	}
	if (r->status == 0) {
		acme_call_finish(c, r, NULL);
		return;
	}
	struct problem p;
	problem_parse(r->body, r->body_len, r->status, &p);
	/* badNonce: the answer carries a fresh nonce; one retry with it. */
	if (p.kind == PROBLEM_BAD_NONCE && c->bad_nonces++ < 1) {
		acme_call_send(c);
		return;
	}
	acme_call_finish(c, r, &p);
}

static void acme_call_on_later(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct acme_call *c = arg;
	struct acme_http_resp r = {.error = c->later_error, .body = "", .retry_after_s = -1};
	acme_call_finish(c, &r, NULL);
}

/* acme_call_fail: report error from the loop, never from inside the call
 * that started the request (its caller still holds the call). */
static void acme_call_fail(struct acme_call *c, const char *error)
{
	c->later_error = error;
	if (!c->later)
		c->later = evtimer_new(c->cl->base, acme_call_on_later, c);
	struct timeval now = {0, 0};
	if (c->later)
		evtimer_add(c->later, &now);
	/* else: out of memory and no way to report; the order's deadline ends it */
}

static void acme_call_post(struct acme_call *c, char *nonce)
{
	struct acme_client *cl = c->cl;
	if (!c->use_jwk && !cl->kid) {
		/* Another order found the account gone; this one restarts too. */
		free(nonce);
		acme_call_fail(c, "the account is being registered again");
		return;
	}
	char *body = jws_sign(cl->key, nonce, c->url, c->use_jwk ? NULL : cl->kid, c->payload);
	free(nonce);
	if (!body) {
		acme_call_fail(c, "cannot sign the request");
		return;
	}
	c->req = acme_http_post_jose(cl->http, c->url, body, acme_call_on_response, c);
	free(body);
	if (!c->req)
		acme_call_fail(c, "out of memory");
}

static void acme_call_on_nonce(const struct acme_http_resp *r, void *arg)
{
	struct acme_call *c = arg;
	c->req = NULL;
	if (r->status == 0) {
		acme_call_finish(c, r, NULL);
		return;
	}
	if (!r->nonce || !r->nonce[0]) {
		struct acme_http_resp none = {.error = "newNonce answered without a Replay-Nonce",
					      .body = "", .retry_after_s = r->retry_after_s};
		acme_call_finish(c, &none, NULL);
		return;
	}
	acme_call_post(c, strdup(r->nonce));
}

static void acme_call_send(struct acme_call *c)
{
	char *nonce = acme_nonce_take(c->cl);
	if (nonce) {
		acme_call_post(c, nonce);
		return;
	}
	c->req = acme_http_head(c->cl->http, c->cl->new_nonce, acme_call_on_nonce, c);
	if (!c->req)
		acme_call_fail(c, "out of memory");
}

struct acme_call *acme_call_start(struct acme_client *cl, const char *url,
				  const char *payload_json, bool use_jwk, acme_call_cb cb,
				  void *arg)
{
	struct acme_call *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->cl = cl;
	c->url = strdup(url);
	c->payload = payload_json ? strdup(payload_json) : NULL;
	c->use_jwk = use_jwk;
	c->cb = cb;
	c->arg = arg;
	if (!c->url || (payload_json && !c->payload)) {
		acme_call_free(c);
		return NULL;
	}
	acme_call_send(c);
	return c;
}

/* ---- bootstrap: directory and account ------------------------------------ */

static void acme_ari_unlink(struct acme_ari *a)
{
	struct acme_ari **pp = &a->cl->aris;
	while (*pp && *pp != a)
		pp = &(*pp)->next;
	if (*pp)
		*pp = a->next;
}

/* acme_ari_end: report and free a. */
static void acme_ari_end(struct acme_ari *a, int64_t start, int64_t end, long retry_after_s,
			 const char *err)
{
	struct acme_client *cl = a->cl;
	acme_ari_unlink(a);
	cl->ops.ari_done(cl->arg, a->host, a->id, start, end, retry_after_s, err);
	free(a);
}

static void acme_ari_on_response(const struct acme_http_resp *r, void *arg)
{
	struct acme_ari *a = arg;
	a->req = NULL;
	int64_t start, end;
	char err[512];
	if (r->status == 200 && ari_parse_window(r->body, r->body_len, &start, &end) == 0) {
		acme_ari_end(a, start, end, r->retry_after_s, NULL);
		return;
	}
	if (r->status == 200)
		snprintf(err, sizeof err, "renewalInfo: no valid suggestedWindow");
	else
		acme_describe("renewalInfo", r, NULL, err, sizeof err);
	acme_ari_end(a, 0, 0, r->retry_after_s, err);
}

/* acme_ari_send: GET renewalInfo/ID (unauthenticated, RFC 9773 4.1). */
static void acme_ari_send(struct acme_ari *a)
{
	struct acme_client *cl = a->cl;
	if (!cl->renewal_info) {
		acme_ari_end(a, 0, 0, -1, "the CA offers no renewalInfo");
		return;
	}
	char url[4096];
	size_t n = strlen(cl->renewal_info);
	int w = snprintf(url, sizeof url, "%s%s%s", cl->renewal_info,
			 n && cl->renewal_info[n - 1] == '/' ? "" : "/", a->id);
	a->req = w > 0 && (size_t)w < sizeof url ? acme_http_get(cl->http, url, acme_ari_on_response, a)
						 : NULL;
	if (!a->req)
		acme_ari_end(a, 0, 0, -1, "renewalInfo: cannot send the request");
}

static int acme_dir_take(struct acme_client *cl, const struct acme_http_resp *r, char *err,
			 size_t errlen);

static void acme_ari_on_directory(const struct acme_http_resp *r, void *arg)
{
	struct acme_ari *a = arg;
	a->req = NULL;
	char err[512];
	if (!a->cl->new_order && acme_dir_take(a->cl, r, err, sizeof err) < 0) {
		acme_ari_end(a, 0, 0, r->retry_after_s, err);
		return;
	}
	acme_ari_send(a);
}

int acme_client_renewal_info(struct acme_client *cl, const char *host, const char *cert_id,
			     char *errbuf, size_t errlen)
{
	size_t hlen = strlen(host);
	struct acme_ari *a = strlen(cert_id) < ARI_ID_SIZE ? calloc(1, sizeof *a + hlen + 1) : NULL;
	if (!a) {
		snprintf(errbuf, errlen, "renewalInfo: out of memory or identifier too long");
		return -1;
	}
	a->cl = cl;
	memcpy(a->host, host, hlen + 1);
	memcpy(a->id, cert_id, strlen(cert_id) + 1);
	a->next = cl->aris;
	cl->aris = a;
	if (cl->new_order) {
		acme_ari_send(a);
		return 0;
	}
	/* renewalInfo is unauthenticated: the directory is all it needs (no
	 * account registered just to ask, none lost to an EAB problem). */
	a->req = acme_http_get(cl->http, cl->directory_url, acme_ari_on_directory, a);
	if (!a->req) {
		acme_ari_unlink(a);
		free(a);
		snprintf(errbuf, errlen, "renewalInfo: out of memory");
		return -1;
	}
	return 0;
}

/* acme_boot_report: tell everyone that waited for this bootstrap. Their
 * callbacks may start, end or free anything (a failed order starts a queued
 * one, which starts the next bootstrap), so each round looks again for one
 * of those marked at the start, instead of walking a list that may change. */
static void acme_boot_report(struct acme_client *cl, const char *err)
{
	cl->boot = err ? ACME_BOOT_NONE : ACME_BOOT_READY;
	unsigned seq = ++cl->boot_seq ? cl->boot_seq : ++cl->boot_seq;
	acme_orders_mark_waiting(cl, seq);
	struct acme_order *o;
	while ((o = acme_orders_take_marked(cl, seq)))
		acme_order_booted(o, err);
}

static void acme_boot_on_later(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct acme_client *cl = arg;
	acme_boot_report(cl, cl->boot_err[0] ? cl->boot_err : NULL);
}

/* acme_boot_done: the bootstrap ended (err NULL: ready). Reported from the
 * loop, never from inside the call that started it: an order or question
 * waiting on it may be in the middle of being started. */
static void acme_boot_done(struct acme_client *cl, const char *err)
{
	snprintf(cl->boot_err, sizeof cl->boot_err, "%s", err ? err : "");
	struct timeval now = {0, 0};
	if (cl->boot_timer)
		evtimer_add(cl->boot_timer, &now);
	else
		acme_boot_report(cl, err); /* no timer (out of memory at start): at once */
}

static void acme_account_save(struct acme_client *cl)
{
	json_t *doc = json_pack("{s:s,s:s}", "directory", cl->directory_url, "url", cl->kid);
	char *text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
	char err[256];
	if (text && fileio_write_atomic(cl->account_dir, ACME_ACCOUNT_FILE, text, strlen(text),
					0600, err, sizeof err) < 0)
		fprintf(stderr, "portier: acme: cannot save the account URL: %s\n", err);
	free(text);
	json_decref(doc);
}

/* acme_account_load: the account URL registered for this directory, if any. */
static void acme_account_load(struct acme_client *cl)
{
	char path[PATH_MAX + 32], err[256];
	snprintf(path, sizeof path, "%s/%s", cl->account_dir, ACME_ACCOUNT_FILE);
	size_t len;
	char *text = fileio_read(path, ACME_FILE_CAP, &len, err, sizeof err);
	json_t *doc = text ? json_loadb(text, len, 0, NULL) : NULL;
	const char *dir = json_string_value(json_object_get(doc, "directory"));
	const char *url = json_string_value(json_object_get(doc, "url"));
	if (dir && url && !strcmp(dir, cl->directory_url) && !strncmp(url, "http", 4))
		cl->kid = strdup(url);
	json_decref(doc);
	free(text);
}

void acme_account_forget(struct acme_client *cl)
{
	free(cl->kid);
	cl->kid = NULL;
	if (cl->boot == ACME_BOOT_READY)
		cl->boot = ACME_BOOT_NONE;
}

static void acme_boot_on_account(struct acme_client *cl, const struct acme_http_resp *r,
				 const struct problem *p, void *arg)
{
	(void)arg;
	cl->boot_call = NULL;
	char err[512];
	if (!p && r->status >= 200 && r->status < 300 && r->location &&
	    !strncmp(r->location, "http", 4)) {
		cl->kid = strdup(r->location);
		if (cl->kid) {
			acme_account_save(cl);
			acme_boot_done(cl, NULL);
			return;
		}
	}
	acme_describe("account registration", r, p, err, sizeof err);
	acme_boot_done(cl, err);
}

static void acme_boot_account(struct acme_client *cl)
{
	json_t *payload = json_pack("{s:b}", "termsOfServiceAgreed", 1);
	char err[512] = "account registration: out of memory";
	if (payload && cl->email) {
		char mail[300];
		snprintf(mail, sizeof mail, "mailto:%s", cl->email);
		json_object_set_new(payload, "contact", json_pack("[s]", mail));
	}
	if (payload && cl->eab_kid) {
		json_t *eab = jws_eab(cl->key, cl->eab_kid, cl->eab_hmac, cl->new_account, err,
				      sizeof err);
		if (!eab) {
			json_decref(payload);
			acme_boot_done(cl, err);
			return;
		}
		json_object_set_new(payload, "externalAccountBinding", eab);
	} else if (payload && cl->eab_required) {
		json_decref(payload);
		acme_boot_done(cl, "account registration: the CA requires external account "
				   "binding (externalAccountRequired); set acme.eab");
		return;
	}
	char *text = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
	json_decref(payload);
	cl->boot_call = text ? acme_call_start(cl, cl->new_account, text, true,
					       acme_boot_on_account, NULL)
			     : NULL;
	free(text);
	if (!cl->boot_call)
		acme_boot_done(cl, "account registration: out of memory");
}

static void acme_boot_account_or_done(struct acme_client *cl)
{
	if (cl->kid)
		acme_boot_done(cl, NULL);
	else
		acme_boot_account(cl);
}

/* acme_dir_url: an https (or http) URL from the directory, else NULL. */
static char *acme_dir_url(const json_t *dir, const char *key)
{
	const char *s = json_string_value(json_object_get(dir, key));
	if (!s || (strncmp(s, "https://", 8) && strncmp(s, "http://", 7)) || strlen(s) > 2048)
		return NULL;
	return strdup(s);
}

static void acme_dir_forget(struct acme_client *cl)
{
	free(cl->new_nonce);
	free(cl->new_account);
	free(cl->new_order);
	free(cl->renewal_info);
	cl->new_nonce = cl->new_account = cl->new_order = cl->renewal_info = NULL;
}

/* acme_dir_take: the directory in r, into cl. -1 with a message. */
static int acme_dir_take(struct acme_client *cl, const struct acme_http_resp *r, char *err,
			 size_t errlen)
{
	json_t *dir = r->status == 200 ? acme_json_body(r) : NULL;
	if (!dir) {
		if (r->status == 200)
			snprintf(err, errlen, "directory %s: not a JSON object", cl->directory_url);
		else
			acme_describe("directory", r, NULL, err, errlen);
		return -1;
	}
	acme_dir_forget(cl);
	cl->new_nonce = acme_dir_url(dir, "newNonce");
	cl->new_account = acme_dir_url(dir, "newAccount");
	cl->new_order = acme_dir_url(dir, "newOrder");
	cl->renewal_info = acme_dir_url(dir, "renewalInfo"); /* optional (RFC 9773) */
	cl->eab_required = json_is_true(
		json_object_get(json_object_get(dir, "meta"), "externalAccountRequired"));
	json_decref(dir);
	if (!cl->new_nonce || !cl->new_account || !cl->new_order) {
		acme_dir_forget(cl);
		snprintf(err, errlen, "directory %s lacks newNonce, newAccount or newOrder",
			 cl->directory_url);
		return -1;
	}
	return 0;
}

static void acme_boot_on_directory(const struct acme_http_resp *r, void *arg)
{
	struct acme_client *cl = arg;
	cl->boot_req = NULL;
	char err[512];
	if (acme_dir_take(cl, r, err, sizeof err) < 0) {
		acme_boot_done(cl, err);
		return;
	}
	acme_boot_account_or_done(cl);
}

void acme_boot_start(struct acme_client *cl)
{
	if (cl->boot != ACME_BOOT_NONE)
		return;
	cl->boot = ACME_BOOT_RUNNING;
	if (cl->new_order) {
		acme_boot_account_or_done(cl);
		return;
	}
	cl->boot_req = acme_http_get(cl->http, cl->directory_url, acme_boot_on_directory, cl);
	if (!cl->boot_req)
		acme_boot_done(cl, "directory: out of memory");
}

/* ---- the account key ----------------------------------------------------- */

static EVP_PKEY *acme_key_load_or_create(const char *dir, char *errbuf, size_t errlen)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/%s", dir, ACME_KEY_FILE);
	size_t len;
	char err[256];
	char *text = fileio_read(path, ACME_FILE_CAP, &len, err, sizeof err);
	if (text) {
		EVP_PKEY *key = pem_decode_key(text, len, errbuf, errlen);
		pem_free_secret(text, len);
		char thumb[JWS_THUMBPRINT_SIZE];
		if (key && jws_thumbprint(key, thumb) < 0) {
			snprintf(errbuf, errlen, "%s: not an ECDSA P-256 key", path);
			EVP_PKEY_free(key);
			return NULL;
		}
		return key;
	}
	struct stat st;
	if (stat(path, &st) == 0) {
		snprintf(errbuf, errlen, "%s", err);
		return NULL;
	}
	EVP_PKEY *key = csr_new_key();
	char *pem = key ? pem_encode_key(key, &len, errbuf, errlen) : NULL;
	if (!pem || fileio_write_atomic(dir, ACME_KEY_FILE, pem, len, 0600, errbuf, errlen) < 0) {
		if (pem)
			pem_free_secret(pem, len);
		EVP_PKEY_free(key);
		return NULL;
	}
	pem_free_secret(pem, len);
	return key;
}

/* ---- the client ---------------------------------------------------------- */

static char *acme_strdup_opt(const char *s, bool *oom)
{
	char *d = s ? strdup(s) : NULL;
	if (s && !d)
		*oom = true;
	return d;
}

struct acme_client *acme_client_new(struct event_base *base, struct acme_http *http,
				    const struct acme_client_cfg *cfg,
				    const struct acme_client_ops *ops, void *arg, char *errbuf,
				    size_t errlen)
{
	struct acme_client *cl = calloc(1, sizeof *cl);
	if (!cl) {
		snprintf(errbuf, errlen, "acme: out of memory");
		return NULL;
	}
	cl->base = base;
	cl->http = http;
	cl->ops = *ops;
	cl->arg = arg;
	cl->http01 = cfg->http01;
	cl->tlsalpn01 = cfg->tlsalpn01;
	bool oom = false;
	cl->directory_url = acme_strdup_opt(cfg->directory, &oom);
	cl->email = acme_strdup_opt(cfg->email, &oom);
	cl->eab_kid = acme_strdup_opt(cfg->eab_kid, &oom);
	cl->eab_hmac = acme_strdup_opt(cfg->eab_hmac, &oom);
	int n = snprintf(cl->account_dir, sizeof cl->account_dir, "%s/acme", cfg->state_dir);
	if (oom || !cl->directory_url) {
		snprintf(errbuf, errlen, "acme: out of memory");
		goto fail;
	}
	if (n < 0 || (size_t)n >= sizeof cl->account_dir - 32) {
		snprintf(errbuf, errlen, "acme: state dir path too long");
		goto fail;
	}
	if (fileio_mkdirs(cl->account_dir, 0700, 0700, errbuf, errlen) < 0)
		goto fail;
	cl->key = acme_key_load_or_create(cl->account_dir, errbuf, errlen);
	if (!cl->key || jws_thumbprint(cl->key, cl->thumbprint) < 0) {
		if (cl->key)
			snprintf(errbuf, errlen, "acme: account key is not ECDSA P-256");
		goto fail;
	}
	acme_account_load(cl);
	cl->boot_timer = evtimer_new(base, acme_boot_on_later, cl);
	if (!cl->boot_timer) {
		snprintf(errbuf, errlen, "acme: out of memory");
		goto fail;
	}
	return cl;
fail:
	acme_client_free(cl);
	return NULL;
}

void acme_client_free(struct acme_client *cl)
{
	if (!cl)
		return;
	while (cl->orders)
		acme_order_free(cl->orders);
	while (cl->aris) {
		struct acme_ari *a = cl->aris;
		cl->aris = a->next;
		acme_http_cancel(a->req);
		free(a);
	}
	acme_http_cancel(cl->boot_req);
	acme_call_cancel(cl->boot_call);
	if (cl->boot_timer)
		event_free(cl->boot_timer);
	for (unsigned i = 0; i < cl->n_nonces; i++)
		free(cl->nonces[i]);
	free(cl->directory_url);
	free(cl->email);
	free(cl->eab_kid);
	free(cl->eab_hmac);
	acme_dir_forget(cl);
	free(cl->kid);
	EVP_PKEY_free(cl->key);
	free(cl);
}
