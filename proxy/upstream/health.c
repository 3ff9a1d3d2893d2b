/*
 * health.c - passive health: workers report how each attempt on a backend
 * went; after health.max_fails consecutive failures the backend is down for
 * health.cooldown_ms. Lock-free (atomics on the service's runtime state),
 * callable from any thread. The active checks live in health_check.c (one
 * round of probes) and health_checker.c (their schedule).
 */
#include "proxy/upstream/health.h"

#include <stdio.h>
#include <string.h>

#include "config/values.h"
#include "proxy/core/log.h"

#define HEALTH_DEFAULT_MAX_FAILS 3u
#define HEALTH_DEFAULT_COOLDOWN_MS 10000u

/* health_valid: idx names a backend of svc that has runtime state. */
static bool health_valid(const struct cfg_service *svc, int idx)
{
	return svc && svc->state && idx >= 0 && (size_t)idx < svc->n_backends;
}

bool health_is_up(const struct cfg_service *svc, int idx, int64_t now_ms)
{
	if (!health_valid(svc, idx))
		return false;
	struct cfg_backend_state *st = &svc->state[idx];
	if (atomic_load_explicit(&st->check_down, memory_order_relaxed))
		return false;
	return now_ms >= atomic_load_explicit(&st->down_until_ms, memory_order_relaxed);
}

void health_report_success(struct cfg_service *svc, int idx)
{
	if (!health_valid(svc, idx))
		return;
	struct cfg_backend_state *st = &svc->state[idx];
	/* Loads first: success is the common case on the request path, and a
	 * store on every request would bounce the cache line between workers. */
	if (atomic_load_explicit(&st->fails, memory_order_relaxed) != 0)
		atomic_store_explicit(&st->fails, 0, memory_order_relaxed);
	if (atomic_load_explicit(&st->down_until_ms, memory_order_relaxed) != 0 &&
	    atomic_exchange_explicit(&st->down_until_ms, 0, memory_order_relaxed) != 0) {
		char name[300];
		log_info("backend %s of service %s is up again",
			 cfg_addr_text(&svc->backends[idx], name, sizeof name),
			 svc->name ? svc->name : "?");
	}
}

void health_report_failure(struct cfg_service *svc, int idx, int64_t now_ms)
{
	if (!health_valid(svc, idx))
		return;
	struct cfg_backend_state *st = &svc->state[idx];
	uint32_t max_fails = svc->health.max_fails ? svc->health.max_fails
						   : HEALTH_DEFAULT_MAX_FAILS;
	uint64_t cooldown = svc->health.cooldown_ms ? svc->health.cooldown_ms
						    : HEALTH_DEFAULT_COOLDOWN_MS;

	uint32_t fails = atomic_fetch_add_explicit(&st->fails, 1, memory_order_relaxed) + 1;
	if (fails < max_fails)
		return;
	/* At or past the threshold every failure (re)starts the cool-down: a
	 * backend that fails again right after its cool-down goes straight
	 * back down. Only the thread that turns it from up to down logs. */
	int64_t until = now_ms + (int64_t)cooldown;
	int64_t prev = atomic_exchange_explicit(&st->down_until_ms, until, memory_order_relaxed);
	if (prev <= now_ms) {
		char name[300];
		log_warn("backend %s of service %s marked down for %gs after %u failures",
			 cfg_addr_text(&svc->backends[idx], name, sizeof name),
			 svc->name ? svc->name : "?", (double)cooldown / 1000.0,
			 (unsigned)fails);
	}
}
