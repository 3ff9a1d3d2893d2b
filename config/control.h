/*
 * control.h - the control API: HTTP/1.1 + JSON on a unix socket (libevent's
 * evhttp), on the main thread. Every change is validated completely,
 * compiled, persisted (temp file, fsync, rename, fsync of the directory) and
 * only then published and acknowledged; changes are serialised by the loop.
 */
#pragma once

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>

#include "config/model.h"
#include "config/snapshot.h"

struct edge; /* the runtime that serves the table (proxy/edge.c) */

/* What the control API needs from the runtime; all called on the main thread. */
struct control_ops {
	/* routes: the table being served (borrowed). */
	struct route_snapshot *(*routes)(struct edge *e);
	/* publish: serve snap from now on (the reference is taken). */
	void (*publish)(struct edge *e, struct route_snapshot *snap);
	/* reload: re-read the tenants file; 0, or -1 with err (old table kept). */
	int (*reload)(struct edge *e, struct cfg_err *err);
	/* status, certs: the documents of GET /v1/status and GET /v1/certs. New references. */
	json_t *(*status)(struct edge *e);
	json_t *(*certs)(struct edge *e);
	/* cert_renew: start renewing host's certificate; -1 when no tenant routes it. */
	int (*cert_renew)(struct edge *e, const char *host);
	/* metrics: append the Prometheus text exposition. */
	void (*metrics)(struct edge *e, struct evbuffer *out);
};

struct control;

/* control_new: listen on socket_path (a stale socket there is replaced; any
 * other file is an error) with mode, serving the table of e through ops and
 * persisting it to tenants_file. NULL with a message on failure. */
struct control *control_new(struct event_base *base, const char *socket_path, unsigned mode,
			    const char *tenants_file, struct edge *e, const struct control_ops *ops,
			    char *errbuf, size_t errlen);
/* control_free: stop serving and remove the socket. NULL-safe. */
void control_free(struct control *c);

/* control_persist: write the table of snap to path atomically. 0, or -1 with
 * err (status 500, the OS error in the message). */
int control_persist(const char *path, const struct route_snapshot *snap, struct cfg_err *err);
