/*
 * limiter.c - run-time limits per tenant: which bucket a request draws
 * from, max_inflight, the 429's headers, and keeping buckets across updates.
 */
#include "proxy/limit/limiter.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proxy/limit/client_table.h"
#include "proxy/limit/gcra.h"

/* One rate limit in force: its parameters, the tenant-wide bucket, and the
 * per-client table when it is per client_ip. */
struct limit_rule {
	struct cfg_rate_limit cfg; /* cfg.set false: no limit here */
	struct gcra_params params;
	struct gcra bucket;
	struct client_table *clients;
};

struct tenant_limits {
	struct cfg_limits base; /* first: the model holds a pointer to it */
	struct limit_rule tenant;
	struct limit_rule *routes; /* one per route of the tenant */
	size_t n_routes;
	uint64_t max_inflight;
	_Atomic uint64_t inflight;
};

int64_t limits_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct tenant_limits *limits_of(const struct cfg_tenant *t)
{
	return (struct tenant_limits *)t->limits;
}

/* ---- building and carrying over ------------------------------------------ */

static void limit_rule_clear(struct limit_rule *r)
{
	client_table_free(r->clients);
	r->clients = NULL;
}

static void limits_free(struct cfg_limits *base)
{
	struct tenant_limits *l = (struct tenant_limits *)base;
	limit_rule_clear(&l->tenant);
	for (size_t i = 0; i < l->n_routes; i++)
		limit_rule_clear(&l->routes[i]);
	free(l->routes);
	free(l);
}

static int limit_rule_init(struct limit_rule *r, const struct cfg_rate_limit *cfg)
{
	memset(r, 0, sizeof *r);
	r->cfg = *cfg;
	if (!cfg->set)
		return 0;
	if (gcra_params_init(&r->params, cfg->average, cfg->period_ms, cfg->burst) < 0) {
		r->cfg.set = false; /* outside what the clock can express: not enforced */
		return 0;
	}
	if (cfg->per_client_ip && !(r->clients = client_table_new(cfg->max_clients)))
		return -1;
	return 0;
}

static bool limit_cfg_equal(const struct cfg_rate_limit *a, const struct cfg_rate_limit *b)
{
	if (a->set != b->set)
		return false;
	return !a->set || (a->average == b->average && a->period_ms == b->period_ms &&
			   a->burst == b->burst && a->per_client_ip == b->per_client_ip &&
			   a->max_clients == b->max_clients && a->ipv6_prefix == b->ipv6_prefix);
}

static bool limits_route_any(const struct limit_rule *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].cfg.set)
			return true;
	return false;
}

/* limits_same: whether t's limits are exactly those l was built for. Routes
 * added or removed do not count when no route has a limit of its own (a
 * host added to a tenant keeps its bucket); route limits are matched by
 * position, so moving a limited route gives the tenant fresh buckets. */
static bool limits_same(const struct tenant_limits *l, const struct cfg_tenant *t)
{
	if (l->max_inflight != t->max_inflight || !limit_cfg_equal(&l->tenant.cfg, &t->rate_limit))
		return false;
	bool t_routes = false;
	for (size_t i = 0; i < t->n_routes; i++)
		t_routes |= t->routes[i].rate_limit.set;
	if (!t_routes && !limits_route_any(l->routes, l->n_routes))
		return true;
	if (l->n_routes != t->n_routes)
		return false;
	for (size_t i = 0; i < t->n_routes; i++)
		if (!limit_cfg_equal(&l->routes[i].cfg, &t->routes[i].rate_limit))
			return false;
	return true;
}

static bool limits_any(const struct cfg_tenant *t)
{
	if (t->rate_limit.set || t->max_inflight)
		return true;
	for (size_t i = 0; i < t->n_routes; i++)
		if (t->routes[i].rate_limit.set)
			return true;
	return false;
}

static struct tenant_limits *limits_new(const struct cfg_tenant *t)
{
	struct tenant_limits *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	atomic_init(&l->base.refs, 1);
	l->base.free = limits_free;
	l->max_inflight = t->max_inflight;
	l->routes = t->n_routes ? calloc(t->n_routes, sizeof *l->routes) : NULL;
	l->n_routes = t->n_routes;
	if ((t->n_routes && !l->routes) || limit_rule_init(&l->tenant, &t->rate_limit) < 0)
		goto fail;
	for (size_t i = 0; i < t->n_routes; i++)
		if (limit_rule_init(&l->routes[i], &t->routes[i].rate_limit) < 0)
			goto fail;
	return l;
fail:
	limits_free(&l->base);
	return NULL;
}

int limits_attach(struct route_snapshot *snap, const struct route_snapshot *old)
{
	struct cfg_tenants *ts = snapshot_tenants_unpublished(snap);
	int rc = 0;
	for (size_t i = 0; i < ts->n; i++) {
		struct cfg_tenant *t = &ts->v[i];
		if (t->limits || !limits_any(t))
			continue;
		const struct cfg_tenant *prev = snapshot_tenant_named(old, t->name);
		struct tenant_limits *pl = prev ? limits_of(prev) : NULL;
		if (pl && limits_same(pl, t)) {
			atomic_fetch_add_explicit(&pl->base.refs, 1, memory_order_relaxed);
			t->limits = &pl->base;
			continue;
		}
		struct tenant_limits *l = limits_new(t);
		if (!l)
			rc = -1;
		else
			t->limits = &l->base;
	}
	return rc;
}

/* ---- the request path ------------------------------------------------------ */

static struct limit_rule *limits_rule(struct tenant_limits *l, const struct cfg_tenant *t,
				      const struct cfg_route *route)
{
	/* l may be shared with a version of t with other routes (none limited). */
	if (route && route >= t->routes && route < t->routes + t->n_routes &&
	    (size_t)(route - t->routes) < l->n_routes) {
		struct limit_rule *r = &l->routes[route - t->routes];
		if (r->cfg.set)
			return r;
	}
	return l->tenant.cfg.set ? &l->tenant : NULL;
}

bool limits_need_client(const struct cfg_tenant *t, const struct cfg_route *route)
{
	struct tenant_limits *l = t->limits ? limits_of(t) : NULL;
	const struct limit_rule *r = l ? limits_rule(l, t, route) : NULL;
	return r && r->clients;
}

uint8_t limits_client_prefix(const struct cfg_tenant *t, const struct cfg_route *route)
{
	struct tenant_limits *l = t->limits ? limits_of(t) : NULL;
	const struct limit_rule *r = l ? limits_rule(l, t, route) : NULL;
	return r ? r->cfg.ipv6_prefix : 64;
}

static uint64_t limits_ceil_s(int64_t ns)
{
	return ns <= 0 ? 0 : (uint64_t)((ns + 999999999) / 1000000000);
}

bool limits_admit(const struct cfg_tenant *t, const struct cfg_route *route,
		  const struct client_key *client, bool to_backend, int64_t now_ns, bool *held,
		  struct limit_answer *a)
{
	*held = false;
	struct tenant_limits *l = t->limits ? limits_of(t) : NULL;
	if (!l)
		return true;
	/* The slot first: a request refused for it must not have taken a token. */
	if (to_backend && l->max_inflight) {
		uint64_t n = atomic_fetch_add_explicit(&l->inflight, 1, memory_order_acq_rel);
		if (n >= l->max_inflight) {
			atomic_fetch_sub_explicit(&l->inflight, 1, memory_order_acq_rel);
			*a = (struct limit_answer){.retry_after_s = 1, .quota = l->max_inflight,
						   .window_s = 1, .policy = "inflight"};
			return false;
		}
		*held = true;
	}
	struct limit_rule *r = limits_rule(l, t, route);
	if (!r)
		return true;
	struct gcra_verdict v;
	bool ok = r->clients ? client_table_take(r->clients, client, &r->params, now_ns, &v)
			     : gcra_take(&r->bucket, &r->params, now_ns, &v);
	if (ok)
		return true;
	if (*held) {
		atomic_fetch_sub_explicit(&l->inflight, 1, memory_order_acq_rel);
		*held = false;
	}
	/* The draft's window is whole seconds: a period that is not is told as
	 * the quota over the nearest whole-second window (50 per 500 ms: q=100;w=1). */
	uint64_t w = (r->cfg.period_ms + 500) / 1000;
	w = w ? w : 1;
	uint64_t q = r->cfg.period_ms == w * 1000
			     ? r->cfg.average
			     : (uint64_t)((double)r->cfg.average * (double)(w * 1000) /
					  (double)r->cfg.period_ms);
	*a = (struct limit_answer){
		.retry_after_s = gcra_retry_after_s(&v),
		.quota = q ? q : 1,
		.window_s = w,
		.remaining = v.remaining,
		.reset_s = limits_ceil_s(v.reset_ns),
		.policy = r == &l->tenant ? (r->clients ? "client" : "tenant") : "route",
	};
	return false;
}

void limits_release(const struct cfg_tenant *t)
{
	struct tenant_limits *l = t->limits ? limits_of(t) : NULL;
	if (l)
		atomic_fetch_sub_explicit(&l->inflight, 1, memory_order_acq_rel);
}

size_t limits_format_429(const struct limit_answer *a, char *out, size_t cap)
{
	int n = snprintf(out, cap,
			 "Retry-After: %ld\r\n"
			 "RateLimit-Policy: \"%s\";q=%" PRIu64 ";w=%" PRIu64 "\r\n"
			 "RateLimit: \"%s\";r=%" PRIu64 ";t=%" PRIu64 "\r\n",
			 a->retry_after_s, a->policy, a->quota, a->window_s, a->policy, a->remaining,
			 a->reset_s);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t limits_clients(const struct cfg_tenant *t)
{
	const struct tenant_limits *l = t->limits ? limits_of(t) : NULL;
	if (!l)
		return 0;
	size_t n = l->tenant.clients ? client_table_size(l->tenant.clients) : 0;
	for (size_t i = 0; i < l->n_routes; i++)
		if (l->routes[i].clients)
			n += client_table_size(l->routes[i].clients);
	return n;
}
