/*
 * tls_conn.c - the handshake of an accepted TLS connection: the ClientHello
 * callback picks the certificate (a tls-alpn-01 challenge answer, or the
 * tenant's from the cert index, or parks while the main thread obtains it),
 * and the finished connection goes to the front ALPN selected.
 */
#include "proxy/tls/tls_conn.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>

#include "acme/challenges.h"
#include "config/snapshot.h"
#include "proxy/core/clock.h"
#include "proxy/core/log.h"
#include "proxy/edge.h"
#include "proxy/http/h1_front.h"
#include "proxy/http/h2_front.h"
#include "proxy/tls/cert_index.h"
#include "proxy/tls/tls_ctx.h"
#include "proxy/tls/tls_wire.h"

struct tls_conn {
	struct tls_conn *next, *prev; /* the worker's handshakes */
	struct worker *w;
	int fd;
	SSL *ssl;
	struct event *io;       /* readiness of fd for SSL_do_handshake */
	short io_what;          /* what io waits for (persistent), 0 when off */
	struct event *deadline; /* handshake must finish by client_header */
	int64_t deadline_ms;    /* when it fires (clock_mono_ms) */
	struct conn_origin origin;
	char sni[256];          /* name being served ("" when none) */
	char cert_host[256];    /* certificate looked up (sni or the default) */
	enum cfg_tls_mode mode;
	bool parked, cert_failed;
	bool waking; /* its certificate answer came; stepped next */
	bool deadline_extended; /* once, for an ACME order (tls_conn_wait_order) */
	bool acme_challenge;    /* serving a tls-alpn-01 certificate: no front after */
};

/* A parked ACME handshake's deadline beyond the main thread's own answer
 * deadline (acme.on_demand_timeout_ms), which it always keeps. */
#define TLS_ACME_MARGIN_MS 2000

static int tls_conn_ex_index = -1;

static void tls_conn_step(struct tls_conn *t);

static struct timeval tls_conn_tv(uint64_t ms)
{
	return (struct timeval){.tv_sec = (time_t)(ms / 1000),
				.tv_usec = (suseconds_t)(ms % 1000) * 1000};
}

static void tls_conn_unlink(struct tls_conn *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else
		t->w->handshakes = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->next = t->prev = NULL;
}

/* tls_conn_free: fd and ssl are closed unless handed on (then -1 / NULL). */
static void tls_conn_free(struct tls_conn *t, const char *why)
{
	if (why)
		log_debug("tls handshake ended: %s", why);
	tls_conn_unlink(t);
	event_free(t->io);
	event_free(t->deadline);
	if (t->ssl)
		SSL_free(t->ssl);
	if (t->fd >= 0)
		close(t->fd);
	struct worker *w = t->w;
	free(t);
	worker_conn_removed(w);
	worker_maybe_finish(w);
}

static void tls_conn_io(evutil_socket_t fd, short what, void *arg)
{
	struct tls_conn *t = arg;
	(void)fd;
	if (what & EV_READ)
		tls_wire_readable(t->ssl);
	tls_conn_step(t);
}

static void tls_conn_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tls_conn_free(arg, "handshake timeout");
}

/* tls_conn_done: hand the connection to the front ALPN selected. */
static void tls_conn_done(struct tls_conn *t)
{
	struct worker *w = t->w;
	int fd = t->fd;
	SSL *ssl = t->ssl;
	/* The handshake's read event goes after the front added its own on
	 * fd: the fd's epoll interest never changes, so no epoll_ctl. */
	struct event *hs_io = t->io;
	struct conn_origin origin = t->origin;
	char sni[256];
	memcpy(sni, t->sni, sizeof sni);
	bool acme_challenge = t->acme_challenge;
	tls_conn_unlink(t);
	event_free(t->deadline);
	free(t);
	worker_conn_removed(w); /* h1_conn_new counts it again */
	SSL_set_ex_data(ssl, tls_conn_ex_index, NULL);
	/* A validator only looks at the certificate; the challenge certificate
	 * never fronts a request, whatever ALPN picked. Only a validator
	 * selects acme-tls/1, and it was answered here. */
	enum tls_alpn alpn = tls_alpn_selected(ssl);
	if (acme_challenge || alpn == TLS_ALPN_ACME_TLS1) {
		event_free(hs_io);
		SSL_free(ssl);
		close(fd);
		worker_maybe_finish(w);
		return;
	}
	if (alpn == TLS_ALPN_H2)
		h2_conn_new(w, fd, ssl, sni, &origin);
	else
		h1_conn_new(w, fd, ssl, sni, &origin, LISTENER_HTTPS);
	event_free(hs_io);
}

/* tls_conn_wait_order: a handshake parked for an ACME certificate may wait
 * for a whole order, longer than client_header: its deadline moves once to
 * on_demand_timeout_ms + TLS_ACME_MARGIN_MS from now, when that is later. */
static void tls_conn_wait_order(struct tls_conn *t)
{
	if (t->deadline_extended)
		return;
	t->deadline_extended = true;
	uint64_t wait = t->w->cfg->acme.on_demand_timeout_ms + TLS_ACME_MARGIN_MS;
	int64_t left = t->deadline_ms - clock_mono_ms();
	if (left >= 0 && (uint64_t)left >= wait)
		return;
	struct timeval tv = tls_conn_tv(wait);
	evtimer_add(t->deadline, &tv); /* re-adding a pending timer moves it */
}

/* tls_conn_watch: wait for what (EV_READ, EV_WRITE, or 0 for nothing).
 * The event persists, so the usual run of reads costs no epoll change. */
static void tls_conn_watch(struct tls_conn *t, short what)
{
	if (what == t->io_what)
		return;
	event_del(t->io);
	t->io_what = what;
	if (!what)
		return;
	event_assign(t->io, t->w->base, t->fd, what | EV_PERSIST, tls_conn_io, t);
	event_add(t->io, NULL);
}

/* tls_conn_flush: send the held flight; false when the connection is gone
 * or waits to be writable for the rest. */
static bool tls_conn_flush(struct tls_conn *t)
{
	int f = tls_wire_flush(t->ssl);
	if (f < 0) {
		tls_conn_free(t, "write error");
		return false;
	}
	if (f == 0) {
		tls_conn_watch(t, EV_WRITE);
		return false;
	}
	return true;
}

static void tls_conn_step(struct tls_conn *t)
{
	if (!tls_conn_flush(t))
		return;
	ERR_clear_error();
	/* A flight leaves in one write, once the handshake waits for the client. */
	tls_wire_cork(t->ssl, true);
	int rc = SSL_do_handshake(t->ssl);
	tls_wire_cork(t->ssl, false);
	if (rc == 1) {
		/* TLS 1.3's session ticket is all that can be held now: it waits
		 * for the first answer. A TLS 1.2 client waits for our Finished. */
		if (SSL_version(t->ssl) != TLS1_3_VERSION && !tls_conn_flush(t))
			return;
		tls_conn_done(t);
		return;
	}
	int err = SSL_get_error(t->ssl, rc);
	short what;
	switch (err) {
	case SSL_ERROR_WANT_READ:
		what = EV_READ;
		break;
	case SSL_ERROR_WANT_WRITE:
		what = EV_WRITE;
		break;
	case SSL_ERROR_WANT_CLIENT_HELLO_CB:
		t->parked = true; /* woken by tls_conn_cert_result */
		tls_conn_watch(t, 0); /* the client has nothing to say meanwhile */
		if (t->mode == CFG_TLS_ACME)
			tls_conn_wait_order(t);
		return;
	default: {
		char buf[160];
		ERR_error_string_n(ERR_peek_error(), buf, sizeof buf);
		tls_wire_flush(t->ssl); /* the alert, if the socket takes it */
		tls_conn_free(t, buf);
		return;
	}
	}
	if (tls_conn_flush(t))
		tls_conn_watch(t, what);
}

int tls_conn_init(void)
{
	tls_conn_ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	return tls_conn_ex_index < 0 ? -1 : 0;
}

void tls_conn_accept(struct worker *w, int fd, const struct conn_origin *o)
{
	struct tls_conn *t = calloc(1, sizeof *t);
	SSL *ssl = t ? SSL_new(edge_ssl_ctx(w->edge)) : NULL;
	if (!ssl) {
		free(t);
		close(fd);
		return;
	}
	t->w = w;
	t->fd = fd;
	t->ssl = ssl;
	t->origin = *o;
	t->io = event_new(w->base, fd, EV_READ | EV_PERSIST, tls_conn_io, t);
	t->io_what = EV_READ;
	t->deadline = evtimer_new(w->base, tls_conn_timeout, t);
	SSL_set_accept_state(ssl);
	/* Whole flights in one read(2) each, not a header then a body per
	 * record. What it reads past the handshake (a request sent with the
	 * client's Finished) stays in the SSL; the front's conn_io takes it. */
	SSL_set_read_ahead(ssl, 1);
	SSL_set_ex_data(ssl, tls_conn_ex_index, t);
	t->next = w->handshakes;
	if (w->handshakes)
		w->handshakes->prev = t;
	w->handshakes = t;
	worker_conn_added(w);
	if (!t->io || !t->deadline || tls_wire_attach(ssl, fd) < 0) {
		tls_conn_free(t, "out of memory");
		return;
	}
	uint64_t ms = w->cfg->timeouts_ms.client_header;
	struct timeval tv = tls_conn_tv(ms);
	t->deadline_ms = clock_mono_ms() + (int64_t)ms;
	evtimer_add(t->deadline, &tv);
	event_add(t->io, NULL);
}

/* tls_conn_pick: the certificate for t->cert_host from the index, or the
 * wildcard one issued for its parent ("*.example.com"), or NULL. */
static struct cert *tls_conn_pick(struct tls_conn *t)
{
	struct cert *c = cert_index_get(t->w->certs, t->cert_host);
	if (c && c->source == t->mode)
		return c;
	const char *dot = strchr(t->cert_host, '.');
	char wild[258];
	if (!dot || (size_t)snprintf(wild, sizeof wild, "*%s", dot) >= sizeof wild)
		return NULL;
	c = cert_index_get(t->w->certs, wild);
	return c && c->source == t->mode && cert_covers(c, t->cert_host) ? c : NULL;
}

/* tls_conn_acme_challenge: serve the tls-alpn-01 certificate for t->sni to
 * a validator, known by offering acme-tls/1 alone (RFC 8737 section 4), so a
 * browser that lists acme-tls/1 among others never gets it. 1 when served,
 * 0 when this is no validator or no challenge waits for the name, -1 when
 * OpenSSL refuses the certificate. */
static int tls_conn_acme_challenge(struct tls_conn *t, SSL *ssl)
{
	t->acme_challenge = false; /* a second ClientHello decides afresh */
	if (!t->sni[0] || !tls_client_hello_acme_only(ssl))
		return 0;
	struct cert *c = challenges_get_alpn(edge_challenges(t->w->edge), t->sni);
	if (!c)
		return 0;
	int ok = SSL_use_cert_and_key(ssl, c->leaf, c->key, NULL, 1) == 1;
	cert_release(c); /* the SSL holds its own references */
	if (!ok)
		return -1;
	t->acme_challenge = true;
	return 1;
}

int tls_conn_client_hello(SSL *ssl, int *alert, void *arg)
{
	(void)arg;
	struct tls_conn *t = SSL_get_ex_data(ssl, tls_conn_ex_index);
	if (!t) {
		*alert = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	struct worker *w = t->w;
	if (t->cert_failed) {
		*alert = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	int n = tls_client_hello_sni(ssl, t->sni, sizeof t->sni);
	if (n < 0) {
		*alert = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_CLIENT_HELLO_ERROR;
	}
	if (n == 0)
		t->sni[0] = '\0';
	/* Before any tenant lookup: the name may be routed by no tenant yet. */
	int served = tls_conn_acme_challenge(t, ssl);
	if (served > 0)
		return SSL_CLIENT_HELLO_SUCCESS;
	if (served < 0) {
		*alert = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	const struct cfg_tenant *tenant =
		n > 0 ? snapshot_tenant_for_host(w->routes, t->sni, (size_t)n) : NULL;
	enum cfg_tls_mode mode = tenant ? cfg_tenant_tls(tenant, w->cfg) : CFG_TLS_OFF;
	if (mode == CFG_TLS_OFF) {
		if (!w->cfg->tls.unknown_sni_default) {
			*alert = SSL_AD_UNRECOGNIZED_NAME;
			return SSL_CLIENT_HELLO_ERROR;
		}
		snprintf(t->cert_host, sizeof t->cert_host, "%s", TLS_DEFAULT_CERT_HOST);
		mode = CFG_TLS_INTERNAL;
	} else {
		memcpy(t->cert_host, t->sni, sizeof t->cert_host);
	}
	t->mode = mode;
	struct cert *c = tls_conn_pick(t);
	if (c) {
		if (SSL_use_cert_and_key(ssl, c->leaf, c->key, c->chain, 1) != 1) {
			*alert = SSL_AD_INTERNAL_ERROR;
			return SSL_CLIENT_HELLO_ERROR;
		}
		return SSL_CLIENT_HELLO_SUCCESS;
	}
	/* Not at hand: ask the main thread once per host, park until it answers. */
	bool asked = false;
	for (struct tls_conn *o = w->handshakes; o; o = o->next)
		if (o != t && o->parked && strcmp(o->cert_host, t->cert_host) == 0)
			asked = true;
	if (!asked)
		worker_request_cert(w, t->cert_host, mode);
	return SSL_CLIENT_HELLO_RETRY;
}

void tls_conn_cert_result(struct worker *w, const char *host, int ok)
{
	/* Unpark all first: one that parks again when stepped (its certificate
	 * still missing) must ask again, not wait behind the others' old request. */
	for (struct tls_conn *t = w->handshakes; t; t = t->next)
		if (t->parked && strcmp(t->cert_host, host) == 0) {
			t->parked = false;
			t->waking = true;
			t->cert_failed = !ok;
		}
	struct tls_conn *t = w->handshakes;
	while (t) {
		struct tls_conn *next = t->next; /* stepping frees at most t itself */
		if (t->waking) {
			t->waking = false;
			tls_conn_step(t);
		}
		t = next;
	}
}

void tls_conn_drain(struct worker *w)
{
	while (w->handshakes)
		tls_conn_free(w->handshakes, "shutting down");
}
