/*
 * acme_hosts.c - per-host ACME state on the main thread. A host's
 * certificate comes from the store when it has one, else from one order that
 * every waiting handshake shares. Failures back off (acme/backoff.h); while
 * a host backs off its handshakes are refused at once and the CA hears
 * nothing. Renewal runs on a timer per host, a third of the lifetime before
 * expiry. Only metadata is kept here: certificates themselves live in the
 * bounded cert index and on disk.
 */
#include "proxy/acme_hosts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "acme/ari.h"
#include "acme/backoff.h"
#include "acme/challenges.h"
#include "acme/client.h"
#include "acme/http.h"
#include "config/rule.h"
#include "proxy/core/clock.h"
#include "proxy/core/log.h"

#define ACME_HOSTS_BUCKETS_MIN 256
/* Renewal due already (a stale stored certificate): spread the orders over
 * this many seconds instead of sending them all at once. */
#define ACME_HOSTS_SPREAD_S 10
/* ARI (RFC 9773): ask about a certificate just issued after a few seconds,
 * about one read from the store after 1 to 6 hours (a restart must not send
 * a burst to the CA), then as the CA's Retry-After says, within bounds. */
#define ACME_HOSTS_ARI_FRESH_S 5
#define ACME_HOSTS_ARI_FIRST_MIN_S 3600
#define ACME_HOSTS_ARI_FIRST_MAX_S (6 * 3600)
#define ACME_HOSTS_ARI_POLL_S (6 * 3600)
#define ACME_HOSTS_ARI_POLL_MIN_S 60
#define ACME_HOSTS_ARI_POLL_MAX_S (24 * 3600)
/* The start-up sweep reads this many meta.json files per loop turn. */
#define ACME_HOSTS_SWEEP_BATCH 256

enum acme_host_state { AH_IDLE, AH_ORDERING, AH_VALID, AH_FAILED };

struct acme_host {
	struct acme_host *next; /* hash chain */
	enum acme_host_state state;
	bool in_order, queued;  /* an order runs / waits for the global caps */
	struct acme_host *queue_next; /* in ah's queue, while queued */
	unsigned failures;
	int64_t next_attempt_ms; /* monotonic; 0 when not backing off */
	int64_t next_attempt_wall;
	time_t not_after, not_before; /* of the certificate served, 0 if none */
	int64_t renew_at;             /* epoch seconds the renewal timer is set for */
	char *issuer, *last_error;
	char *ari_id;                 /* RFC 9773 identifier of that certificate, or NULL */
	struct worker **waiters;
	size_t n_waiters, cap_waiters;
	struct event *wait_timer;  /* acme.on_demand_timeout for the waiters */
	struct event *renew_timer; /* renewal, or the retry of a failed renewal */
	struct event *ari_timer;   /* next renewalInfo question */
	struct acme_hosts *ah;
	char host[];
};

struct acme_hosts {
	struct event_base *base;
	const struct cfg_static *cfg;
	struct certstore *store;
	struct challenges *ch;
	struct acme_hosts_ops ops;
	void *arg;
	struct acme_http *http;
	struct acme_client *client;
	struct backoff_limiter limiter;
	struct event *queue_timer; /* the per-minute cap frees up */
	struct acme_host *queue_head, *queue_tail; /* waiting for the caps, in order */
	struct acme_host **buckets;
	size_t n_buckets, n_hosts;
	/* The start-up sweep: acme host names still to look at. */
	char **sweep;
	size_t n_sweep, i_sweep;
	struct event *sweep_timer;
};

static uint32_t ah_random(void)
{
	uint32_t r = 0;
	RAND_bytes((unsigned char *)&r, sizeof r);
	return r;
}

static void ah_rfc3339(int64_t t, char *out, size_t outlen)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- the table ----------------------------------------------------------- */

static size_t ah_hash(const char *s)
{
	size_t h = 14695981039346656037ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static struct acme_host *ah_find(const struct acme_hosts *ah, const char *host)
{
	if (!ah->n_buckets)
		return NULL;
	for (struct acme_host *h = ah->buckets[ah_hash(host) & (ah->n_buckets - 1)]; h; h = h->next)
		if (!strcmp(h->host, host))
			return h;
	return NULL;
}

static int ah_grow(struct acme_hosts *ah)
{
	size_t n = ah->n_buckets ? ah->n_buckets * 2 : ACME_HOSTS_BUCKETS_MIN;
	struct acme_host **b = calloc(n, sizeof *b);
	if (!b)
		return -1;
	for (size_t i = 0; i < ah->n_buckets; i++) {
		struct acme_host *h = ah->buckets[i];
		while (h) {
			struct acme_host *next = h->next;
			size_t k = ah_hash(h->host) & (n - 1);
			h->next = b[k];
			b[k] = h;
			h = next;
		}
	}
	free(ah->buckets);
	ah->buckets = b;
	ah->n_buckets = n;
	return 0;
}

static struct acme_host *ah_get(struct acme_hosts *ah, const char *host)
{
	struct acme_host *h = ah_find(ah, host);
	if (h)
		return h;
	if (ah->n_hosts >= ah->n_buckets && ah_grow(ah) < 0)
		return NULL;
	size_t len = strlen(host);
	h = calloc(1, sizeof *h + len + 1);
	if (!h)
		return NULL;
	memcpy(h->host, host, len + 1);
	h->ah = ah;
	size_t k = ah_hash(host) & (ah->n_buckets - 1);
	h->next = ah->buckets[k];
	ah->buckets[k] = h;
	ah->n_hosts++;
	return h;
}

static void ah_host_free(struct acme_host *h)
{
	if (h->wait_timer)
		event_free(h->wait_timer);
	if (h->renew_timer)
		event_free(h->renew_timer);
	if (h->ari_timer)
		event_free(h->ari_timer);
	free(h->ari_id);
	free(h->waiters);
	free(h->issuer);
	free(h->last_error);
	free(h);
}

static void ah_remove(struct acme_hosts *ah, struct acme_host *h)
{
	struct acme_host **pp = &ah->buckets[ah_hash(h->host) & (ah->n_buckets - 1)];
	while (*pp != h)
		pp = &(*pp)->next;
	*pp = h->next;
	ah->n_hosts--;
	ah_host_free(h);
}

/* ---- waiters ------------------------------------------------------------- */

static void ah_answer_all(struct acme_host *h, bool ok, const char *err)
{
	struct acme_hosts *ah = h->ah;
	for (size_t i = 0; i < h->n_waiters; i++)
		ah->ops.answer(ah->arg, h->waiters[i], h->host, ok, err);
	h->n_waiters = 0;
	if (h->wait_timer)
		evtimer_del(h->wait_timer);
}

static void ah_on_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct acme_host *h = arg;
	char err[320];
	snprintf(err, sizeof err, "certificate order for %s still running after %llu ms", h->host,
		 (unsigned long long)h->ah->cfg->acme.on_demand_timeout_ms);
	log_warn("acme: %s", err);
	ah_answer_all(h, false, err);
}

static void ah_add_waiter(struct acme_host *h, struct worker *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < h->n_waiters; i++)
		if (h->waiters[i] == w)
			return;
	if (h->n_waiters == h->cap_waiters) {
		size_t cap = h->cap_waiters ? h->cap_waiters * 2 : 4;
		struct worker **v = realloc(h->waiters, cap * sizeof *v);
		if (!v) {
			h->ah->ops.answer(h->ah->arg, w, h->host, false, "out of memory");
			return;
		}
		h->waiters = v;
		h->cap_waiters = cap;
	}
	h->waiters[h->n_waiters++] = w;
	if (!h->wait_timer)
		h->wait_timer = evtimer_new(h->ah->base, ah_on_wait_timeout, h);
	if (h->wait_timer && !evtimer_pending(h->wait_timer, NULL)) {
		uint64_t ms = h->ah->cfg->acme.on_demand_timeout_ms;
		struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
				     .tv_usec = (suseconds_t)(ms % 1000) * 1000};
		evtimer_add(h->wait_timer, &tv);
	}
}

/* ---- orders -------------------------------------------------------------- */

static void ah_start_order(struct acme_host *h);
static void ah_schedule_renewal(struct acme_host *h);

static void ah_set_error(struct acme_host *h, const char *err)
{
	free(h->last_error);
	h->last_error = err ? strdup(err) : NULL;
}

/* ah_queue_timer: wake the queue when the per-minute cap has room again
 * (the concurrency cap frees on an order's end, which kicks it). */
static void ah_queue_timer(struct acme_hosts *ah, int64_t now)
{
	int64_t at = backoff_limiter_free_at(&ah->limiter, now);
	if (at > now && ah->queue_timer && !evtimer_pending(ah->queue_timer, NULL)) {
		struct timeval tv = {.tv_sec = (at - now) / 1000, .tv_usec = ((at - now) % 1000) * 1000};
		evtimer_add(ah->queue_timer, &tv);
	}
}

static void ah_launch(struct acme_host *h);

/* ah_kick: start queued orders, first come first served, as the caps allow. */
static void ah_kick(struct acme_hosts *ah)
{
	int64_t now = clock_mono_ms();
	while (ah->queue_head && backoff_limiter_try(&ah->limiter, now)) {
		struct acme_host *h = ah->queue_head;
		ah->queue_head = h->queue_next;
		if (!ah->queue_head)
			ah->queue_tail = NULL;
		h->queue_next = NULL;
		h->queued = false;
		ah_launch(h);
	}
	if (ah->queue_head)
		ah_queue_timer(ah, now);
}

static void ah_on_queue_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	ah_kick(arg);
}

static void ah_start_order(struct acme_host *h)
{
	struct acme_hosts *ah = h->ah;
	int64_t now = clock_mono_ms();
	h->state = AH_ORDERING;
	if (ah->queue_head || !backoff_limiter_try(&ah->limiter, now)) {
		h->queued = true;
		if (ah->queue_tail)
			ah->queue_tail->queue_next = h;
		else
			ah->queue_head = h;
		ah->queue_tail = h;
		ah_kick(ah); /* the queue's head may go now; else its timer is set */
		return;
	}
	ah_launch(h);
}

/* ah_launch: the order, with a slot already taken from the caps. */
static void ah_launch(struct acme_host *h)
{
	struct acme_hosts *ah = h->ah;
	h->in_order = true;
	log_info("acme: ordering a certificate for %s", h->host);
	char err[256];
	const char *replaces = h->not_after ? h->ari_id : NULL;
	if (acme_client_order(ah->client, h->host, replaces, err, sizeof err) < 0) {
		h->in_order = false;
		backoff_limiter_done(&ah->limiter);
		h->state = h->not_after ? AH_VALID : AH_FAILED;
		ah_set_error(h, err);
		ah_answer_all(h, false, err);
	}
}

static void ah_on_renew_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct acme_host *h = arg;
	struct acme_hosts *ah = h->ah;
	if (!ah->ops.routed(ah->arg, h->host)) {
		if (!h->in_order && !h->queued && !h->n_waiters) {
			log_info("acme: %s is no longer routed; its certificate is not renewed",
				 h->host);
			ah_remove(ah, h);
		}
		return;
	}
	if (!h->in_order && !h->queued) {
		log_info("acme: renewing %s", h->host);
		ah_start_order(h);
	}
}

static void ah_on_ari_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct acme_host *h = arg;
	char err[256];
	if (!h->ari_id || h->in_order || h->queued)
		return; /* a new certificate comes with its own schedule */
	if (acme_client_renewal_info(h->ah->client, h->host, h->ari_id, err, sizeof err) < 0)
		log_warn("acme: %s: %s", h->host, err);
}

static void ah_ari_at(struct acme_host *h, int64_t delay_s)
{
	if (!h->ari_id)
		return;
	if (!h->ari_timer)
		h->ari_timer = evtimer_new(h->ah->base, ah_on_ari_timer, h);
	struct timeval tv = {.tv_sec = (time_t)(delay_s > 0 ? delay_s : 0), .tv_usec = 0};
	if (h->ari_timer)
		evtimer_add(h->ari_timer, &tv);
}

static void ah_timer_at(struct acme_host *h, int64_t delay_s)
{
	if (!h->renew_timer)
		h->renew_timer = evtimer_new(h->ah->base, ah_on_renew_timer, h);
	if (!h->renew_timer)
		return;
	struct timeval tv = {.tv_sec = (time_t)(delay_s > 0 ? delay_s : 0), .tv_usec = 0};
	evtimer_add(h->renew_timer, &tv);
}

static void ah_schedule_renewal(struct acme_host *h)
{
	int64_t at = backoff_renew_at(h->not_before, h->not_after, ah_random());
	int64_t now = clock_wall_ms() / 1000;
	int64_t delay = at - now;
	if (delay <= 0)
		delay = (int64_t)(ah_random() % ACME_HOSTS_SPREAD_S);
	h->renew_at = now + delay;
	ah_timer_at(h, delay);
}

/* ah_set_ari: the certificate's ARI identifier; first question after
 * first_s seconds. */
static void ah_set_ari(struct acme_host *h, const char *id, int64_t first_s)
{
	free(h->ari_id);
	h->ari_id = id && id[0] ? strdup(id) : NULL;
	if (h->ari_timer)
		evtimer_del(h->ari_timer);
	ah_ari_at(h, first_s);
}

static int64_t ah_ari_first_stored(void)
{
	return ACME_HOSTS_ARI_FIRST_MIN_S +
	       (int64_t)(ah_random() % (ACME_HOSTS_ARI_FIRST_MAX_S - ACME_HOSTS_ARI_FIRST_MIN_S));
}

static void ah_ari_done(void *arg, const char *host, const char *cert_id, int64_t start,
			int64_t end, long retry_after_s, const char *err)
{
	struct acme_hosts *ah = arg;
	struct acme_host *h = ah_find(ah, host);
	if (!h || !h->ari_id || strcmp(h->ari_id, cert_id) != 0)
		return; /* about a certificate since replaced */
	int64_t next = retry_after_s > 0 ? retry_after_s : ACME_HOSTS_ARI_POLL_S;
	next = next < ACME_HOSTS_ARI_POLL_MIN_S	  ? ACME_HOSTS_ARI_POLL_MIN_S
	       : next > ACME_HOSTS_ARI_POLL_MAX_S ? ACME_HOSTS_ARI_POLL_MAX_S
						  : next;
	if (err) {
		log_debug("acme: %s: %s", host, err);
		ah_ari_at(h, ACME_HOSTS_ARI_POLL_MAX_S);
		return;
	}
	ah_ari_at(h, next);
	int64_t at = ari_pick(start, end, ah_random());
	int64_t now = clock_wall_ms() / 1000;
	if (h->next_attempt_wall > at && clock_mono_ms() < h->next_attempt_ms)
		at = h->next_attempt_wall; /* a failed renewal's backoff still holds */
	if (at >= h->renew_at || h->in_order || h->queued)
		return;
	char when[32];
	ah_rfc3339(at, when, sizeof when);
	log_info("acme: %s: the CA's renewal window moves the renewal to %s", host, when);
	h->renew_at = at;
	ah_timer_at(h, at - now);
}

static void ah_took_cert(struct acme_host *h, const struct cert *c, int64_t ari_first_s)
{
	char id[ARI_ID_SIZE];
	ah_set_ari(h, ari_cert_id(c->leaf, id, sizeof id) == 0 ? id : NULL, ari_first_s);
	h->not_before = c->not_before;
	h->not_after = c->not_after;
	free(h->issuer);
	h->issuer = c->issuer ? strdup(c->issuer) : NULL;
	h->state = AH_VALID;
	ah_schedule_renewal(h);
}

static void ah_order_done(void *arg, const char *host, struct cert *c, const char *err,
			  long retry_after_s)
{
	struct acme_hosts *ah = arg;
	backoff_limiter_done(&ah->limiter);
	struct acme_host *h = ah_find(ah, host);
	if (!h) {
		cert_release(c);
		ah_kick(ah);
		return;
	}
	h->in_order = false;
	if (c) {
		char serr[512];
		if (certstore_save(ah->store, c, serr, sizeof serr) < 0)
			log_err("acme: %s: certificate issued but not stored: %s", host, serr);
		char when[32];
		ah_rfc3339(c->not_after, when, sizeof when);
		log_info("acme: certificate for %s issued, valid until %s", host, when);
		h->failures = 0;
		h->next_attempt_ms = h->next_attempt_wall = 0;
		ah_set_error(h, NULL);
		ah->ops.publish(ah->arg, c);
		ah_took_cert(h, c, ACME_HOSTS_ARI_FRESH_S);
		cert_release(c);
		ah_answer_all(h, true, NULL);
	} else {
		int64_t now = clock_mono_ms();
		int64_t ra = retry_after_s >= 0 ? now + (int64_t)retry_after_s * 1000 : 0;
		h->failures++;
		h->next_attempt_ms = backoff_next(h->failures, now, ra, ah_random());
		h->next_attempt_wall = clock_wall_ms() / 1000 + (h->next_attempt_ms - now) / 1000;
		ah_set_error(h, err);
		/* A failed renewal keeps serving the certificate it has. */
		h->state = h->not_after > time(NULL) ? AH_VALID : AH_FAILED;
		log_warn("acme: order for %s failed (%u in a row, next attempt in %lld s): %s", host,
			 h->failures, (long long)((h->next_attempt_ms - now) / 1000), err);
		/* Try again in the background when the backoff ends (the timer
		 * drops the host if no tenant routes it by then); the certificate
		 * still served keeps being asked about. */
		ah_timer_at(h, (h->next_attempt_ms - now + 999) / 1000);
		ah_ari_at(h, ACME_HOSTS_ARI_POLL_S);
		ah_answer_all(h, false, err);
	}
	ah_kick(ah);
}

/* ---- the ACME client's view ---------------------------------------------- */

static int ah_chal_put(void *arg, enum acme_chal_type type, const char *host, const char *token,
		       const char *keyauth, char *errbuf, size_t errlen)
{
	struct acme_hosts *ah = arg;
	if (type == ACME_CHAL_HTTP01) {
		if (challenges_put_http01(ah->ch, token, keyauth) == 0)
			return 0;
		snprintf(errbuf, errlen, "cannot publish the http-01 answer for %s", host);
		return -1;
	}
	return challenges_put_alpn(ah->ch, host, keyauth, errbuf, errlen);
}

static void ah_chal_del(void *arg, enum acme_chal_type type, const char *host, const char *token)
{
	struct acme_hosts *ah = arg;
	if (type == ACME_CHAL_HTTP01)
		challenges_del_http01(ah->ch, token);
	else
		challenges_del_alpn(ah->ch, host);
}

static const struct acme_client_ops ah_client_ops = {
	.chal_put = ah_chal_put,
	.chal_del = ah_chal_del,
	.order_done = ah_order_done,
	.ari_done = ah_ari_done,
};

/* ---- the edge's calls ---------------------------------------------------- */

/* ah_from_store: host's stored certificate, published; false if none. An
 * order in flight (a renewal) keeps its state and timers. */
static bool ah_from_store(struct acme_hosts *ah, struct acme_host *h)
{
	char err[256];
	struct cert *c = certstore_load(ah->store, h->host, CFG_TLS_ACME, err, sizeof err);
	if (!c)
		return false;
	ah->ops.publish(ah->arg, c);
	/* The same certificate again (evicted from the index, or first served
	 * after the sweep read its metadata) keeps its renewal time, ARI
	 * schedule and backoff. */
	if (!h->in_order && !h->queued && (c->not_after != h->not_after || !h->ari_id))
		ah_took_cert(h, c, ah_ari_first_stored());
	cert_release(c);
	return true;
}

void acme_hosts_request(struct acme_hosts *ah, struct worker *w, const char *host)
{
	struct acme_host *h = ah_get(ah, host);
	if (!h) {
		if (w)
			ah->ops.answer(ah->arg, w, host, false, "out of memory");
		return;
	}
	/* A certificate on disk (never loaded, or evicted from the bounded index)
	 * is served at once, renewal or not. */
	if ((h->not_after > time(NULL) || !h->in_order) && ah_from_store(ah, h)) {
		if (w)
			ah->ops.answer(ah->arg, w, host, true, NULL);
		return;
	}
	if (h->in_order || h->queued) {
		ah_add_waiter(h, w);
		return;
	}
	if (h->next_attempt_ms && clock_mono_ms() < h->next_attempt_ms) {
		if (w) {
			char err[640];
			snprintf(err, sizeof err, "backing off after %u failed orders: %s", h->failures,
				 h->last_error ? h->last_error : "unknown error");
			ah->ops.answer(ah->arg, w, host, false, err);
		}
		return;
	}
	ah_add_waiter(h, w);
	ah_start_order(h);
}

void acme_hosts_renew(struct acme_hosts *ah, const char *host)
{
	struct acme_host *h = ah_get(ah, host);
	if (!h || h->in_order || h->queued)
		return;
	h->next_attempt_ms = h->next_attempt_wall = 0;
	log_info("acme: renewal of %s requested", host);
	ah_start_order(h);
}

/* ah_acme_exact: whether snap routes host by name to a tls "acme" tenant. */
static bool ah_acme_exact(const struct acme_hosts *ah, const struct route_snapshot *snap,
			  const char *host)
{
	char name[256];
	size_t len = strlen(host);
	const struct cfg_tenant *t = snap ? snapshot_tenant_for_host(snap, host, len) : NULL;
	return t && cfg_tenant_tls(t, ah->cfg) == CFG_TLS_ACME &&
	       snapshot_cert_name(snap, host, len, name, sizeof name) == SNAPSHOT_CLAIM_EXACT;
}

/* ah_each_host: fn for every name a Host() rule of a tls "acme" tenant of
 * snap spells out (the names portier may order certificates for); stops
 * when fn returns false. */
static void ah_each_host(struct acme_hosts *ah, const struct route_snapshot *snap,
			 bool (*fn)(struct acme_hosts *ah, const char *host, void *arg), void *arg)
{
	const struct cfg_tenants *ts = snapshot_tenants(snap);
	for (size_t i = 0; i < ts->n; i++) {
		const struct cfg_tenant *t = &ts->v[i];
		if (cfg_tenant_tls(t, ah->cfg) != CFG_TLS_ACME)
			continue;
		for (size_t r = 0; r < t->n_routes; r++) {
			const struct rule_host *hosts;
			size_t n;
			char err[128];
			if (rule_hosts(t->routes[r].rule, &hosts, &n, err, sizeof err) < 0)
				continue;
			for (size_t k = 0; k < n; k++)
				if (hosts[k].kind == RULE_HOST_EXACT && !fn(ah, hosts[k].value, arg))
					return;
		}
	}
}

static bool ah_route_added(struct acme_hosts *ah, const char *host, void *arg)
{
	const struct route_snapshot *old = arg;
	if (!ah_find(ah, host) && !ah_acme_exact(ah, old, host))
		acme_hosts_request(ah, NULL, host);
	return true;
}

void acme_hosts_routes(struct acme_hosts *ah, const struct route_snapshot *old,
		       const struct route_snapshot *snap)
{
	ah_each_host(ah, snap, ah_route_added, (void *)old);
}

static const char *ah_state_name(const struct acme_host *h)
{
	switch (h->state) {
	case AH_ORDERING:
		return h->not_after > time(NULL) ? "renewing" : "ordering";
	case AH_VALID:
		return "valid";
	case AH_FAILED:
		return "failed";
	case AH_IDLE:
		break;
	}
	return "pending";
}

void acme_hosts_list(struct acme_hosts *ah, json_t *list)
{
	for (size_t i = 0; i < ah->n_buckets; i++) {
		for (struct acme_host *h = ah->buckets[i]; h; h = h->next) {
			char na[32] = "", nx[32] = "";
			if (h->not_after)
				ah_rfc3339(h->not_after, na, sizeof na);
			if (h->next_attempt_wall && clock_mono_ms() < h->next_attempt_ms)
				ah_rfc3339(h->next_attempt_wall, nx, sizeof nx);
			json_array_append_new(
				list, json_pack("{s:s,s:s,s:s?,s:s?,s:s,s:s?,s:s?,s:i}", "host", h->host,
						"source", "acme", "issuer", h->issuer, "not_after",
						na[0] ? na : NULL, "state", ah_state_name(h),
						"last_error", h->last_error, "next_attempt",
						nx[0] ? nx : NULL, "failures", (int)h->failures));
		}
	}
}

/* ---- the start-up sweep -------------------------------------------------- */

static void ah_sweep_free(struct acme_hosts *ah)
{
	for (size_t i = ah->i_sweep; i < ah->n_sweep; i++)
		free(ah->sweep[i]);
	free(ah->sweep);
	ah->sweep = NULL;
	ah->n_sweep = ah->i_sweep = 0;
}

/* ah_sweep_one: schedule the renewal of host's stored certificate from its
 * metadata; without one, order it unless certificates come on demand. */
static void ah_sweep_one(struct acme_hosts *ah, const char *host)
{
	if (ah_find(ah, host))
		return;
	time_t nb, na;
	char issuer[128], ari[ARI_ID_SIZE], err[256];
	if (certstore_validity(ah->store, host, CFG_TLS_ACME, &nb, &na, issuer, sizeof issuer, ari,
			       sizeof ari, err, sizeof err) == 0 &&
	    na > time(NULL)) {
		struct acme_host *h = ah_get(ah, host);
		if (!h)
			return;
		h->not_before = nb;
		h->not_after = na;
		h->issuer = issuer[0] ? strdup(issuer) : NULL;
		h->state = AH_VALID;
		ah_schedule_renewal(h);
		ah_set_ari(h, ari, ah_ari_first_stored());
		return;
	}
	if (!ah->cfg->acme.on_demand)
		acme_hosts_request(ah, NULL, host);
}

static void ah_on_sweep(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct acme_hosts *ah = arg;
	for (size_t k = 0; k < ACME_HOSTS_SWEEP_BATCH && ah->i_sweep < ah->n_sweep; k++) {
		char *host = ah->sweep[ah->i_sweep++];
		ah_sweep_one(ah, host);
		free(host);
	}
	if (ah->i_sweep < ah->n_sweep) {
		struct timeval now = {0, 0};
		evtimer_add(ah->sweep_timer, &now);
		return;
	}
	log_info("acme: %zu hosts with certificates on record", ah->n_hosts);
	ah_sweep_free(ah);
}

/* ah_sweep_add: remember host for the sweep; false when out of memory. */
static bool ah_sweep_add(struct acme_hosts *ah, const char *host, void *arg)
{
	size_t *cap = arg;
	if (ah->n_sweep == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		char **v = realloc(ah->sweep, ncap * sizeof *v);
		if (!v)
			return false;
		ah->sweep = v;
		*cap = ncap;
	}
	if ((ah->sweep[ah->n_sweep] = strdup(host)))
		ah->n_sweep++;
	return true;
}

void acme_hosts_sweep(struct acme_hosts *ah, const struct route_snapshot *snap)
{
	ah_sweep_free(ah);
	size_t cap = 0;
	ah_each_host(ah, snap, ah_sweep_add, &cap);
	if (ah->n_sweep && ah->sweep_timer) {
		struct timeval now = {0, 0};
		evtimer_add(ah->sweep_timer, &now);
	}
}

bool acme_hosts_known(struct acme_hosts *ah, const char *host)
{
	return ah_find(ah, host) != NULL;
}

/* ---- lifecycle ----------------------------------------------------------- */

struct acme_hosts *acme_hosts_new(struct event_base *base, struct evdns_base *dns,
				  const struct cfg_static *cfg, struct certstore *store,
				  struct challenges *ch, const struct acme_hosts_ops *ops, void *arg,
				  char *errbuf, size_t errlen)
{
	struct acme_hosts *ah = calloc(1, sizeof *ah);
	if (!ah) {
		snprintf(errbuf, errlen, "acme: out of memory");
		return NULL;
	}
	ah->base = base;
	ah->cfg = cfg;
	ah->store = store;
	ah->ch = ch;
	ah->ops = *ops;
	ah->arg = arg;
	backoff_limiter_init(&ah->limiter, cfg->acme.max_concurrent_orders,
			     cfg->acme.max_orders_per_minute);
	ah->queue_timer = evtimer_new(base, ah_on_queue_timer, ah);
	ah->sweep_timer = evtimer_new(base, ah_on_sweep, ah);
	ah->http = acme_http_new(base, dns, cfg->acme.ca_bundle, "portier/" PORTIER_VERSION,
				 errbuf, errlen);
	if (!ah->queue_timer || !ah->sweep_timer || !ah->http || ah_grow(ah) < 0)
		goto fail;
	struct acme_client_cfg ccfg = {
		.directory = cfg->acme.directory,
		.email = cfg->acme.email,
		.eab_kid = cfg->acme.eab_kid,
		.eab_hmac = cfg->acme.eab_hmac,
		.http01 = cfg->acme.http01,
		.tlsalpn01 = cfg->acme.tlsalpn01,
		.state_dir = cfg->state_dir,
	};
	ah->client = acme_client_new(base, ah->http, &ccfg, &ah_client_ops, ah, errbuf, errlen);
	if (!ah->client)
		goto fail;
	return ah;
fail:
	acme_hosts_free(ah);
	return NULL;
}

void acme_hosts_free(struct acme_hosts *ah)
{
	if (!ah)
		return;
	acme_client_free(ah->client);
	acme_http_free(ah->http);
	for (size_t i = 0; i < ah->n_buckets; i++) {
		struct acme_host *h = ah->buckets[i];
		while (h) {
			struct acme_host *next = h->next;
			ah_host_free(h);
			h = next;
		}
	}
	free(ah->buckets);
	ah_sweep_free(ah);
	if (ah->sweep_timer)
		event_free(ah->sweep_timer);
	if (ah->queue_timer)
		event_free(ah->queue_timer);
	free(ah);
}
