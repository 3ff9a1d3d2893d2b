/*
 * health_checker.c - the schedule of active health checks, on the main
 * thread: for every service of the current routing snapshot with
 * health.enabled, one round of checks (health_check.c) every
 * health.interval, never two rounds of one service at once. An update
 * builds the new schedule first, then cancels the old one and only then
 * drops the old snapshot, so no round outlives the services it probes.
 */
#include "proxy/upstream/health.h"

#include <stdlib.h>

#include "config/snapshot.h"
#include "proxy/core/log.h"

#define HEALTH_CHECKER_DEFAULT_INTERVAL_MS 10000u
#define HEALTH_CHECKER_MIN_INTERVAL_MS 100u
/* First rounds after an update are spread over this window (or the
 * interval when shorter) so a reload does not probe every backend at once. */
#define HEALTH_CHECKER_FIRST_SPREAD_MS 2000u

/* health_sched: the schedule of one service. */
struct health_sched {
	struct health_checker *hc;
	struct cfg_service *svc;
	struct event *timer;
	struct health_check *round; /* in flight, or NULL */
};

struct health_checker {
	struct event_base *base;
	struct evdns_base *dns;
	struct route_snapshot *snap; /* referenced while scheduled */
	struct health_sched *scheds;
	size_t n_scheds;
};

static uint64_t health_checker_interval(const struct cfg_service *svc)
{
	uint64_t ms = svc->health.interval_ms ? svc->health.interval_ms
					      : HEALTH_CHECKER_DEFAULT_INTERVAL_MS;
	return ms < HEALTH_CHECKER_MIN_INTERVAL_MS ? HEALTH_CHECKER_MIN_INTERVAL_MS : ms;
}

static struct timeval health_checker_tv(uint64_t ms)
{
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
			     .tv_usec = (suseconds_t)(ms % 1000) * 1000};
	return tv;
}

static bool health_checker_wants(const struct cfg_service *svc)
{
	return svc->health.enabled && !svc->is_respond && svc->n_backends > 0 && svc->state;
}

static void health_checker_round_done(void *arg)
{
	struct health_sched *s = arg;
	s->round = NULL;
}

static void health_checker_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct health_sched *s = arg;
	struct timeval tv = health_checker_tv(health_checker_interval(s->svc));

	/* A round still running (timeout longer than the interval) is left
	 * alone: at most one check in flight per backend. */
	if (!s->round) {
		s->round = health_check_service_once(s->hc->base, s->hc->dns, s->svc,
						     health_checker_round_done, s);
		if (!s->round)
			log_err("health check of service %s not started: out of memory",
				s->svc->name ? s->svc->name : "?");
	}
	evtimer_add(s->timer, &tv);
}

/* health_checker_clear: cancel every round and timer; drop the snapshot. */
static void health_checker_clear(struct health_checker *hc)
{
	for (size_t i = 0; i < hc->n_scheds; i++) {
		health_check_cancel(hc->scheds[i].round);
		hc->scheds[i].round = NULL;
		if (hc->scheds[i].timer)
			event_free(hc->scheds[i].timer);
	}
	free(hc->scheds);
	hc->scheds = NULL;
	hc->n_scheds = 0;
	snapshot_release(hc->snap);
	hc->snap = NULL;
}

/* health_checker_build: a schedule for every checked service of snap, the
 * first rounds staggered. Services without checks get check_down cleared:
 * a verdict of a check that no longer exists must not keep them down. */
static int health_checker_build(struct health_checker *hc, struct route_snapshot *snap,
				struct health_sched **out, size_t *n_out)
{
	const struct cfg_tenants *tenants = snapshot_tenants(snap);
	struct health_sched *scheds = NULL;
	size_t n = 0, cap = 0;

	for (size_t t = 0; tenants && t < tenants->n; t++)
		for (size_t j = 0; j < tenants->v[t].n_services; j++)
			cap += health_checker_wants(&tenants->v[t].services[j]);
	if (cap > 0 && !(scheds = calloc(cap, sizeof *scheds)))
		goto fail;

	for (size_t t = 0; tenants && t < tenants->n; t++) {
		for (size_t j = 0; j < tenants->v[t].n_services; j++) {
			struct cfg_service *svc = &tenants->v[t].services[j];
			if (!health_checker_wants(svc)) {
				for (size_t b = 0; svc->state && b < svc->n_backends; b++)
					atomic_store(&svc->state[b].check_down, false);
				continue;
			}
			struct health_sched *s = &scheds[n];
			s->hc = hc;
			s->svc = svc;
			s->timer = evtimer_new(hc->base, health_checker_timer_cb, s);
			if (!s->timer)
				goto fail;
			n++;
			uint64_t spread = health_checker_interval(svc);
			if (spread > HEALTH_CHECKER_FIRST_SPREAD_MS)
				spread = HEALTH_CHECKER_FIRST_SPREAD_MS;
			struct timeval tv = health_checker_tv((n * 131u) % spread);
			if (evtimer_add(s->timer, &tv) < 0)
				goto fail;
		}
	}
	*out = scheds;
	*n_out = n;
	return 0;

fail:
	for (size_t i = 0; i < n; i++)
		event_free(scheds[i].timer);
	free(scheds);
	return -1;
}

struct health_checker *health_checker_new(struct event_base *base, struct evdns_base *dns)
{
	if (!base || !dns)
		return NULL;
	struct health_checker *hc = calloc(1, sizeof *hc);
	if (!hc)
		return NULL;
	hc->base = base;
	hc->dns = dns;
	return hc;
}

void health_checker_update(struct health_checker *hc, struct route_snapshot *snap)
{
	struct health_sched *scheds = NULL;
	size_t n = 0;

	if (!hc)
		return;
	if (snap && health_checker_build(hc, snap, &scheds, &n) < 0) {
		/* The old schedule keeps running against the old snapshot. */
		log_err("health checks not updated: out of memory");
		return;
	}
	/* Retain before clearing: snap may be the snapshot already held. */
	if (snap)
		snapshot_retain(snap);
	health_checker_clear(hc);
	hc->snap = snap;
	hc->scheds = scheds;
	hc->n_scheds = n;
}

void health_checker_free(struct health_checker *hc)
{
	if (!hc)
		return;
	health_checker_clear(hc);
	free(hc);
}
