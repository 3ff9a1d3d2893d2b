/*
 * limiter.h - a tenant's limits at run time: its rate limit (per tenant or
 * per client address), the routes' own rate limits, and max_inflight. The
 * state is shared by all workers (atomics, and striped locks inside the
 * per-client table) and carried across table updates: a tenant whose limits
 * did not change keeps its buckets, so an update elsewhere resets nothing.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/snapshot.h"
#include "proxy/limit/client_key.h"

/* Why a request was refused, and what the 429 says about it. */
struct limit_answer {
	long retry_after_s;        /* Retry-After: whole seconds, at least 1 */
	uint64_t quota, window_s;  /* RateLimit-Policy: q and w */
	uint64_t remaining, reset_s; /* RateLimit: r and t */
	const char *policy;        /* "tenant", "client", "route" or "inflight" */
};

/* limits_attach: give every tenant of snap (built, not yet published) its
 * runtime limits: those of the same tenant in old when its limits are
 * unchanged, fresh (full) ones otherwise. 0, or -1 when out of memory (the
 * tenants then run unlimited rather than refusing traffic). */
int limits_attach(struct route_snapshot *snap, const struct route_snapshot *old);

/* limits_need_client: whether admitting a request to route of t needs the
 * client's address (a per-client rate limit applies). */
bool limits_need_client(const struct cfg_tenant *t, const struct cfg_route *route);
/* limits_client_prefix: the IPv6 prefix the key for (t, route) is cut to. */
uint8_t limits_client_prefix(const struct cfg_tenant *t, const struct cfg_route *route);

/* limits_admit: whether a request routed to route of t may proceed at
 * now_ns (monotonic). The route's own rate limit applies instead of the
 * tenant's when it has one; client is the key when limits_need_client said
 * so (else ignored). to_backend: the request occupies a backend slot
 * (max_inflight); when admitted so, *held is set and limits_release must
 * follow when it ends. A refused request takes no token and no slot; a is
 * filled for the 429. */
bool limits_admit(const struct cfg_tenant *t, const struct cfg_route *route,
		  const struct client_key *client, bool to_backend, int64_t now_ns, bool *held,
		  struct limit_answer *a);
void limits_release(const struct cfg_tenant *t);

/* limits_now_ns: the monotonic clock limits are measured on. */
int64_t limits_now_ns(void);

/* limits_format_429: the 429's extra header lines (Retry-After,
 * RateLimit-Policy, RateLimit; draft-ietf-httpapi-ratelimit-headers) into
 * out, each ending CRLF. Returns the length, or 0 when out is too small. */
size_t limits_format_429(const struct limit_answer *a, char *out, size_t cap);

/* limits_clients: per-client buckets held by t (for status). */
size_t limits_clients(const struct cfg_tenant *t);
