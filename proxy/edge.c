#include "proxy/edge.h"

#include <errno.h>
#include <limits.h>
#include <time.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "acme/certstore.h"
#include "acme/challenges.h"
#include "acme/internal_ca.h"
#include "config/control.h"
#include "config/fileio.h"
#include "config/snapshot.h"
#include "config/static_load.h"
#include "config/tenant_load.h"
#include "proxy/acme_hosts.h"
#include "proxy/core/clock.h"
#include "proxy/core/log.h"
#include "proxy/core/mailbox.h"
#include "proxy/core/nofile.h"
#include "proxy/limit/limiter.h"
#include "proxy/log/access_log.h"
#include "proxy/net/listener.h"
#include "proxy/tls/cert_index.h"
#include "proxy/tls/tls_conn.h"
#include "proxy/tls/tls_ctx.h"
#include "proxy/upstream/health.h"
#include "proxy/worker.h"

#define EDGE_CERT_CACHE 10000
#define EDGE_TICKET_ROTATE_S (12 * 3600)

struct edge {
	struct cfg_static cfg;
	struct event_base *base;
	struct mailbox *mailbox;
	SSL_CTX *ssl_ctx;
	struct internal_ca *ca;
	struct challenges *challenges;
	struct acme_hosts *acme;
	struct certstore *store;
	struct route_snapshot *routes;
	uint64_t generation;
	struct cert_index *certs;
	struct worker *workers;
	unsigned n_workers, n_exited;
	uint16_t https_port;
	struct access_log *alog;
	struct evdns_base *dns;
	struct health_checker *health;
	struct event *signals[5];
	struct event *shutdown_timer, *ticket_timer;
	struct control *control;
	int64_t started_ms;
	bool stopping;
};

SSL_CTX *edge_ssl_ctx(const struct edge *e)
{
	return e->ssl_ctx;
}

struct challenges *edge_challenges(const struct edge *e)
{
	return e->challenges;
}

uint16_t edge_https_port(const struct edge *e)
{
	return e->https_port;
}

bool edge_is_trusted_proxy(const struct edge *e, const struct sockaddr *peer)
{
	const uint8_t *addr;
	int family = peer->sa_family;
	if (family == AF_INET) {
		addr = (const uint8_t *)&((const struct sockaddr_in *)peer)->sin_addr;
	} else if (family == AF_INET6) {
		addr = ((const struct sockaddr_in6 *)peer)->sin6_addr.s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)peer)->sin6_addr)) {
			addr += 12;
			family = AF_INET;
		}
	} else {
		return false;
	}
	for (size_t i = 0; i < e->cfg.n_trusted_proxies; i++) {
		const struct cfg_cidr *c = &e->cfg.trusted_proxies[i];
		if (c->family != family)
			continue;
		unsigned bits = c->prefix, full = bits / 8, rest = bits % 8;
		if (memcmp(addr, c->addr, full) != 0)
			continue;
		if (rest && ((addr[full] ^ c->addr[full]) & (0xff << (8 - rest))))
			continue;
		return true;
	}
	return false;
}

/* edge_publish_routes: hand snap to every worker and the health checker. */
static void edge_publish_routes(struct edge *e, struct route_snapshot *snap)
{
	snapshot_release(e->routes);
	e->routes = snap;
	e->generation = snapshot_generation(snap);
	for (unsigned i = 0; i < e->n_workers; i++)
		worker_post_routes(&e->workers[i], snap);
	if (e->health)
		health_checker_update(e->health, snap);
}

static void edge_publish_certs(struct edge *e, struct cert_index *ix)
{
	cert_index_release(e->certs);
	e->certs = ix;
	for (unsigned i = 0; i < e->n_workers; i++)
		worker_post_certs(&e->workers[i], ix);
}

/* edge_load_routes: read and compile the tenants file; NULL with err. */
static struct route_snapshot *edge_load_routes(struct edge *e, struct cfg_err *err)
{
	struct cfg_tenants ts = {0};
	if (cfg_tenants_load_file(e->cfg.tenants_file, &ts, err) < 0)
		return NULL;
	struct route_snapshot *snap = snapshot_build(&ts, e->generation + 1, e->routes, err);
	cfg_tenants_clear(&ts);
	if (snap && limits_attach(snap, e->routes) < 0)
		log_warn("rate limits: out of memory; some tenants run unlimited");
	return snap;
}

/* edge_reload: SIGHUP and POST /v1/reload: the tenants file, validated whole. */
static int edge_reload(struct edge *e, struct cfg_err *err)
{
	struct route_snapshot *snap = edge_load_routes(e, err);
	if (!snap) {
		log_err("reload failed: %s%s%s (the running table is kept)", err->field,
			err->field[0] ? ": " : "", err->message);
		return -1;
	}
	struct route_snapshot *old = snapshot_retain(e->routes);
	edge_publish_routes(e, snap);
	log_info("reload: generation %llu, %zu tenants", (unsigned long long)e->generation,
		 snapshot_tenants(snap)->n);
	acme_hosts_routes(e->acme, old, snap);
	snapshot_release(old);
	return 0;
}

/* Certificates, asked for by workers at their first handshake for a host. */

struct edge_cert_req {
	struct edge *e;
	struct worker *w;
	enum cfg_tls_mode mode;
	char host[256];           /* the name the client asked for */
	char name[256];           /* the name to certify: host, or "*.parent" */
	enum snapshot_claim claim;
};

static struct cert *edge_obtain_cert(struct edge *e, const struct edge_cert_req *rq, char *err,
				     size_t errlen)
{
	switch (rq->mode) {
	case CFG_TLS_INTERNAL:
		/* Names a client can invent (under a HostRegexp) are certified in
		 * memory only, bounded by the index, never filling the disk. */
		if (rq->claim == SNAPSHOT_CLAIM_REGEX)
			return internal_ca_issue(e->ca, rq->name, err, errlen);
		return certstore_get_internal(e->store, rq->name, err, errlen);
	case CFG_TLS_FILES: {
		const struct cfg_tenant *t =
			snapshot_tenant_for_host(e->routes, rq->host, strlen(rq->host));
		if (!t || !t->tls_cert) {
			snprintf(err, errlen, "no tenant with certificate files routes %s", rq->host);
			return NULL;
		}
		struct cert *c = cert_load_pem(rq->host, t->tls_cert, t->tls_key, CFG_TLS_FILES, err,
					       errlen);
		if (c && !cert_covers(c, rq->host)) {
			snprintf(err, errlen, "%s does not cover %s", t->tls_cert, rq->host);
			cert_release(c);
			return NULL;
		}
		return c;
	}
	case CFG_TLS_ACME: /* asynchronous: acme_hosts_request */
	case CFG_TLS_INHERIT:
	case CFG_TLS_OFF:
		break;
	}
	snprintf(err, errlen, "TLS is off for %s", rq->host);
	return NULL;
}

static void edge_on_cert_request(void *arg)
{
	struct edge_cert_req *rq = arg;
	struct edge *e = rq->e;
	char err[512] = "";
	bool ok = false;
	if (!e->stopping) {
		rq->claim = strcmp(rq->host, TLS_DEFAULT_CERT_HOST) == 0
				    ? SNAPSHOT_CLAIM_EXACT
				    : snapshot_cert_name(e->routes, rq->host, strlen(rq->host),
							 rq->name, sizeof rq->name);
		if (rq->claim == SNAPSHOT_CLAIM_EXACT)
			snprintf(rq->name, sizeof rq->name, "%s", rq->host);
		if (rq->claim == SNAPSHOT_CLAIM_NONE) {
			snprintf(err, sizeof err, "no tenant routes %s", rq->host);
			worker_post_cert_result(rq->w, rq->host, false, err);
			free(rq);
			return;
		}
		struct cert *have = cert_index_get(e->certs, rq->name);
		if (have && have->source == rq->mode) {
			ok = true;
		} else if (rq->mode == CFG_TLS_ACME && rq->claim != SNAPSHOT_CLAIM_EXACT) {
			/* Orders only for names an operator wrote down: a name a client
			 * invents under a wildcard or HostRegexp must not make one
			 * (and http-01/tls-alpn-01 cannot validate wildcards). */
			snprintf(err, sizeof err,
				 "ACME needs a Host() rule naming %s exactly (wildcard and "
				 "HostRegexp hosts would need dns-01)",
				 rq->host);
			log_warn("certificate for %s: %s", rq->host, err);
		} else if (rq->mode == CFG_TLS_ACME) {
			acme_hosts_request(e->acme, rq->w, rq->host);
			free(rq);
			return;
		} else {
			struct cert *c = edge_obtain_cert(e, rq, err, sizeof err);
			if (c) {
				struct cert_index *ix = cert_index_with(e->certs, c, EDGE_CERT_CACHE);
				cert_release(c);
				if (ix) {
					edge_publish_certs(e, ix);
					ok = true;
				}
			}
			if (!ok)
				log_warn("certificate for %s: %s", rq->host, err);
		}
	}
	worker_post_cert_result(rq->w, rq->host, ok, err);
	free(rq);
}

void edge_request_cert(struct edge *e, struct worker *w, const char *host, enum cfg_tls_mode mode)
{
	struct edge_cert_req *rq = calloc(1, sizeof *rq);
	if (!rq) {
		worker_post_cert_result(w, host, false, "out of memory");
		return;
	}
	rq->e = e;
	rq->w = w;
	rq->mode = mode;
	snprintf(rq->host, sizeof rq->host, "%s", host);
	if (mailbox_post(e->mailbox, edge_on_cert_request, rq) < 0) {
		free(rq);
		worker_post_cert_result(w, host, false, "out of memory");
	}
}

/* The control API's view of the edge. */

static struct route_snapshot *edge_ctl_routes(struct edge *e)
{
	return e->routes;
}

static void edge_ctl_publish(struct edge *e, struct route_snapshot *snap)
{
	if (limits_attach(snap, e->routes) < 0)
		log_warn("rate limits: out of memory; some tenants run unlimited");
	struct route_snapshot *old = snapshot_retain(e->routes);
	edge_publish_routes(e, snap);
	log_info("update: generation %llu, %zu tenants", (unsigned long long)e->generation,
		 snapshot_tenants(snap)->n);
	/* New acme hosts get their certificates now, not at the first visitor. */
	acme_hosts_routes(e->acme, old, snap);
	snapshot_release(old);
}

static unsigned long edge_connections(const struct edge *e)
{
	unsigned long n = 0;
	for (unsigned i = 0; i < e->n_workers; i++)
		n += atomic_load_explicit(&e->workers[i].n_conns, memory_order_relaxed);
	return n;
}

static json_t *edge_ctl_status(struct edge *e)
{
	json_t *tenants = json_object();
	const struct cfg_tenants *ts = snapshot_tenants(e->routes);
	for (size_t i = 0; tenants && i < ts->n; i++) {
		const struct cfg_tenant_stats *st = ts->v[i].stats;
		json_object_set_new(
			tenants, ts->v[i].name,
			json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "requests",
				  (json_int_t)(st ? atomic_load(&st->requests) : 0), "rate_limited",
				  (json_int_t)(st ? atomic_load(&st->rate_limited) : 0), "limited_clients",
				  (json_int_t)limits_clients(&ts->v[i]), "responses_4xx",
				  (json_int_t)(st ? atomic_load(&st->by_class[4]) : 0), "responses_5xx",
				  (json_int_t)(st ? atomic_load(&st->by_class[5]) : 0), "bytes_in",
				  (json_int_t)(st ? atomic_load(&st->bytes_in) : 0), "bytes_out",
				  (json_int_t)(st ? atomic_load(&st->bytes_out) : 0)));
	}
	return json_pack("{s:s,s:I,s:I,s:i,s:I,s:o}", "version", PORTIER_VERSION, "uptime_s",
			 (json_int_t)((clock_mono_ms() - e->started_ms) / 1000), "generation",
			 (json_int_t)e->generation, "workers", (int)e->n_workers, "connections",
			 (json_int_t)edge_connections(e), "tenants", tenants ? tenants : json_object());
}

static const char *edge_source_name(enum cfg_tls_mode m)
{
	return m == CFG_TLS_ACME ? "acme" : m == CFG_TLS_FILES ? "files" : "internal";
}

static json_t *edge_ctl_certs(struct edge *e)
{
	json_t *list = json_array();
	for (size_t i = 0; list && i < cert_index_size(e->certs); i++) {
		const struct cert *c = cert_index_at(e->certs, i);
		if (c->source == CFG_TLS_ACME && acme_hosts_known(e->acme, c->host))
			continue; /* listed with its ACME state below */
		char when[32];
		struct tm tm;
		gmtime_r(&c->not_after, &tm);
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
		json_array_append_new(list, json_pack("{s:s,s:s,s:s?,s:s,s:s,s:n,s:n,s:i}", "host",
						      c->host, "source", edge_source_name(c->source),
						      "issuer", c->issuer, "not_after", when, "state",
						      "valid", "last_error", "next_attempt", "failures",
						      0));
	}
	if (list)
		acme_hosts_list(e->acme, list);
	return json_pack("{s:o}", "certs", list ? list : json_array());
}

/* edge_ctl_cert_renew: replace host's certificate now: an ACME order (whatever
 * the backoff), a new internal one, or the files read again. */
static int edge_ctl_cert_renew(struct edge *e, const char *host)
{
	const struct cfg_tenant *t = snapshot_tenant_for_host(e->routes, host, strlen(host));
	enum cfg_tls_mode mode = t ? cfg_tenant_tls(t, &e->cfg) : CFG_TLS_OFF;
	if (mode == CFG_TLS_OFF)
		return -1;
	char err[256];
	struct cert *c = NULL;
	if (mode == CFG_TLS_INTERNAL) {
		c = internal_ca_issue(e->ca, host, err, sizeof err);
		if (c && certstore_save(e->store, c, err, sizeof err) < 0) {
			cert_release(c);
			c = NULL;
		}
	} else if (mode == CFG_TLS_FILES) {
		c = cert_load_pem(host, t->tls_cert, t->tls_key, CFG_TLS_FILES, err, sizeof err);
	} else {
		char name[256];
		if (snapshot_cert_name(e->routes, host, strlen(host), name, sizeof name) !=
		    SNAPSHOT_CLAIM_EXACT)
			return -1;
		acme_hosts_renew(e->acme, host);
		return 0;
	}
	if (!c) {
		log_warn("renewal of %s: %s", host, err);
		return 0; /* accepted; the failure is logged (and will show in cert state) */
	}
	struct cert_index *ix = cert_index_with(e->certs, c, EDGE_CERT_CACHE);
	cert_release(c);
	if (ix)
		edge_publish_certs(e, ix);
	log_info("certificate for %s renewed", host);
	return 0;
}

static void edge_ctl_metrics(struct edge *e, struct evbuffer *out)
{
	evbuffer_add_printf(out,
			    "# HELP portier_generation Generation of the routing table served.\n"
			    "# TYPE portier_generation gauge\nportier_generation %llu\n"
			    "# HELP portier_connections Client connections open.\n"
			    "# TYPE portier_connections gauge\nportier_connections %lu\n"
			    "# HELP portier_uptime_seconds Seconds since start.\n"
			    "# TYPE portier_uptime_seconds gauge\nportier_uptime_seconds %lld\n"
			    "# HELP portier_requests_total Requests answered, by tenant and status class.\n"
			    "# TYPE portier_requests_total counter\n",
			    (unsigned long long)e->generation, edge_connections(e),
			    (long long)((clock_mono_ms() - e->started_ms) / 1000));
	const struct cfg_tenants *ts = snapshot_tenants(e->routes);
	for (size_t i = 0; i < ts->n; i++) {
		const struct cfg_tenant_stats *st = ts->v[i].stats;
		for (int k = 1; st && k <= 5; k++)
			evbuffer_add_printf(out, "portier_requests_total{tenant=\"%s\",code=\"%dxx\"} %llu\n",
					    ts->v[i].name, k,
					    (unsigned long long)atomic_load(&st->by_class[k]));
	}
	evbuffer_add_printf(out, "# HELP portier_rate_limited_total Requests answered 429 by a limit, by tenant.\n"
				 "# TYPE portier_rate_limited_total counter\n");
	for (size_t i = 0; i < ts->n; i++) {
		const struct cfg_tenant_stats *st = ts->v[i].stats;
		if (st)
			evbuffer_add_printf(out, "portier_rate_limited_total{tenant=\"%s\"} %llu\n",
					    ts->v[i].name,
					    (unsigned long long)atomic_load(&st->rate_limited));
	}
	evbuffer_add_printf(out, "# HELP portier_bytes_total Body and head bytes, by tenant and direction.\n"
				 "# TYPE portier_bytes_total counter\n");
	for (size_t i = 0; i < ts->n; i++) {
		const struct cfg_tenant_stats *st = ts->v[i].stats;
		if (st)
			evbuffer_add_printf(out,
					    "portier_bytes_total{tenant=\"%s\",direction=\"in\"} %llu\n"
					    "portier_bytes_total{tenant=\"%s\",direction=\"out\"} %llu\n",
					    ts->v[i].name, (unsigned long long)atomic_load(&st->bytes_in),
					    ts->v[i].name, (unsigned long long)atomic_load(&st->bytes_out));
	}
}

/* The ACME host table's view of the edge. */

static void edge_acme_publish(void *arg, struct cert *c)
{
	struct edge *e = arg;
	struct cert_index *ix = cert_index_with(e->certs, c, EDGE_CERT_CACHE);
	if (ix)
		edge_publish_certs(e, ix);
}

static void edge_acme_answer(void *arg, struct worker *w, const char *host, bool ok,
			     const char *err)
{
	(void)arg;
	worker_post_cert_result(w, host, ok, err ? err : "");
}

static bool edge_acme_routed(void *arg, const char *host)
{
	struct edge *e = arg;
	char name[256];
	const struct cfg_tenant *t = snapshot_tenant_for_host(e->routes, host, strlen(host));
	return t && cfg_tenant_tls(t, &e->cfg) == CFG_TLS_ACME &&
	       snapshot_cert_name(e->routes, host, strlen(host), name, sizeof name) ==
		       SNAPSHOT_CLAIM_EXACT;
}

static const struct acme_hosts_ops edge_acme_ops = {
	.publish = edge_acme_publish,
	.answer = edge_acme_answer,
	.routed = edge_acme_routed,
};

static const struct control_ops edge_control_ops = {
	.routes = edge_ctl_routes,
	.publish = edge_ctl_publish,
	.reload = edge_reload,
	.status = edge_ctl_status,
	.certs = edge_ctl_certs,
	.cert_renew = edge_ctl_cert_renew,
	.metrics = edge_ctl_metrics,
};

/* edge_start_control: the control socket (its directory is created if missing). */
static int edge_start_control(struct edge *e)
{
	char err[512], dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", e->cfg.control_socket);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (fileio_mkdirs(dir, 0755, 0755, err, sizeof err) < 0) {
			log_err("control.socket: %s", err);
			return -1;
		}
	}
	e->control = control_new(e->base, e->cfg.control_socket, e->cfg.control_mode,
				 e->cfg.tenants_file, e, &edge_control_ops, err, sizeof err);
	if (!e->control) {
		log_err("%s", err);
		return -1;
	}
	log_info("control: %s", e->cfg.control_socket);
	return 0;
}

/* Lifecycle. */

static void edge_on_worker_exited(void *arg)
{
	struct edge *e = arg;
	if (++e->n_exited == e->n_workers)
		event_base_loopbreak(e->base);
}

void edge_worker_exited(struct edge *e, struct worker *w)
{
	(void)w;
	mailbox_post(e->mailbox, edge_on_worker_exited, e);
}

static void edge_shutdown_expired(evutil_socket_t fd, short what, void *arg)
{
	struct edge *e = arg;
	(void)fd;
	(void)what;
	log_warn("shutdown: timeout reached, closing remaining connections");
	for (unsigned i = 0; i < e->n_workers; i++)
		worker_post_stop(&e->workers[i]);
}

static void edge_on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct edge *e = arg;
	(void)what;
	switch (sig) {
	case SIGHUP: {
		struct cfg_err err = {0};
		edge_reload(e, &err);
		break;
	}
	case SIGUSR1:
		access_log_reopen(e->alog);
		break;
	default:
		if (e->stopping)
			return;
		e->stopping = true;
		log_info("shutdown: draining (up to %llu ms)",
			 (unsigned long long)e->cfg.timeouts_ms.shutdown);
		for (unsigned i = 0; i < e->n_workers; i++)
			worker_post_drain(&e->workers[i]);
		uint64_t ms = e->cfg.timeouts_ms.shutdown;
		struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
		e->shutdown_timer = evtimer_new(e->base, edge_shutdown_expired, e);
		if (e->shutdown_timer)
			evtimer_add(e->shutdown_timer, &tv);
		break;
	}
}

static void edge_rotate_tickets(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	tls_ticket_keys_rotate();
}

/* edge_bind_all: per address, one socket per worker on the same port. */
static int edge_bind_all(struct edge *e, int **fds, enum listener_kind **kinds, size_t *n_per_worker)
{
	const struct cfg_addr_list *lists[2] = {&e->cfg.listen_http, &e->cfg.listen_https};
	size_t n = e->cfg.listen_http.n + e->cfg.listen_https.n;
	*n_per_worker = n;
	*fds = calloc(n * e->n_workers + 1, sizeof **fds);
	*kinds = calloc(n + 1, sizeof **kinds);
	if (!*fds || !*kinds)
		return -1;
	size_t k = 0;
	for (int l = 0; l < 2; l++) {
		for (size_t i = 0; i < lists[l]->n; i++, k++) {
			const struct cfg_addr *a = &lists[l]->v[i];
			uint16_t port = a->port;
			char err[256];
			(*kinds)[k] = l ? LISTENER_HTTPS : LISTENER_HTTP;
			for (unsigned wi = 0; wi < e->n_workers; wi++) {
				int fd = listener_bind(a, port, &port, err, sizeof err);
				if (fd < 0) {
					log_err("listen %s: %s", l ? "https" : "http", err);
					return -1;
				}
				(*fds)[wi * n + k] = fd;
			}
			if (l && !e->https_port)
				e->https_port = port;
			log_info("listening: %s %s%s%s:%u", l ? "https" : "http",
				 strchr(a->host, ':') ? "[" : "", a->host[0] ? a->host : "0.0.0.0",
				 strchr(a->host, ':') ? "]" : "", port);
		}
	}
	return 0;
}

static int edge_mkdir_state(const char *dir)
{
	if (mkdir(dir, 0700) == 0 || errno == EEXIST)
		return 0;
	log_err("state_dir %s: %s", dir, strerror(errno));
	return -1;
}

/* edge_seed_tenants: on first start of the embedded default, the demo tenant. */
static void edge_seed_tenants(const char *path, const char *doc)
{
	if (!doc || access(path, F_OK) == 0)
		return;
	FILE *f = fopen(path, "wx");
	if (!f)
		return;
	fputs(doc, f);
	fclose(f);
	log_info("wrote the demo tenant to %s", path);
}

static int edge_start(struct edge *e, const char *demo_tenants)
{
	char err[512];
	e->base = event_base_new();
	e->mailbox = e->base ? mailbox_new(e->base) : NULL;
	if (!e->mailbox || edge_mkdir_state(e->cfg.state_dir) < 0)
		return -1;
	edge_seed_tenants(e->cfg.tenants_file, demo_tenants);
	e->ca = internal_ca_open(e->cfg.state_dir, err, sizeof err);
	if (!e->ca) {
		log_err("internal CA: %s", err);
		return -1;
	}
	e->store = certstore_new(e->cfg.state_dir, e->ca, err, sizeof err);
	if (!e->store) {
		log_err("certificate store: %s", err);
		return -1;
	}
	struct cfg_err cerr = {0};
	e->routes = edge_load_routes(e, &cerr);
	e->generation = e->routes ? snapshot_generation(e->routes) : 0;
	if (!e->routes) {
		log_err("%s: %s%s%s", e->cfg.tenants_file, cerr.field, cerr.field[0] ? ": " : "",
			cerr.message);
		return -1;
	}
	if (tls_conn_init() < 0)
		return -1;
	struct tls_ctx_opts topts = {.min_version = e->cfg.tls.min_version,
				     .enable_acme = e->cfg.acme.tlsalpn01,
				     .enable_h2 = e->cfg.http2.enabled,
				     .client_hello_cb = tls_conn_client_hello};
	e->ssl_ctx = tls_ctx_new(&topts, err, sizeof err);
	if (!e->ssl_ctx) {
		log_err("tls: %s", err);
		return -1;
	}
	e->alog = access_log_open(e->cfg.access_log, err, sizeof err);
	if (!e->alog) {
		log_err("%s", err);
		return -1;
	}
	e->dns = evdns_base_new(e->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
						 EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (e->dns)
		evdns_base_load_hosts(e->dns, NULL);
	e->health = health_checker_new(e->base, e->dns);
	if (e->health)
		health_checker_update(e->health, e->routes);
	e->challenges = challenges_new();
	e->acme = e->challenges ? acme_hosts_new(e->base, e->dns, &e->cfg, e->store, e->challenges,
						 &edge_acme_ops, e, err, sizeof err)
				: NULL;
	if (!e->acme) {
		log_err("acme: %s", e->challenges ? err : "out of memory");
		return -1;
	}
	/* Stored certificates are renewed whether or not anyone visits. */
	acme_hosts_sweep(e->acme, e->routes);
	return 0;
}

static int edge_start_workers(struct edge *e)
{
	int *fds = NULL;
	enum listener_kind *kinds = NULL;
	size_t per = 0;
	e->workers = calloc(e->n_workers, sizeof *e->workers);
	int rc = e->workers ? edge_bind_all(e, &fds, &kinds, &per) : -1;
	if (rc < 0) {
		/* No worker runs: nothing to drain or join (their mailboxes do not
		 * exist); the sockets bound so far close with the process. */
		e->n_workers = 0;
		log_err("no listener could be set up; exiting");
	}
	for (unsigned i = 0; rc == 0 && i < e->n_workers; i++) {
		struct worker *w = &e->workers[i];
		w->id = i;
		w->edge = e;
		w->cfg = &e->cfg;
		w->https_port = e->https_port;
		w->routes = snapshot_retain(e->routes);
		w->certs = cert_index_retain(e->certs);
		w->alog_sink = e->alog;
		rc = worker_start(w, fds + (size_t)i * per, kinds, per);
		if (rc == 0)
			continue;
		log_err("worker %u failed to start", i);
		e->n_workers = i; /* those before it run; they are drained and joined */
	}
	free(fds);
	free(kinds);
	return rc;
}

static void edge_free(struct edge *e)
{
	for (size_t i = 0; i < sizeof e->signals / sizeof e->signals[0]; i++)
		if (e->signals[i])
			event_free(e->signals[i]);
	if (e->shutdown_timer)
		event_free(e->shutdown_timer);
	if (e->ticket_timer)
		event_free(e->ticket_timer);
	control_free(e->control);
	acme_hosts_free(e->acme);
	/* A DNS lookup the ACME client cancelled is reported back from the loop,
	 * where evdns frees its record: one pass lets it (else it leaks at exit). */
	if (e->base)
		event_base_loop(e->base, EVLOOP_NONBLOCK);
	challenges_free(e->challenges);
	health_checker_free(e->health);
	if (e->dns)
		evdns_base_free(e->dns, 0);
	access_log_close(e->alog);
	snapshot_release(e->routes);
	cert_index_release(e->certs);
	SSL_CTX_free(e->ssl_ctx);
	certstore_free(e->store);
	internal_ca_free(e->ca);
	mailbox_free(e->mailbox);
	if (e->base)
		event_base_free(e->base);
	free(e->workers);
	tls_ctx_free_globals();
	cfg_static_clear(&e->cfg);
}

int edge_run(struct cfg_static *cfg, const char *demo_tenants)
{
	struct edge e = {0};
	e.cfg = *cfg;
	memset(cfg, 0, sizeof *cfg);
	e.n_workers = e.cfg.workers ? e.cfg.workers : 1;
	e.started_ms = clock_mono_ms();
	signal(SIGPIPE, SIG_IGN);
	evthread_use_pthreads();
	log_info("open files: up to %llu", (unsigned long long)nofile_raise());
	int status = 1;
	if (edge_start(&e, demo_tenants) < 0)
		goto out;
	int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		e.signals[i] = evsignal_new(e.base, sigs[i], edge_on_signal, &e);
		if (e.signals[i])
			evsignal_add(e.signals[i], NULL);
	}
	e.ticket_timer = event_new(e.base, -1, EV_PERSIST, edge_rotate_tickets, &e);
	struct timeval rot = {EDGE_TICKET_ROTATE_S, 0};
	if (e.ticket_timer)
		evtimer_add(e.ticket_timer, &rot);
	if (edge_start_workers(&e) < 0) {
		edge_on_signal(SIGTERM, 0, &e);
		if (e.n_workers)
			event_base_dispatch(e.base);
		goto join;
	}
	if (edge_start_control(&e) < 0) {
		edge_on_signal(SIGTERM, 0, &e);
		event_base_dispatch(e.base);
		goto join;
	}
	log_info("ready: generation %llu, %u workers, %zu tenants, internal CA %s",
		 (unsigned long long)e.generation, e.n_workers, snapshot_tenants(e.routes)->n,
		 internal_ca_root_path(e.ca));
	event_base_dispatch(e.base);
	status = 0;
join:
	for (unsigned i = 0; i < e.n_workers; i++)
		worker_join(&e.workers[i]);
	if (status == 0)
		log_info("shutdown: done");
out:
	edge_free(&e);
	return status;
}
