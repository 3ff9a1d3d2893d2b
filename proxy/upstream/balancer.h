/*
 * balancer.h - choosing a backend of a service: round_robin, least_conn,
 * ip_hash, over the backends that are up. Lock-free (atomics on the
 * service's runtime state), safe from any worker.
 */
#pragma once

#include <stdint.h>
#include <sys/socket.h>

#include "config/model.h"

/* balancer_pick: index of the backend for this request, skipping backends
 * marked down and `exclude` (-1 for none; the retry path passes the one that
 * failed). When every backend is marked down, the one whose cool-down ends
 * first is tried rather than black-holing the service. Returns -1 only when
 * there are no backends or all are excluded (answer 503). client is used by
 * ip_hash (may be NULL). */
int balancer_pick(struct cfg_service *svc, const struct sockaddr *client, int exclude,
		  int64_t now_ms);

/* balancer_acquire / balancer_release: count a request in flight on backend
 * idx (least_conn). Every acquire is matched by one release. */
void balancer_acquire(struct cfg_service *svc, int idx);
void balancer_release(struct cfg_service *svc, int idx);
