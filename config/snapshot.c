/*
 * snapshot.c - the compiled routing table.
 *
 * Built on the main thread from validated tenants: host isolation between
 * tenants is checked first (a host, exact or wildcard, belongs to one tenant),
 * then routes are ranked once by priority so that matching is a merge of a few
 * short, pre-sorted candidate lists:
 *
 *   exact map     "a.example.com" -> ranks of routes claiming that host
 *   wildcard map  ".example.com"  -> ranks of routes claiming *.example.com
 *   per tenant    ranks of its routes with a HostRegexp claim
 *
 * The owner of a request's host (exact, then wildcard, then the first regex
 * claim in tenant order) is decided first and only its routes compete, so a
 * regex can never take traffic from a host another tenant routes, even where
 * the build-time checks cannot prove two claims disjoint (regex vs wildcard).
 *
 * Readers never allocate or lock; the table is immutable once published and
 * freed by the last snapshot_release.
 */
#include "config/snapshot.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "config/tenant_load.h"

#define SNAP_NONE UINT32_MAX

/* A hash table slot. Keys point into strings the snapshot owns (rule hosts,
 * tenant names). `first`/`count` select ranks in route_snapshot.ranks. */
struct snap_slot {
	uint64_t hash;
	const char *key; /* NULL: empty slot */
	uint32_t len;
	uint32_t owner;  /* tenant index */
	uint32_t first, count;
	/* Build time only: the claims behind owner (and, in the parent map,
	 * a claim of a second owner) for conflict messages, and the last rank
	 * filed in this bucket so a route claiming a host twice is filed once. */
	uint32_t claim, other_claim, last_rank;
};

/* Open addressing with linear probing; capacity is a power of two at least
 * twice the key count, so probes stay short and the table never fills. */
struct snap_map {
	struct snap_slot *slots;
	size_t mask;
};

struct snap_route {
	const struct cfg_tenant *tenant;
	const struct cfg_route *route;
	struct cfg_service *service;
	uint32_t tenant_idx, route_idx;
	size_t rule_len;
};

struct snap_regex_claim {
	uint32_t tenant_idx;
	const struct rule_host *host;
};

struct route_snapshot {
	_Atomic uint32_t refs;
	uint64_t generation;
	uint64_t seed;
	struct cfg_tenants tenants;
	struct snap_route *routes; /* by rank: priority desc, then tie-breaks */
	size_t n_routes;
	struct snap_map exact, wild, names;
	uint32_t *ranks; /* bucket storage for exact, wild and tenant_regex */
	struct { uint32_t first, count; } *tenant_regex; /* per tenant */
	struct snap_regex_claim *regex_claims;          /* in tenant order */
	size_t n_regex_claims;
};

/* ---- hashing and the map ------------------------------------------- */

/* snap_hash: FNV-1a seeded per snapshot, finished with a 64-bit mixer so
 * the low bits used for the index depend on every input byte. */
static uint64_t snap_hash(uint64_t seed, const char *key, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull ^ seed;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 0x100000001b3ull;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

static int snap_map_init(struct snap_map *m, size_t n_keys)
{
	size_t cap = 8;

	while (cap < n_keys * 2)
		cap *= 2;
	if (!(m->slots = calloc(cap, sizeof(*m->slots))))
		return -1;
	m->mask = cap - 1;
	return 0;
}

static void snap_map_free(struct snap_map *m)
{
	free(m->slots);
	m->slots = NULL;
	m->mask = 0;
}

static const struct snap_slot *snap_map_find(const struct snap_map *m, uint64_t seed,
					     const char *key, size_t len)
{
	uint64_t h = snap_hash(seed, key, len);

	for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
		const struct snap_slot *sl = &m->slots[i];
		if (!sl->key)
			return NULL;
		if (sl->hash == h && sl->len == len && memcmp(sl->key, key, len) == 0)
			return sl;
	}
}

/* snap_map_insert: the slot for key, created (owner = SNAP_NONE) if new. The
 * map was sized for every key, so there is always a free slot. */
static struct snap_slot *snap_map_insert(struct snap_map *m, uint64_t seed, const char *key,
					 size_t len)
{
	uint64_t h = snap_hash(seed, key, len);

	for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
		struct snap_slot *sl = &m->slots[i];
		if (!sl->key) {
			sl->key = key;
			sl->len = (uint32_t)len;
			sl->hash = h;
			sl->owner = SNAP_NONE;
			sl->claim = sl->other_claim = sl->last_rank = SNAP_NONE;
			return sl;
		}
		if (sl->hash == h && sl->len == len && memcmp(sl->key, key, len) == 0)
			return sl;
	}
}

/* ---- building: claims and isolation -------------------------------- */

struct snap_claim {
	uint32_t tenant_idx, route_idx;
	const struct rule_host *host;
};

/* snap_build: what building needs beyond the snapshot itself. */
struct snap_build {
	struct route_snapshot *s;
	const struct cfg_tenants *tenants;
	struct cfg_err *err;
	struct snap_claim *claims;
	size_t n_claims;
	struct snap_map parent;  /* ".example.com" -> owners of exact hosts below it */
	uint32_t *exact_claims;  /* indexes into claims, in tenant order */
	size_t n_exact_claims;
};

static const char *snap_tenant_name(const struct snap_build *b, uint32_t idx)
{
	return b->tenants->v[idx].name;
}

/* snap_conflict: a 409 on the rule of claim c. */
static int snap_conflict(struct snap_build *b, const struct snap_claim *c, uint32_t other,
			 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int snap_conflict(struct snap_build *b, const struct snap_claim *c, uint32_t other,
			 const char *fmt, ...)
{
	char field[sizeof(b->err->field)], msg[sizeof(b->err->message)];
	va_list ap;

	snprintf(field, sizeof(field), "tenants.%s.routes[%u].rule", snap_tenant_name(b, c->tenant_idx),
		 c->route_idx);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cfg_err_set(b->err, 409, field, "%s", msg);
	if (b->err)
		snprintf(b->err->tenant, sizeof(b->err->tenant), "%s", snap_tenant_name(b, other));
	return -1;
}

/* snap_parent: ".example.com" for "a.example.com", or NULL when the host has
 * a single label. */
static const char *snap_parent(const char *host, size_t len, size_t *plen)
{
	const char *dot = memchr(host, '.', len);

	if (!dot || dot == host || (size_t)(dot - host) + 1 >= len)
		return NULL;
	*plen = len - (size_t)(dot - host);
	return dot;
}

static int snap_claim_exact(struct snap_build *b, uint32_t ci)
{
	const struct snap_claim *c = &b->claims[ci];
	const char *host = c->host->value, *parent;
	size_t len = strlen(host), plen;
	struct snap_slot *sl = snap_map_insert(&b->s->exact, b->s->seed, host, len);

	if (sl->owner == SNAP_NONE) {
		sl->owner = c->tenant_idx;
		sl->claim = ci;
	} else if (sl->owner != c->tenant_idx) {
		return snap_conflict(b, c, sl->owner, "host %s is already routed by tenant '%s'", host,
				     snap_tenant_name(b, sl->owner));
	}
	if ((parent = snap_parent(host, len, &plen))) {
		const struct snap_slot *w = snap_map_find(&b->s->wild, b->s->seed, parent, plen);
		struct snap_slot *ps;

		if (w && w->owner != c->tenant_idx)
			return snap_conflict(b, c, w->owner,
					     "host %s is already routed by tenant '%s' (wildcard *%s)",
					     host, snap_tenant_name(b, w->owner), parent);
		ps = snap_map_insert(&b->parent, b->s->seed, parent, plen);
		if (ps->owner == SNAP_NONE) {
			ps->owner = c->tenant_idx;
			ps->claim = ci;
		} else if (ps->owner != c->tenant_idx && ps->other_claim == SNAP_NONE) {
			ps->other_claim = ci;
		}
	}
	for (size_t i = 0; i < b->s->n_regex_claims; i++) {
		const struct snap_regex_claim *rc = &b->s->regex_claims[i];
		if (rc->tenant_idx != c->tenant_idx && rule_host_matches(rc->host, host, len))
			return snap_conflict(b, c, rc->tenant_idx,
					     "host %s is already routed by tenant '%s' (HostRegexp `%s`)",
					     host, snap_tenant_name(b, rc->tenant_idx), rc->host->value);
	}
	b->exact_claims[b->n_exact_claims++] = ci;
	return 0;
}

static int snap_claim_wildcard(struct snap_build *b, uint32_t ci)
{
	const struct snap_claim *c = &b->claims[ci];
	const char *suffix = c->host->value + 1; /* "*.example.com" -> ".example.com" */
	size_t len = strlen(suffix);
	struct snap_slot *sl = snap_map_insert(&b->s->wild, b->s->seed, suffix, len);
	const struct snap_slot *ps;

	if (sl->owner == SNAP_NONE) {
		sl->owner = c->tenant_idx;
		sl->claim = ci;
	} else if (sl->owner != c->tenant_idx) {
		return snap_conflict(b, c, sl->owner, "host %s is already routed by tenant '%s'",
				     c->host->value, snap_tenant_name(b, sl->owner));
	}
	ps = snap_map_find(&b->parent, b->s->seed, suffix, len);
	if (ps) {
		/* Any exact host below of another tenant: the first owner, or the
		 * second one recorded when the first is this tenant. */
		uint32_t other = ps->owner != c->tenant_idx ? ps->claim : ps->other_claim;
		if (other != SNAP_NONE) {
			const struct snap_claim *oc = &b->claims[other];
			return snap_conflict(b, c, oc->tenant_idx,
					     "wildcard %s would take host %s, which is already routed by tenant '%s'",
					     c->host->value, oc->host->value,
					     snap_tenant_name(b, oc->tenant_idx));
		}
	}
	return 0;
}

static int snap_claim_regex(struct snap_build *b, uint32_t ci)
{
	const struct snap_claim *c = &b->claims[ci];
	struct snap_regex_claim *rc;

	for (size_t i = 0; i < b->n_exact_claims; i++) {
		const struct snap_claim *oc = &b->claims[b->exact_claims[i]];
		const char *host = oc->host->value;
		if (oc->tenant_idx != c->tenant_idx &&
		    rule_host_matches(c->host, host, strlen(host)))
			return snap_conflict(b, c, oc->tenant_idx,
					     "HostRegexp `%s` would take host %s, which is already routed by tenant '%s'",
					     c->host->value, host, snap_tenant_name(b, oc->tenant_idx));
	}
	rc = &b->s->regex_claims[b->s->n_regex_claims++];
	rc->tenant_idx = c->tenant_idx;
	rc->host = c->host;
	return 0;
}

/* snap_collect_claims: every host of every route, in tenant and route order;
 * also checks the route/service links for tenants not built by the loader. */
static int snap_collect_claims(struct snap_build *b)
{
	const struct cfg_tenants *ts = b->tenants;
	size_t n = 0, cap = 0;

	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t t = 0; t < ts->n; t++) {
			for (uint32_t r = 0; r < ts->v[t].n_routes; r++) {
				const struct cfg_route *route = &ts->v[t].routes[r];
				const struct rule_host *hosts;
				size_t nh;
				char msg[256] = "";

				if (!route->rule || route->service_idx >= ts->v[t].n_services ||
				    rule_hosts(route->rule, &hosts, &nh, msg, sizeof(msg)) < 0) {
					char field[sizeof(b->err->field)];
					snprintf(field, sizeof(field), "tenants.%s.routes[%u].rule",
						 ts->v[t].name, r);
					cfg_err_set(b->err, 400, field, "%s",
						    msg[0] ? msg : "route without a compiled rule or service");
					return -1;
				}
				for (size_t i = 0; pass == 1 && i < nh; i++)
					b->claims[n++] = (struct snap_claim){t, r, &hosts[i]};
				if (pass == 0)
					cap += nh;
			}
		}
		if (pass == 0) {
			b->claims = calloc(cap ? cap : 1, sizeof(*b->claims));
			b->exact_claims = calloc(cap ? cap : 1, sizeof(*b->exact_claims));
			b->s->regex_claims = calloc(cap ? cap : 1, sizeof(*b->s->regex_claims));
			if (!b->claims || !b->exact_claims || !b->s->regex_claims) {
				cfg_err_set(b->err, 500, "", "out of memory");
				return -1;
			}
		}
	}
	b->n_claims = n;
	return 0;
}

static int snap_check_names(struct snap_build *b)
{
	struct route_snapshot *s = b->s;

	for (uint32_t t = 0; t < b->tenants->n; t++) {
		const char *name = b->tenants->v[t].name;
		struct snap_slot *sl;
		char field[sizeof(b->err->field)];

		if (!name) {
			cfg_err_set(b->err, 400, "tenants", "tenant without a name");
			return -1;
		}
		sl = snap_map_insert(&s->names, s->seed, name, strlen(name));
		if (sl->owner != SNAP_NONE) {
			snprintf(field, sizeof(field), "tenants.%s", name);
			cfg_err_set(b->err, 409, field, "tenant '%s' is defined twice", name);
			return -1;
		}
		sl->owner = t;
	}
	return 0;
}

static int snap_check_isolation(struct snap_build *b)
{
	size_t n_exact = 0, n_wild = 0;

	for (size_t i = 0; i < b->n_claims; i++) {
		n_exact += b->claims[i].host->kind == RULE_HOST_EXACT;
		n_wild += b->claims[i].host->kind == RULE_HOST_WILDCARD;
	}
	if (snap_map_init(&b->s->exact, n_exact) < 0 || snap_map_init(&b->s->wild, n_wild) < 0 ||
	    snap_map_init(&b->parent, n_exact) < 0) {
		cfg_err_set(b->err, 500, "", "out of memory");
		return -1;
	}
	for (uint32_t i = 0; i < b->n_claims; i++) {
		int rc = 0;

		switch (b->claims[i].host->kind) {
		case RULE_HOST_EXACT:
			rc = snap_claim_exact(b, i);
			break;
		case RULE_HOST_WILDCARD:
			rc = snap_claim_wildcard(b, i);
			break;
		case RULE_HOST_REGEX:
			rc = snap_claim_regex(b, i);
			break;
		}
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* ---- building: ranking and buckets --------------------------------- */

static int snap_route_cmp(const void *pa, const void *pb)
{
	const struct snap_route *a = pa, *b = pb;

	if (a->route->priority != b->route->priority)
		return a->route->priority > b->route->priority ? -1 : 1;
	if (a->rule_len != b->rule_len)
		return a->rule_len > b->rule_len ? -1 : 1;
	if (a->tenant_idx != b->tenant_idx)
		return a->tenant_idx < b->tenant_idx ? -1 : 1;
	return a->route_idx < b->route_idx ? -1 : a->route_idx > b->route_idx;
}

static int snap_rank_routes(struct snap_build *b)
{
	struct route_snapshot *s = b->s;
	const struct cfg_tenants *ts = b->tenants;
	size_t n = 0;

	for (size_t t = 0; t < ts->n; t++)
		n += ts->v[t].n_routes;
	if (!(s->routes = calloc(n ? n : 1, sizeof(*s->routes))))
		return -1;
	for (uint32_t t = 0; t < ts->n; t++) {
		struct cfg_tenant *tenant = &ts->v[t];
		for (uint32_t r = 0; r < tenant->n_routes; r++) {
			struct snap_route *sr = &s->routes[s->n_routes++];
			sr->tenant = tenant;
			sr->route = &tenant->routes[r];
			sr->service = &tenant->services[sr->route->service_idx];
			sr->tenant_idx = t;
			sr->route_idx = r;
			sr->rule_len = strlen(sr->route->rule_text ? sr->route->rule_text : "");
		}
	}
	qsort(s->routes, s->n_routes, sizeof(*s->routes), snap_route_cmp);
	return 0;
}

/* snap_route_hosts: the claims of the route at rank; rule_hosts succeeded
 * for every route during snap_collect_claims. */
static void snap_route_hosts(const struct snap_route *sr, const struct rule_host **hosts,
			     size_t *n)
{
	char msg[8];

	if (rule_hosts(sr->route->rule, hosts, n, msg, sizeof(msg)) < 0)
		*n = 0;
}

/* snap_bucket_slot: the map slot that a claim of kind k files its route under. */
static struct snap_slot *snap_bucket_slot(struct route_snapshot *s, const struct rule_host *h)
{
	const char *key = h->kind == RULE_HOST_EXACT ? h->value : h->value + 1;
	struct snap_map *m = h->kind == RULE_HOST_EXACT ? &s->exact : &s->wild;

	return (struct snap_slot *)snap_map_find(m, s->seed, key, strlen(key));
}

/* snap_fill: one pass over routes in rank order. With fill false it counts
 * bucket sizes, with fill true it appends ranks (count reused as cursor). */
static void snap_fill(struct route_snapshot *s, bool fill)
{
	for (uint32_t rank = 0; rank < s->n_routes; rank++) {
		const struct snap_route *sr = &s->routes[rank];
		const struct rule_host *hosts;
		bool regex = false;
		size_t n;

		snap_route_hosts(sr, &hosts, &n);
		for (size_t i = 0; i < n; i++) {
			struct snap_slot *sl;

			if (hosts[i].kind == RULE_HOST_REGEX) {
				regex = true;
				continue;
			}
			sl = snap_bucket_slot(s, &hosts[i]);
			if (!sl || sl->last_rank == rank)
				continue;
			sl->last_rank = rank;
			if (fill)
				s->ranks[sl->first + sl->count] = rank;
			sl->count++;
		}
		if (regex) {
			if (fill)
				s->ranks[s->tenant_regex[sr->tenant_idx].first +
					 s->tenant_regex[sr->tenant_idx].count] = rank;
			s->tenant_regex[sr->tenant_idx].count++;
		}
	}
}

/* snap_layout: give each bucket its place in ranks; returns the total. */
static size_t snap_layout(struct route_snapshot *s)
{
	struct snap_map *maps[] = {&s->exact, &s->wild};
	size_t total = 0;

	for (size_t m = 0; m < 2; m++) {
		for (size_t i = 0; i <= maps[m]->mask; i++) {
			struct snap_slot *sl = &maps[m]->slots[i];
			if (!sl->key)
				continue;
			sl->first = (uint32_t)total;
			total += sl->count;
			sl->count = 0;
			sl->last_rank = SNAP_NONE;
		}
	}
	for (size_t t = 0; t < s->tenants.n; t++) {
		s->tenant_regex[t].first = (uint32_t)total;
		total += s->tenant_regex[t].count;
		s->tenant_regex[t].count = 0;
	}
	return total;
}

static int snap_index(struct route_snapshot *s)
{
	size_t total;

	if (!(s->tenant_regex = calloc(s->tenants.n ? s->tenants.n : 1, sizeof(*s->tenant_regex))))
		return -1;
	snap_fill(s, false);
	total = snap_layout(s);
	if (!(s->ranks = calloc(total ? total : 1, sizeof(*s->ranks))))
		return -1;
	snap_fill(s, true);
	return 0;
}

/* ---- backend state carry-over -------------------------------------- */

static const struct cfg_service *snap_find_service(const struct cfg_tenant *t, const char *name)
{
	for (size_t i = 0; i < t->n_services; i++)
		if (!t->services[i].is_respond && strcmp(t->services[i].name, name) == 0)
			return &t->services[i];
	return NULL;
}

static void snap_carry_service(struct cfg_service *dst, const struct cfg_service *src)
{
	for (size_t i = 0; i < dst->n_backends; i++) {
		for (size_t j = 0; j < src->n_backends; j++) {
			const struct cfg_backend_state *from = &src->state[j];
			struct cfg_backend_state *to = &dst->state[i];

			if (dst->backends[i].port != src->backends[j].port ||
			    strcmp(dst->backends[i].host, src->backends[j].host) != 0)
				continue;
			/* In-flight counts stay with the old snapshot: its requests
			 * release against the old state. */
			atomic_store_explicit(&to->fails,
					      atomic_load_explicit(&from->fails, memory_order_relaxed),
					      memory_order_relaxed);
			atomic_store_explicit(&to->down_until_ms,
					      atomic_load_explicit(&from->down_until_ms,
								   memory_order_relaxed),
					      memory_order_relaxed);
			atomic_store_explicit(&to->check_down,
					      atomic_load_explicit(&from->check_down,
								   memory_order_relaxed),
					      memory_order_relaxed);
			break;
		}
	}
}

/* snap_give_stats: fresh counters for tenants that had none before. */
static void snap_give_stats(struct route_snapshot *s)
{
	for (size_t t = 0; t < s->tenants.n; t++)
		if (!s->tenants.v[t].stats)
			s->tenants.v[t].stats = cfg_tenant_stats_new();
}

static void snap_carry_state(struct route_snapshot *s, const struct route_snapshot *prev)
{
	for (size_t t = 0; t < s->tenants.n; t++) {
		struct cfg_tenant *nt = &s->tenants.v[t];
		const struct snap_slot *sl =
			snap_map_find(&prev->names, prev->seed, nt->name, strlen(nt->name));
		const struct cfg_tenant *pt;

		if (!sl)
			continue;
		pt = &prev->tenants.v[sl->owner];
		if (!nt->stats && pt->stats)
			nt->stats = cfg_tenant_stats_retain(pt->stats);
		for (size_t i = 0; i < nt->n_services; i++) {
			struct cfg_service *svc = &nt->services[i];
			const struct cfg_service *old;

			if (svc->is_respond || !svc->state)
				continue;
			if ((old = snap_find_service(pt, svc->name)) && old->state)
				snap_carry_service(svc, old);
		}
	}
}

/* ---- public ---------------------------------------------------------- */

const struct cfg_tenant *snapshot_tenant_named(const struct route_snapshot *s, const char *name)
{
	const struct snap_slot *sl = s ? snap_map_find(&s->names, s->seed, name, strlen(name)) : NULL;
	return sl ? &s->tenants.v[sl->owner] : NULL;
}

struct cfg_tenants *snapshot_tenants_unpublished(struct route_snapshot *s)
{
	return &s->tenants;
}

static uint64_t snap_seed(const void *salt)
{
	uint64_t seed;
	struct timespec ts;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed))
		return seed;
	/* Only as a fallback: the table stays correct with any seed. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)(uintptr_t)salt ^ ((uint64_t)ts.tv_nsec << 17) ^ (uint64_t)ts.tv_sec;
}

static void snap_free(struct route_snapshot *s)
{
	cfg_tenants_clear(&s->tenants);
	free(s->routes);
	snap_map_free(&s->exact);
	snap_map_free(&s->wild);
	snap_map_free(&s->names);
	free(s->ranks);
	free(s->tenant_regex);
	free(s->regex_claims);
	free(s);
}

struct route_snapshot *snapshot_build(struct cfg_tenants *tenants, uint64_t generation,
				      const struct route_snapshot *prev, struct cfg_err *err)
{
	struct snap_build b = {0};
	struct route_snapshot *s;

	if (!tenants) {
		cfg_err_set(err, 500, "", "no tenants given");
		return NULL;
	}
	if (!(s = calloc(1, sizeof(*s)))) {
		cfg_err_set(err, 500, "", "out of memory");
		return NULL;
	}
	atomic_init(&s->refs, 1);
	s->generation = generation;
	s->seed = snap_seed(s);
	b.s = s;
	b.tenants = tenants;
	b.err = err;
	if (snap_map_init(&s->names, tenants->n) < 0) {
		cfg_err_set(err, 500, "", "out of memory");
		goto fail;
	}
	if (snap_check_names(&b) < 0 || snap_collect_claims(&b) < 0 ||
	    snap_check_isolation(&b) < 0)
		goto fail;
	/* From here on the tenants are valid; the table borrows them until it
	 * takes ownership below. */
	s->tenants = *tenants;
	if (snap_rank_routes(&b) < 0 || snap_index(s) < 0) {
		s->tenants = (struct cfg_tenants){0};
		cfg_err_set(err, 500, "", "out of memory");
		goto fail;
	}
	tenants->v = NULL;
	tenants->n = 0;
	if (prev)
		snap_carry_state(s, prev);
	snap_give_stats(s); /* counters are optional: a tenant without them is not counted */
	free(b.claims);
	free(b.exact_claims);
	snap_map_free(&b.parent);
	return s;
fail:
	free(b.claims);
	free(b.exact_claims);
	snap_map_free(&b.parent);
	snap_free(s);
	return NULL;
}

struct route_snapshot *snapshot_retain(struct route_snapshot *s)
{
	if (s)
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

void snapshot_release(struct route_snapshot *s)
{
	if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
		snap_free(s);
}

uint64_t snapshot_generation(const struct route_snapshot *s)
{
	return s ? s->generation : 0;
}

const struct cfg_tenants *snapshot_tenants(const struct route_snapshot *s)
{
	return s ? &s->tenants : NULL;
}

/* snap_owner: the tenant owning host, and the exact and wildcard slots. */
static uint32_t snap_owner(const struct route_snapshot *s, const char *host, size_t len,
			   const struct snap_slot **exact, const struct snap_slot **wild)
{
	const char *parent;
	size_t plen;

	*exact = snap_map_find(&s->exact, s->seed, host, len);
	*wild = NULL;
	if ((parent = snap_parent(host, len, &plen)))
		*wild = snap_map_find(&s->wild, s->seed, parent, plen);
	if (*exact)
		return (*exact)->owner;
	if (*wild)
		return (*wild)->owner;
	for (size_t i = 0; i < s->n_regex_claims; i++)
		if (rule_host_matches(s->regex_claims[i].host, host, len))
			return s->regex_claims[i].tenant_idx;
	return SNAP_NONE;
}

const struct cfg_tenant *snapshot_tenant_for_host(const struct route_snapshot *s,
						  const char *host, size_t len)
{
	const struct snap_slot *exact, *wild;
	uint32_t owner;

	if (!s || !host || len == 0)
		return NULL;
	owner = snap_owner(s, host, len, &exact, &wild);
	return owner == SNAP_NONE ? NULL : &s->tenants.v[owner];
}

enum snapshot_claim snapshot_cert_name(const struct route_snapshot *s, const char *host,
				       size_t len, char *out, size_t cap)
{
	const struct snap_slot *exact, *wild;
	uint32_t owner;

	if (!s || !host || len == 0 || len >= cap)
		return SNAPSHOT_CLAIM_NONE;
	owner = snap_owner(s, host, len, &exact, &wild);
	if (owner == SNAP_NONE)
		return SNAPSHOT_CLAIM_NONE;
	if (!(exact && exact->owner == owner) && wild && wild->owner == owner) {
		const char *dot = memchr(host, '.', len);
		size_t rest = dot ? len - (size_t)(dot - host) : 0;
		if (dot && rest + 1 < cap) {
			out[0] = '*';
			memcpy(out + 1, dot, rest);
			out[rest + 1] = '\0';
			return SNAPSHOT_CLAIM_WILDCARD;
		}
	}
	memcpy(out, host, len);
	out[len] = '\0';
	return exact && exact->owner == owner ? SNAPSHOT_CLAIM_EXACT : SNAPSHOT_CLAIM_REGEX;
}

/* A candidate list: ranks ascending. */
struct snap_cursor {
	const uint32_t *v;
	uint32_t n, i;
};

bool snapshot_match(const struct route_snapshot *s, const struct rule_req *req,
		    struct route_match *out)
{
	const struct snap_slot *exact, *wild;
	struct snap_cursor c[3] = {{0}};
	uint32_t owner, last = SNAP_NONE;

	if (!s || !req || !req->host || req->host_len == 0)
		return false;
	owner = snap_owner(s, req->host, req->host_len, &exact, &wild);
	if (owner == SNAP_NONE)
		return false;
	/* Isolation guarantees an exact bucket and a wildcard bucket for one
	 * host have the same owner; the test keeps that true by construction. */
	if (exact && exact->owner == owner)
		c[0] = (struct snap_cursor){s->ranks + exact->first, exact->count, 0};
	if (wild && wild->owner == owner)
		c[1] = (struct snap_cursor){s->ranks + wild->first, wild->count, 0};
	c[2] = (struct snap_cursor){s->ranks + s->tenant_regex[owner].first,
				    s->tenant_regex[owner].count, 0};
	for (;;) {
		struct snap_cursor *best = NULL;
		const struct snap_route *sr;

		for (size_t k = 0; k < 3; k++)
			if (c[k].i < c[k].n && (!best || c[k].v[c[k].i] < best->v[best->i]))
				best = &c[k];
		if (!best)
			return false;
		sr = &s->routes[best->v[best->i++]];
		if (best->v[best->i - 1] == last)
			continue; /* the same route filed under two claims */
		last = best->v[best->i - 1];
		if (rule_match(sr->route->rule, req)) {
			out->tenant = sr->tenant;
			out->route = sr->route;
			out->service = sr->service;
			return true;
		}
	}
}
