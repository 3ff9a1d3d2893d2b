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
