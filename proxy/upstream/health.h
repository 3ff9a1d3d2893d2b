/*
 * health.h - backend health. Passive: consecutive connection failures or
 * backend errors mark a backend down for a cool-down (any worker reports).
 * Active: optional periodic GET health.path from the main thread.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/dns.h>

#include "config/model.h"

/* health_is_up: up unless inside a passive cool-down or marked down by the
 * active checker. */
bool health_is_up(const struct cfg_service *svc, int idx, int64_t now_ms);
void health_report_success(struct cfg_service *svc, int idx);
/* health_report_failure: after health.max_fails in a row, down for health.cooldown_ms. */
void health_report_failure(struct cfg_service *svc, int idx, int64_t now_ms);

struct route_snapshot;
struct health_checker;

/* health_checker_new: active checks on the main thread's base. */
struct health_checker *health_checker_new(struct event_base *base, struct evdns_base *dns);
/* health_checker_update: (re)schedule checks for every service of snap with
 * health.enabled; takes a reference to snap, drops the previous one. */
void health_checker_update(struct health_checker *hc, struct route_snapshot *snap);
void health_checker_free(struct health_checker *hc);

struct health_check;
typedef void (*health_check_done_cb)(void *arg);

/* health_check_service_once: one round of active checks: every backend of
 * svc gets "GET health.path" (timeout health.timeout_ms, default 5s) and its
 * check_down is set from the answer (2xx/3xx up; other status, refused,
 * timeout, unresolvable down). Runs on base, resolves with dns; nothing
 * happens before the loop runs. `done` (may be NULL) runs from the loop
 * once every backend has answered; the check is freed right after it, so
 * it must not be cancelled from `done` or later. svc must outlive the
 * check. Returns NULL on allocation failure. */
struct health_check *health_check_service_once(struct event_base *base, struct evdns_base *dns,
					       struct cfg_service *svc,
					       health_check_done_cb done, void *arg);
/* health_check_cancel: stop a round before `done`; no callback runs
 * afterwards and no state is changed any more. NULL-safe. */
void health_check_cancel(struct health_check *chk);
