/*
 * order.c - one certificate order (RFC 8555 section 7.4) as a state machine:
 * newOrder, each authorization with one challenge we can answer, polling
 * until the CA has validated it, finalize with a CSR for a fresh key,
 * polling until issued, and the chain download. Every step is one signed
 * request; the order never blocks and is bounded by a deadline.
 */
#include "acme/client_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acme/ari.h"
#include "acme/csr.h"
#include "acme/pem.h"

/* Identifiers per order are one, so authorizations are one; a CA answering
 * with more than this is not doing what we asked. */
#define ORDER_AUTHZ_MAX 4
/* Whole order, whatever the CA does (polls included). */
#define ORDER_DEADLINE_MS (180 * 1000)
/* Polling: first after 25 ms, doubling to 2 s (a validation takes pebble
 * ~5 ms and a public CA seconds: a few cheap polls early, then few at all);
 * a Retry-After from the CA is honoured up to 10 s. */
#define ORDER_POLL_FIRST_MS 25
#define ORDER_POLL_MAX_MS 2000
#define ORDER_POLL_RETRY_AFTER_MAX_S 10
#define ORDER_URL_MAX 2048

enum order_step {
	ORDER_BOOT,        /* waiting for the directory and account */
	ORDER_NEW,         /* newOrder sent */
	ORDER_AUTHZ,       /* fetching authorization i_authz */
	ORDER_CHALLENGE,   /* told the CA to validate */
	ORDER_POLL_AUTHZ,  /* waiting for the validation */
	ORDER_FINALIZE,    /* CSR sent */
	ORDER_POLL_ORDER,  /* waiting for issuance */
	ORDER_DOWNLOAD,    /* fetching the chain */
};

struct acme_order {
	struct acme_order *next, *prev;
	struct acme_client *cl;
	enum order_step step;
	bool reregistered;        /* the CA forgot the account once already */
	unsigned boot_mark;       /* waits for the bootstrap numbered so */
	struct acme_call *call;
	struct event *poll, *deadline;
	int poll_ms;
	char *url, *finalize, *certificate;
	char *authz[ORDER_AUTHZ_MAX];
	unsigned n_authz, i_authz;
	/* The challenge being answered. */
	enum acme_chal_type chal_type;
	char *chal_token;
	bool chal_published;
	EVP_PKEY *cert_key;
	char replaces[ARI_ID_SIZE]; /* "" when not a renewal */
	char host[256];
};

static void order_step_next(struct acme_order *o);
static void order_new(struct acme_order *o);

/* order_msg: an operator message; a long host or CA text is cut, not an error. */
__attribute__((format(printf, 3, 4))) static void order_msg(char *out, size_t outlen,
							      const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out, outlen, fmt, ap);
	va_end(ap);
}

void acme_orders_mark_waiting(struct acme_client *cl, unsigned seq)
{
	for (struct acme_order *o = cl->orders; o; o = o->next)
		o->boot_mark = o->step == ORDER_BOOT ? seq : 0;
}

struct acme_order *acme_orders_take_marked(struct acme_client *cl, unsigned seq)
{
	for (struct acme_order *o = cl->orders; o; o = o->next)
		if (o->step == ORDER_BOOT && o->boot_mark == seq) {
			o->boot_mark = 0;
			return o;
		}
	return NULL;
}

static void order_unpublish(struct acme_order *o)
{
	if (o->chal_published)
		o->cl->ops.chal_del(o->cl->arg, o->chal_type, o->host, o->chal_token);
	o->chal_published = false;
	free(o->chal_token);
	o->chal_token = NULL;
}

void acme_order_free(struct acme_order *o)
{
	struct acme_client *cl = o->cl;
	if (o->prev)
		o->prev->next = o->next;
	else
		cl->orders = o->next;
	if (o->next)
		o->next->prev = o->prev;
	order_unpublish(o);
	acme_call_cancel(o->call);
	if (o->poll)
		event_free(o->poll);
	if (o->deadline)
		event_free(o->deadline);
	free(o->url);
	free(o->finalize);
	free(o->certificate);
	for (unsigned i = 0; i < o->n_authz; i++)
		free(o->authz[i]);
	EVP_PKEY_free(o->cert_key);
	free(o);
}

/* order_end: report and free; c is handed to the callback. */
static void order_end(struct acme_order *o, struct cert *c, const char *err, long retry_after_s)
{
	struct acme_client *cl = o->cl;
	char host[256];
	memcpy(host, o->host, sizeof host);
	acme_order_free(o);
	cl->ops.order_done(cl->arg, host, c, err, retry_after_s);
}

static void order_fail(struct acme_order *o, const char *err, long retry_after_s)
{
	order_end(o, NULL, err, retry_after_s);
}

static void order_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct acme_order *o = arg;
	char err[128];
	order_msg(err, sizeof err, "order did not complete within %d s", ORDER_DEADLINE_MS / 1000);
	order_fail(o, err, -1);
}

static char *order_url(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));
	if (!s || (strncmp(s, "https://", 8) && strncmp(s, "http://", 7)) ||
	    strlen(s) > ORDER_URL_MAX)
		return NULL;
	return strdup(s);
}

/* order_answer_ok: common handling of a step's answer. false when the order
 * ended or restarted here (do nothing more). */
static bool order_answer_ok(struct acme_order *o, const char *what,
			    const struct acme_http_resp *r, const struct problem *p)
{
	o->call = NULL;
	if (p && p->kind == PROBLEM_ACCOUNT_MISSING && !o->reregistered) {
		/* The CA lost the account (a test CA restarted, or it was
		 * deactivated): register again, then start the order over. */
		o->reregistered = true;
		order_unpublish(o);
		acme_account_forget(o->cl);
		o->step = ORDER_BOOT;
		acme_boot_start(o->cl);
		return false;
	}
	if (p || r->status < 200 || r->status >= 300) {
		char err[512];
		acme_describe(what, r, p, err, sizeof err);
		order_fail(o, err, r->retry_after_s);
		return false;
	}
	return true;
}

static void order_call(struct acme_order *o, enum order_step step, const char *url,
		       const char *payload, acme_call_cb cb)
{
	o->step = step;
	o->call = acme_call_start(o->cl, url, payload, false, cb, o);
	if (!o->call)
		order_fail(o, "out of memory", -1);
}

/* order_poll_later: run order_step_next after the poll delay. */
static void order_on_poll(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	order_step_next(arg);
}

static void order_poll_later(struct acme_order *o, long retry_after_s)
{
	int ms = o->poll_ms;
	if (retry_after_s > 0)
		ms = (int)(retry_after_s > ORDER_POLL_RETRY_AFTER_MAX_S ? ORDER_POLL_RETRY_AFTER_MAX_S
									: retry_after_s) *
		     1000;
	o->poll_ms = o->poll_ms * 2 > ORDER_POLL_MAX_MS ? ORDER_POLL_MAX_MS : o->poll_ms * 2;
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	evtimer_add(o->poll, &tv);
}

/* ---- download ------------------------------------------------------------ */

static void order_on_download(struct acme_client *cl, const struct acme_http_resp *r,
			      const struct problem *p, void *arg)
{
	(void)cl;
	struct acme_order *o = arg;
	if (!order_answer_ok(o, "certificate download", r, p))
		return;
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	char err[512], why[256];
	if (pem_decode_certs(r->body, r->body_len, &leaf, &chain, why, sizeof why) < 0) {
		order_msg(err, sizeof err, "certificate download: %s", why);
		order_fail(o, err, -1);
		return;
	}
	if (X509_check_private_key(leaf, o->cert_key) != 1) {
		X509_free(leaf);
		sk_X509_pop_free(chain, X509_free);
		order_fail(o, "certificate download: the certificate does not match our key", -1);
		return;
	}
	struct cert *c = cert_new(o->host, leaf, o->cert_key, chain, CFG_TLS_ACME);
	if (!c) {
		order_fail(o, "out of memory", -1);
		return;
	}
	o->cert_key = NULL; /* the cert owns it */
	if (!cert_covers(c, o->host)) {
		cert_release(c);
		order_fail(o, "certificate download: the certificate does not name the host", -1);
		return;
	}
	order_end(o, c, NULL, -1);
}

/* ---- finalize and the order's status ------------------------------------- */

static void order_on_order(struct acme_client *cl, const struct acme_http_resp *r,
			   const struct problem *p, void *arg)
{
	(void)cl;
	struct acme_order *o = arg;
	if (!order_answer_ok(o, o->step == ORDER_FINALIZE ? "finalize" : "order", r, p))
		return;
	json_t *doc = acme_json_body(r);
	const char *status = json_string_value(json_object_get(doc, "status"));
	char err[512];
	if (status && !strcmp(status, "valid")) {
		free(o->certificate);
		o->certificate = order_url(doc, "certificate");
		json_decref(doc);
		if (!o->certificate) {
			order_fail(o, "order is valid but names no certificate URL", -1);
			return;
		}
		order_call(o, ORDER_DOWNLOAD, o->certificate, NULL, order_on_download);
		return;
	}
	if (status && (!strcmp(status, "processing") || !strcmp(status, "ready"))) {
		json_decref(doc);
		o->step = ORDER_POLL_ORDER;
		order_poll_later(o, r->retry_after_s);
		return;
	}
	struct problem op;
	json_t *e = json_object_get(doc, "error");
	char *etext = e ? json_dumps(e, JSON_COMPACT) : NULL;
	if (etext) {
		problem_parse(etext, strlen(etext), 403, &op);
		order_msg(err, sizeof err, "order %s: %s", status ? status : "invalid", op.message);
	} else {
		order_msg(err, sizeof err, "order status %s", status ? status : "missing");
	}
	free(etext);
	json_decref(doc);
	order_fail(o, err, r->retry_after_s);
}

static void order_finalize(struct acme_order *o)
{
	char err[512], why[256];
	unsigned char *der = NULL;
	size_t der_len = 0;
	char *b64 = NULL;
	o->cert_key = csr_new_key();
	if (!o->cert_key || csr_new(o->host, o->cert_key, &der, &der_len, &b64, why, sizeof why) < 0) {
		order_msg(err, sizeof err, "CSR: %s", o->cert_key ? why : "cannot make a key");
		order_fail(o, err, -1);
		return;
	}
	free(der);
	json_t *payload = json_pack("{s:s}", "csr", b64);
	free(b64);
	char *text = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
	json_decref(payload);
	if (!text) {
		order_fail(o, "out of memory", -1);
		return;
	}
	o->poll_ms = ORDER_POLL_FIRST_MS;
	order_call(o, ORDER_FINALIZE, o->finalize, text, order_on_order);
	free(text);
}

/* ---- authorizations and challenges --------------------------------------- */

static void order_authz_next(struct acme_order *o)
{
	order_unpublish(o);
	if (++o->i_authz < o->n_authz) {
		order_step_next(o);
		return;
	}
	order_finalize(o);
}

/* order_authz_error: the reason the CA gives for an invalid authorization. */
static void order_authz_error(const json_t *authz, const char *status, const char *host,
			      char *err, size_t errlen)
{
	const json_t *chals = json_object_get(authz, "challenges");
	for (size_t i = 0; i < json_array_size(chals); i++) {
		json_t *e = json_object_get(json_array_get(chals, i), "error");
		char *text = e ? json_dumps(e, JSON_COMPACT) : NULL;
		if (!text)
			continue;
		struct problem p;
		problem_parse(text, strlen(text), 403, &p);
		free(text);
		order_msg(err, errlen, "validation of %s failed (%s): %s", host,
			 json_string_value(json_object_get(json_array_get(chals, i), "type")),
			 p.message);
		return;
	}
	order_msg(err, errlen, "authorization for %s is %s", host, status ? status : "missing");
}

/* order_pick_challenge: the first challenge we may answer, preferring
 * tls-alpn-01 (it needs nothing but the HTTPS listener). */
static const json_t *order_pick_challenge(struct acme_order *o, const json_t *authz)
{
	const json_t *chals = json_object_get(authz, "challenges");
	static const struct {
		const char *name;
		enum acme_chal_type type;
	} prefs[] = {{"tls-alpn-01", ACME_CHAL_TLSALPN01}, {"http-01", ACME_CHAL_HTTP01}};
	for (size_t k = 0; k < sizeof prefs / sizeof prefs[0]; k++) {
		if ((prefs[k].type == ACME_CHAL_TLSALPN01 && !o->cl->tlsalpn01) ||
		    (prefs[k].type == ACME_CHAL_HTTP01 && !o->cl->http01))
			continue;
		for (size_t i = 0; i < json_array_size(chals); i++) {
			const json_t *c = json_array_get(chals, i);
			const char *type = json_string_value(json_object_get(c, "type"));
			if (type && !strcmp(type, prefs[k].name)) {
				o->chal_type = prefs[k].type;
				return c;
			}
		}
	}
	return NULL;
}

static void order_on_challenge(struct acme_client *cl, const struct acme_http_resp *r,
			       const struct problem *p, void *arg)
{
	(void)cl;
	struct acme_order *o = arg;
	if (!order_answer_ok(o, "challenge", r, p))
		return;
	o->step = ORDER_POLL_AUTHZ;
	o->poll_ms = ORDER_POLL_FIRST_MS;
	order_poll_later(o, r->retry_after_s);
}

/* order_answer: publish the answer to authz's challenge and tell the CA. */
static void order_answer(struct acme_order *o, const json_t *authz)
{
	char err[512];
	const json_t *chal = order_pick_challenge(o, authz);
	const char *token = json_string_value(json_object_get(chal, "token"));
	char *url = chal ? order_url(chal, "url") : NULL;
	if (!chal || !token || !url) {
		free(url);
		order_msg(err, sizeof err, "the CA offers no %s challenge for %s",
			 o->cl->tlsalpn01 && o->cl->http01 ? "tls-alpn-01 or http-01"
			 : o->cl->tlsalpn01		  ? "tls-alpn-01"
							  : "http-01",
			 o->host);
		order_fail(o, err, -1);
		return;
	}
	char *keyauth = jws_key_authorization(token, o->cl->key);
	o->chal_token = strdup(token);
	if (!keyauth || !o->chal_token ||
	    o->cl->ops.chal_put(o->cl->arg, o->chal_type, o->host, token, keyauth, err,
				sizeof err) < 0) {
		if (!keyauth || !o->chal_token)
			order_msg(err, sizeof err, "challenge token from the CA is not usable");
		free(keyauth);
		free(url);
		order_fail(o, err, -1);
		return;
	}
	free(keyauth);
	o->chal_published = true;
	order_call(o, ORDER_CHALLENGE, url, "{}", order_on_challenge);
	free(url);
}

static void order_on_authz(struct acme_client *cl, const struct acme_http_resp *r,
			   const struct problem *p, void *arg)
{
	(void)cl;
	struct acme_order *o = arg;
	if (!order_answer_ok(o, "authorization", r, p))
		return;
	json_t *authz = acme_json_body(r);
	const char *status = json_string_value(json_object_get(authz, "status"));
	char err[512];
	if (status && !strcmp(status, "valid")) {
		json_decref(authz);
		order_authz_next(o);
		return;
	}
	if (status && !strcmp(status, "pending") && o->step == ORDER_AUTHZ) {
		order_answer(o, authz);
		json_decref(authz);
		return;
	}
	if (status && (!strcmp(status, "pending") || !strcmp(status, "processing"))) {
		json_decref(authz);
		order_poll_later(o, r->retry_after_s);
		return;
	}
	order_authz_error(authz, status, o->host, err, sizeof err);
	json_decref(authz);
	order_fail(o, err, r->retry_after_s);
}

/* ---- newOrder ------------------------------------------------------------ */

static void order_on_new(struct acme_client *cl, const struct acme_http_resp *r,
			 const struct problem *p, void *arg)
{
	(void)cl;
	struct acme_order *o = arg;
	if (p && o->replaces[0] && p->kind != PROBLEM_ACCOUNT_MISSING) {
		/* "replaces" refused (alreadyReplaced, another account or CA): the
		 * renewal goes on as a plain order rather than failing for ever. */
		o->call = NULL;
		o->replaces[0] = '\0';
		order_new(o);
		return;
	}
	if (!order_answer_ok(o, "new order", r, p))
		return;
	json_t *doc = acme_json_body(r);
	const json_t *authz = json_object_get(doc, "authorizations");
	free(o->url);
	o->url = r->location && strlen(r->location) <= ORDER_URL_MAX ? strdup(r->location) : NULL;
	free(o->finalize);
	o->finalize = order_url(doc, "finalize");
	for (unsigned i = 0; i < o->n_authz; i++)
		free(o->authz[i]);
	o->n_authz = o->i_authz = 0;
	size_t n = json_array_size(authz);
	bool ok = o->url && o->finalize && n >= 1 && n <= ORDER_AUTHZ_MAX;
	for (size_t i = 0; ok && i < n; i++) {
		const char *u = json_string_value(json_array_get(authz, i));
		ok = u && (!strncmp(u, "https://", 8) || !strncmp(u, "http://", 7)) &&
		     strlen(u) <= ORDER_URL_MAX && (o->authz[o->n_authz] = strdup(u));
		if (ok)
			o->n_authz++;
	}
	json_decref(doc);
	if (!ok) {
		order_fail(o, "new order: the CA's answer lacks its URL, finalize or authorizations",
			   -1);
		return;
	}
	order_step_next(o);
}

static void order_new(struct acme_order *o)
{
	json_t *payload = json_pack("{s:[{s:s,s:s}]}", "identifiers", "type", "dns", "value",
				    o->host);
	if (payload && o->replaces[0] && o->cl->renewal_info)
		json_object_set_new(payload, "replaces", json_string(o->replaces));
	char *text = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
	json_decref(payload);
	if (!text) {
		order_fail(o, "out of memory", -1);
		return;
	}
	order_call(o, ORDER_NEW, o->cl->new_order, text, order_on_new);
	free(text);
}

/* order_step_next: the request that follows the current step. */
static void order_step_next(struct acme_order *o)
{
	switch (o->step) {
	case ORDER_BOOT:
		order_new(o);
		return;
	case ORDER_NEW:
	case ORDER_AUTHZ:
		order_call(o, ORDER_AUTHZ, o->authz[o->i_authz], NULL, order_on_authz);
		return;
	case ORDER_POLL_AUTHZ:
		o->call = acme_call_start(o->cl, o->authz[o->i_authz], NULL, false, order_on_authz, o);
		if (!o->call)
			order_fail(o, "out of memory", -1);
		return;
	case ORDER_POLL_ORDER:
		o->call = acme_call_start(o->cl, o->url, NULL, false, order_on_order, o);
		if (!o->call)
			order_fail(o, "out of memory", -1);
		return;
	case ORDER_CHALLENGE:
	case ORDER_FINALIZE:
	case ORDER_DOWNLOAD:
		break;
	}
}

void acme_order_booted(struct acme_order *o, const char *err)
{
	if (err)
		order_fail(o, err, -1);
	else
		order_new(o);
}

int acme_client_order(struct acme_client *cl, const char *host, const char *replaces,
		      char *errbuf, size_t errlen)
{
	struct acme_order *o = calloc(1, sizeof *o);
	if (!o || strlen(host) >= sizeof o->host) {
		free(o);
		order_msg(errbuf, errlen, "%s", o ? "host name too long" : "out of memory");
		return -1;
	}
	o->cl = cl;
	memcpy(o->host, host, strlen(host) + 1);
	if (replaces && strlen(replaces) < sizeof o->replaces)
		memcpy(o->replaces, replaces, strlen(replaces) + 1);
	o->poll_ms = ORDER_POLL_FIRST_MS;
	o->poll = evtimer_new(cl->base, order_on_poll, o);
	o->deadline = evtimer_new(cl->base, order_on_deadline, o);
	o->next = cl->orders;
	if (cl->orders)
		cl->orders->prev = o;
	cl->orders = o;
	if (!o->poll || !o->deadline) {
		acme_order_free(o);
		order_msg(errbuf, errlen, "out of memory");
		return -1;
	}
	struct timeval tv = {.tv_sec = ORDER_DEADLINE_MS / 1000, .tv_usec = 0};
	evtimer_add(o->deadline, &tv);
	o->step = ORDER_BOOT;
	if (cl->boot == ACME_BOOT_READY)
		order_new(o);
	else
		acme_boot_start(cl);
	return 0;
}
