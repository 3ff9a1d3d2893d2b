/*
 * snapshot.h - the compiled routing table. Immutable once built, shared by
 * every worker, reference-counted; the main thread publishes a new one by
 * atomic pointer swap and a request keeps the one it started with.
 */
#pragma once

#include <stdint.h>

#include "config/model.h"
#include "config/rule.h"

struct route_snapshot;

struct route_match {
	const struct cfg_tenant *tenant;
	const struct cfg_route *route;
	struct cfg_service *service; /* runtime state inside is atomic */
};

/* snapshot_build: compile tenants into a routing table. Takes ownership of
 * tenants->v on success (tenants is emptied); on failure tenants is untouched
 * and err says why: 409 when two tenants claim the same host (naming both),
 * the field being "tenants.NAME.routes[i].rule". `prev` (may be NULL) lends
 * backend runtime state (health, in-flight counts) to unchanged services. */
struct route_snapshot *snapshot_build(struct cfg_tenants *tenants, uint64_t generation,
				      const struct route_snapshot *prev, struct cfg_err *err);

struct route_snapshot *snapshot_retain(struct route_snapshot *s);
/* snapshot_release: drop a reference; the last one frees everything. NULL-safe. */
void snapshot_release(struct route_snapshot *s);

uint64_t snapshot_generation(const struct route_snapshot *s);
const struct cfg_tenants *snapshot_tenants(const struct route_snapshot *s);
/* snapshot_tenant_named: the tenant called name, or NULL (s may be NULL). */
const struct cfg_tenant *snapshot_tenant_named(const struct route_snapshot *s, const char *name);
/* snapshot_tenants_unpublished: the tenants of a snapshot nobody else holds
 * yet, for the data plane to attach its runtime state before publishing. */
struct cfg_tenants *snapshot_tenants_unpublished(struct route_snapshot *s);

/* snapshot_tenant_for_host: the tenant that owns normalised `host` (exact
 * claims first, then wildcards, then regexes), or NULL. Used for SNI and for
 * the SNI/Host agreement check. */
const struct cfg_tenant *snapshot_tenant_for_host(const struct route_snapshot *s,
						  const char *host, size_t len);

enum snapshot_claim {
	SNAPSHOT_CLAIM_NONE,
	SNAPSHOT_CLAIM_EXACT,    /* a tenant names the host */
	SNAPSHOT_CLAIM_WILDCARD, /* only a "*.parent" claim covers it */
	SNAPSHOT_CLAIM_REGEX,    /* only a HostRegexp matches it */
};

/* snapshot_cert_name: how host is owned, and the name its certificate should
 * carry in out: host itself, or "*.parent" under a wildcard claim, so one
 * certificate serves every label a client may invent. */
enum snapshot_claim snapshot_cert_name(const struct route_snapshot *s, const char *host,
				       size_t len, char *out, size_t cap);

/* snapshot_match: the highest-priority route matching req; false if none. */
bool snapshot_match(const struct route_snapshot *s, const struct rule_req *req,
		    struct route_match *out);
