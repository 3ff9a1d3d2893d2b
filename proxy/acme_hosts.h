/*
 * acme_hosts.h - the edge's ACME policy, per host: which handshakes wait for
 * which order, the store before the CA, backoff after failures, the global
 * order caps, background renewal, and the state operators see. Main thread
 * only. The RFC 8555 protocol itself is acme/client.h.
 */
#pragma once

#include <stdbool.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <jansson.h>

#include "acme/cert.h"
#include "acme/certstore.h"
#include "config/model.h"
#include "config/snapshot.h"

struct acme_hosts;
struct challenges;
struct worker;

struct acme_hosts_ops {
	/* publish: serve c from now on (the callee retains what it keeps). */
	void (*publish)(void *arg, struct cert *c);
	/* answer: tell worker w whether host's certificate is now served. */
	void (*answer)(void *arg, struct worker *w, const char *host, bool ok, const char *err);
	/* routed: whether host is still a Host() name of a tls "acme" tenant
	 * (renewals of hosts nobody routes any more stop). */
	bool (*routed)(void *arg, const char *host);
};

/* acme_hosts_new: the ACME client for cfg->acme (account key in the state
 * dir), answering challenges through ch. NULL with a message. */
struct acme_hosts *acme_hosts_new(struct event_base *base, struct evdns_base *dns,
				  const struct cfg_static *cfg, struct certstore *store,
				  struct challenges *ch, const struct acme_hosts_ops *ops, void *arg,
				  char *errbuf, size_t errlen);
void acme_hosts_free(struct acme_hosts *ah);

/* acme_hosts_request: a handshake on w needs host's certificate (host is an
 * exact Host() name of a tls "acme" tenant). Answered through ops->answer:
 * at once from the store or when backing off, else when the order ends or
 * acme.on_demand_timeout passes. w NULL: obtain it, nobody waits. */
void acme_hosts_request(struct acme_hosts *ah, struct worker *w, const char *host);

/* acme_hosts_renew: order host now, ignoring backoff (operator's request). */
void acme_hosts_renew(struct acme_hosts *ah, const char *host);

/* acme_hosts_routes: the table changed from old (NULL: none) to snap: obtain
 * certificates for the acme hosts snap adds (from the store, else an
 * order). Cost: a lookup per acme host name, no disk access for old ones. */
void acme_hosts_routes(struct acme_hosts *ah, const struct route_snapshot *old,
		       const struct route_snapshot *snap);

/* acme_hosts_sweep: at start-up, in batches from the loop: schedule the
 * renewal of every stored certificate of snap's acme hosts from its
 * metadata (no certificate is loaded; handshakes still load lazily), and,
 * unless acme.on_demand, order the ones missing. */
void acme_hosts_sweep(struct acme_hosts *ah, const struct route_snapshot *snap);

/* acme_hosts_list: append one status object per host to list. */
void acme_hosts_list(struct acme_hosts *ah, json_t *list);

/* acme_hosts_known: whether host has ACME state (listed by acme_hosts_list). */
bool acme_hosts_known(struct acme_hosts *ah, const char *host);
