/*
 * import_traefik.c - `portierctl tenant import-traefik COMPOSE_FILE
 * [--tenant NAME] [--apply]` (DESIGN.md section 5).
 *
 * Two passes over the services' traefik.* labels: the first sorts them into
 * routers, load-balancer services and middlewares; the second turns each
 * router into a route. What has a faithful equivalent is translated: rule,
 * service, server port, entrypoints and TLS, priority, stripprefix (one
 * prefix), redirectscheme to https, health check path and interval.
 * Everything else is listed by its full label name and makes the exit code
 * 1. A router that uses a middleware portier cannot apply is not translated
 * at all: importing it without, say, its basicauth would publish it open.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/portierctl/cmd.h"
#include "config/portierctl/ctl.h"
#include "config/portierctl/import_compose.h"
#include "config/portierctl/provision_edge.h"
#include "config/static_load.h"
#include "config/tenant_load.h"

#define IMP_ROUTERS_MAX 256
#define IMP_LBS_MAX 256
#define IMP_MWS_MAX 256
#define IMP_NAME_MAX 63  /* router, service and middleware names */
#define IMP_ATTR_MAX 128 /* the part of a label after the name */
#define IMP_LABEL_MAX 256

enum imp_mw_kind { IMP_MW_UNKNOWN, IMP_MW_STRIP, IMP_MW_REDIRECT, IMP_MW_UNSUPPORTED };

/* traefik.http.routers.NAME.* */
struct imp_router {
	char name[IMP_NAME_MAX + 1];
	const struct icomp_service *svc; /* the compose service that declared it first */
	const char *rule, *service, *entrypoints, *middlewares, *priority, *certresolver;
	bool tls;
};

/* traefik.http.services.NAME.loadbalancer.* */
struct imp_lb {
	char name[IMP_NAME_MAX + 1];
	const struct icomp_service *svc; /* the compose service that declared it first */
	json_t *backends;                /* "CONTAINER:PORT" */
	const char *health_path, *health_interval;
	bool used;
};

/* traefik.http.middlewares.NAME.* */
struct imp_mw {
	char name[IMP_NAME_MAX + 1];
	enum imp_mw_kind kind;
	const char *prefix;
};

struct imp {
	struct icomp_project proj;
	struct imp_router routers[IMP_ROUTERS_MAX];
	struct imp_lb lbs[IMP_LBS_MAX];
	struct imp_mw mws[IMP_MWS_MAX];
	size_t n_routers, n_lbs, n_mws;
	unsigned skipped;
	/* How the translated routes were served by Traefik, for the tenant's tls. */
	unsigned n_tls, n_tls_entrypoint, n_web_only, n_no_entrypoint;
	const char *first_web_only;
};

static void imp_skip(struct imp *m, const char *label, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void imp_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* imp_skip: name a label that was not translated; the exit code becomes 1. */
static void imp_skip(struct imp *m, const char *label, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "skipped label %s: ", label);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	m->skipped++;
}

/* imp_note: something the operator should know that changes nothing. */
static void imp_note(const char *fmt, ...)
{
	va_list ap;

	fputs("note: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static bool imp_name_valid(const char *s, size_t len)
{
	if (len == 0 || len > IMP_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

		if (!alnum && (i == 0 || (c != '-' && c != '_')))
			return false;
	}
	return true;
}

static bool imp_is_true(const char *v)
{
	return strcasecmp(v, "true") == 0;
}

/* ---- first pass: labels into routers, services, middlewares ------------ */

static struct imp_router *imp_router_get(struct imp *m, const char *name, size_t len,
					 const struct icomp_service *s)
{
	struct imp_router *r;

	for (size_t i = 0; i < m->n_routers; i++)
		if (strlen(m->routers[i].name) == len && memcmp(m->routers[i].name, name, len) == 0)
			return &m->routers[i];
	if (m->n_routers >= IMP_ROUTERS_MAX)
		return NULL;
	r = &m->routers[m->n_routers++];
	memcpy(r->name, name, len);
	r->svc = s;
	return r;
}

static struct imp_lb *imp_lb_find(struct imp *m, const char *name, size_t len)
{
	for (size_t i = 0; i < m->n_lbs; i++)
		if (strlen(m->lbs[i].name) == len && memcmp(m->lbs[i].name, name, len) == 0)
			return &m->lbs[i];
	return NULL;
}

static struct imp_lb *imp_lb_get(struct imp *m, const char *name, size_t len,
				 const struct icomp_service *s)
{
	struct imp_lb *lb = imp_lb_find(m, name, len);

	if (lb)
		return lb;
	if (m->n_lbs >= IMP_LBS_MAX)
		return NULL;
	lb = &m->lbs[m->n_lbs];
	if (!(lb->backends = json_array()))
		return NULL;
	m->n_lbs++;
	memcpy(lb->name, name, len);
	lb->svc = s;
	return lb;
}

static struct imp_mw *imp_mw_get(struct imp *m, const char *name, size_t len, bool create)
{
	for (size_t i = 0; i < m->n_mws; i++)
		if (strlen(m->mws[i].name) == len && memcmp(m->mws[i].name, name, len) == 0)
			return &m->mws[i];
	if (!create || m->n_mws >= IMP_MWS_MAX)
		return NULL;
	memcpy(m->mws[m->n_mws].name, name, len);
	return &m->mws[m->n_mws++];
}

/* imp_set: record an attribute given by one label; the same attribute set
 * to another value by a later label is refused. */
static void imp_set(struct imp *m, const char **slot, const char *label, const char *value,
		    const char *owner)
{
	if (*slot && strcmp(*slot, value) != 0) {
		imp_skip(m, label, "%s already has \"%.200s\" from another label", owner, *slot);
		return;
	}
	*slot = value;
}

static void imp_router_label(struct imp *m, const struct icomp_service *s, const char *label,
			     const char *name, size_t len, const char *attr, const char *value)
{
	struct imp_router *r = imp_router_get(m, name, len, s);
	char owner[IMP_NAME_MAX + 16];

	if (!r) {
		imp_skip(m, label, "more than %d routers", IMP_ROUTERS_MAX);
		return;
	}
	snprintf(owner, sizeof(owner), "router %s", r->name);
	if (strcmp(attr, "rule") == 0)
		imp_set(m, &r->rule, label, value, owner);
	else if (strcmp(attr, "service") == 0)
		imp_set(m, &r->service, label, value, owner);
	else if (strcmp(attr, "entrypoints") == 0)
		imp_set(m, &r->entrypoints, label, value, owner);
	else if (strcmp(attr, "middlewares") == 0)
		imp_set(m, &r->middlewares, label, value, owner);
	else if (strcmp(attr, "priority") == 0)
		imp_set(m, &r->priority, label, value, owner);
	else if (strcmp(attr, "tls.certresolver") == 0)
		imp_set(m, &r->certresolver, label, value, owner);
	else if (strcmp(attr, "tls") == 0 && (imp_is_true(value) || strcasecmp(value, "false") == 0))
		r->tls = r->tls || imp_is_true(value);
	else
		imp_skip(m, label, "not supported");
}

/* imp_backend_add: CONTAINER:PORT once in lb. */
static int imp_backend_add(struct imp_lb *lb, const char *container, unsigned port)
{
	char be[320];
	size_t i;
	json_t *v;

	snprintf(be, sizeof(be), "%.300s:%u", container, port);
	json_array_foreach(lb->backends, i, v)
		if (strcmp(json_string_value(v), be) == 0)
			return 0;
	return json_array_append_new(lb->backends, json_string(be));
}

static void imp_lb_label(struct imp *m, const struct icomp_service *s, const char *label,
			 const char *name, size_t len, const char *attr, const char *value)
{
	struct imp_lb *lb = imp_lb_get(m, name, len, s);
	char owner[IMP_NAME_MAX + 16];
	uint64_t ms;

	if (!lb) {
		imp_skip(m, label, "more than %d services", IMP_LBS_MAX);
		return;
	}
	snprintf(owner, sizeof(owner), "service %s", lb->name);
	if (strcmp(attr, "loadbalancer.server.port") == 0) {
		char *end;
		unsigned long port = strtoul(value, &end, 10);

		if (end == value || *end || port == 0 || port > 65535)
			imp_skip(m, label, "expected a port number, got \"%.100s\"", value);
		else if (imp_backend_add(lb, s->container, (unsigned)port) < 0)
			imp_skip(m, label, "out of memory");
	} else if (strcmp(attr, "loadbalancer.server.scheme") == 0) {
		if (strcasecmp(value, "http") != 0)
			imp_skip(m, label, "portier talks plain HTTP to backends");
	} else if (strcmp(attr, "loadbalancer.passhostheader") == 0) {
		if (!imp_is_true(value))
			imp_skip(m, label, "portier always passes the Host header");
	} else if (strcmp(attr, "loadbalancer.healthcheck.path") == 0) {
		if (value[0] != '/')
			imp_skip(m, label, "expected a path starting with '/'");
		else
			imp_set(m, &lb->health_path, label, value, owner);
	} else if (strcmp(attr, "loadbalancer.healthcheck.interval") == 0) {
		if (cfg_parse_duration(value, &ms) < 0 || ms == 0)
			imp_skip(m, label, "expected a duration such as \"10s\"");
		else
			imp_set(m, &lb->health_interval, label, value, owner);
	} else {
		imp_skip(m, label, "not supported");
	}
}

static void imp_mw_kind(struct imp_mw *mw, enum imp_mw_kind kind)
{
	if (mw->kind == IMP_MW_UNKNOWN)
		mw->kind = kind;
	else if (mw->kind != kind)
		mw->kind = IMP_MW_UNSUPPORTED;
}

static void imp_mw_label(struct imp *m, const char *label, const char *name, size_t len,
			 const char *attr, const char *value)
{
	struct imp_mw *mw = imp_mw_get(m, name, len, true);

	if (!mw) {
		imp_skip(m, label, "more than %d middlewares", IMP_MWS_MAX);
		return;
	}
	if (strcmp(attr, "stripprefix.prefixes") == 0) {
		if (strchr(value, ',') || value[0] != '/') {
			imp_mw_kind(mw, IMP_MW_UNSUPPORTED);
			imp_skip(m, label, "only a single prefix starting with '/' is supported");
			return;
		}
		imp_mw_kind(mw, IMP_MW_STRIP);
		mw->prefix = value;
	} else if (strcmp(attr, "redirectscheme.scheme") == 0 && strcasecmp(value, "https") == 0) {
		imp_mw_kind(mw, IMP_MW_REDIRECT);
	} else if (strcmp(attr, "redirectscheme.permanent") == 0) {
		imp_mw_kind(mw, IMP_MW_REDIRECT);
	} else {
		imp_mw_kind(mw, IMP_MW_UNSUPPORTED);
		imp_skip(m, label, "not supported");
	}
}

/* imp_label: sort one traefik.* label of service s. */
static void imp_label(struct imp *m, const struct icomp_service *s, const char *label,
		      const char *value)
{
	static const char *const kinds[] = {"routers", "services", "middlewares", NULL};
	const char *rest = label + strlen("traefik."), *name, *dot;
	char attr[IMP_ATTR_MAX + 1];
	size_t k, len;

	if (strcasecmp(rest, "enable") == 0)
		return; /* read before */
	if (strcasecmp(rest, "docker.network") == 0) {
		imp_note("%s ignored: portier reaches %s by its container name; attach it to the edge's network",
			 label, s->container);
		return;
	}
	if (strncasecmp(rest, "http.", 5) != 0) {
		imp_skip(m, label, "not supported");
		return;
	}
	rest += 5;
	for (k = 0; kinds[k]; k++) {
		len = strlen(kinds[k]);
		if (strncasecmp(rest, kinds[k], len) == 0 && rest[len] == '.')
			break;
	}
	if (!kinds[k]) {
		imp_skip(m, label, "not supported");
		return;
	}
	name = rest + len + 1;
	if (!(dot = strchr(name, '.')) || !dot[1] || strlen(dot + 1) > IMP_ATTR_MAX) {
		imp_skip(m, label, "not supported");
		return;
	}
	if (!imp_name_valid(name, (size_t)(dot - name))) {
		imp_skip(m, label, "names of letters, digits, '-' and '_' (at most %d) are supported",
			 IMP_NAME_MAX);
		return;
	}
	/* Traefik reads option names case-insensitively ("loadBalancer"). */
	for (len = 0; dot[1 + len]; len++) {
		char c = dot[1 + len];

		attr[len] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	attr[len] = '\0';
	if (k == 0)
		imp_router_label(m, s, label, name, (size_t)(dot - name), attr, value);
	else if (k == 1)
		imp_lb_label(m, s, label, name, (size_t)(dot - name), attr, value);
	else
		imp_mw_label(m, label, name, (size_t)(dot - name), attr, value);
}

/* imp_collect: the first pass over every service whose traefik.enable is
 * not false. */
static void imp_collect(struct imp *m)
{
	for (size_t i = 0; i < m->proj.n_svcs; i++) {
		const struct icomp_service *s = &m->proj.svcs[i];
		const char *enable = json_string_value(json_object_get(s->labels, "traefik.enable"));
		const char *label;
		json_t *v;

		if (enable && strcasecmp(enable, "false") == 0) {
			imp_note("service %s has traefik.enable=false: its labels are ignored", s->name);
			continue;
		}
		if (enable && !imp_is_true(enable))
			imp_skip(m, "traefik.enable", "expected true or false in service %s", s->name);
		json_object_foreach(s->labels, label, v)
			if (strncasecmp(label, "traefik.", 8) == 0)
				imp_label(m, s, label, json_string_value(v));
	}
}

/* ---- second pass: routers into routes ------------------------------------ */

/* imp_ref: a router's reference to a service or middleware, without an
 * "@docker" suffix, into out; -1 for another provider ("@file", "@internal"). */
static int imp_ref(const char *s, size_t len, char *out, size_t outlen)
{
	const char *at = memchr(s, '@', len);

	if (at) {
		if ((size_t)(s + len - at) != 7 || strncmp(at, "@docker", 7) != 0)
			return -1;
		len = (size_t)(at - s);
	}
	if (len >= outlen)
		return -1;
	memcpy(out, s, len);
	out[len] = '\0';
	return 0;
}

/* imp_middlewares: the stripprefix and redirect a router's middlewares
 * amount to; false (label named) when one cannot be translated. */
static bool imp_middlewares(struct imp *m, const struct imp_router *r, const char **strip,
			    bool *redirect)
{
	char label[IMP_LABEL_MAX], ref[IMP_NAME_MAX + 1];
	const char *p = r->middlewares;

	*strip = NULL;
	*redirect = false;
	if (!p)
		return true;
	snprintf(label, sizeof(label), "traefik.http.routers.%s.middlewares", r->name);
	while (*p) {
		size_t len;
		const struct imp_mw *mw = NULL;
		const char *why = NULL;

		while (*p == ' ' || *p == ',')
			p++;
		for (len = 0; p[len] && p[len] != ','; len++)
			;
		while (len > 0 && p[len - 1] == ' ')
			len--;
		if (len == 0)
			break;
		if (imp_ref(p, len, ref, sizeof(ref)) < 0)
			why = "is not defined by the compose file's labels";
		else if (!(mw = imp_mw_get(m, ref, strlen(ref), false)))
			why = "is not defined by the compose file's labels";
		else if (mw->kind == IMP_MW_STRIP && *strip)
			why = "is a second stripprefix";
		else if (mw->kind != IMP_MW_STRIP && mw->kind != IMP_MW_REDIRECT)
			why = "is not supported";
		if (why) {
			imp_skip(m, label, "middleware %.*s %s; router %s not translated (its requests would bypass it)",
				 (int)len, p, why, r->name);
			return false;
		}
		if (mw->kind == IMP_MW_STRIP)
			*strip = mw->prefix;
		else
			*redirect = true;
		p += len;
	}
	return true;
}

/* imp_entrypoints: 0 none named, 1 only plain HTTP ones (web, http), 2 some other. */
static int imp_entrypoints(const char *eps)
{
	int kind = 0;

	while (eps && *eps) {
		size_t len;

		while (*eps == ' ' || *eps == ',')
			eps++;
		for (len = 0; eps[len] && eps[len] != ',' && eps[len] != ' '; len++)
			;
		if (len == 0)
			break;
		if ((len == 3 && strncasecmp(eps, "web", 3) == 0) ||
		    (len == 4 && strncasecmp(eps, "http", 4) == 0))
			kind = kind ? kind : 1;
		else
			kind = 2;
		eps += len;
	}
	return kind;
}

/* imp_router_service: the load-balancer a router sends to, created from
 * the container's single exposed port when no port label names one. */
static struct imp_lb *imp_router_service(struct imp *m, const struct imp_router *r)
{
	char label[IMP_LABEL_MAX], ref[IMP_NAME_MAX + 1];
	const struct icomp_service *cs = NULL;
	struct imp_lb *lb = NULL;

	snprintf(label, sizeof(label), "traefik.http.routers.%s.service", r->name);
	if (r->service) {
		if (imp_ref(r->service, strlen(r->service), ref, sizeof(ref)) < 0) {
			imp_skip(m, label, "service %.100s is not in the compose file; router %s not translated",
				 r->service, r->name);
			return NULL;
		}
	} else {
		/* Traefik's default: the container's only service, else one named after it. */
		size_t own = 0;

		for (size_t i = 0; i < m->n_lbs; i++)
			if (m->lbs[i].svc == r->svc && own++ == 0)
				lb = &m->lbs[i];
		if (own > 1) {
			fprintf(stderr, "skipped router %s: service %s defines several Traefik services; name one with %s\n",
				r->name, r->svc->name, label);
			m->skipped++;
			return NULL;
		}
		snprintf(ref, sizeof(ref), "%s", lb ? lb->name : r->svc->name);
	}
	lb = imp_lb_find(m, ref, strlen(ref));
	if (lb && json_array_size(lb->backends) > 0)
		return lb;
	cs = lb ? lb->svc : NULL;
	for (size_t i = 0; !cs && i < m->proj.n_svcs; i++)
		if (strcmp(m->proj.svcs[i].name, ref) == 0)
			cs = &m->proj.svcs[i];
	if (!cs || cs->n_ports != 1 || !imp_name_valid(ref, strlen(ref))) {
		fprintf(stderr, "skipped router %s: service %s has no loadbalancer.server.port label and %s\n",
			r->name, ref,
			cs ? "its container does not expose exactly one port"
			   : "is no compose service either");
		m->skipped++;
		return NULL;
	}
	if (!(lb = imp_lb_get(m, ref, strlen(ref), cs)) ||
	    imp_backend_add(lb, cs->container, cs->port) < 0) {
		fprintf(stderr, "skipped router %s: out of memory or too many services\n", r->name);
		m->skipped++;
		return NULL;
	}
	return lb;
}

/* imp_route: one router as a route appended to routes (or not, said why). */
static void imp_route(struct imp *m, const struct imp_router *r, json_t *routes)
{
	const char *strip;
	bool redirect;
	struct imp_lb *lb;
	json_t *route;
	int eps;

	if (!r->rule) {
		fprintf(stderr, "skipped router %s (service %s): no rule label; Traefik's default rule is not translated\n",
			r->name, r->svc->name);
		m->skipped++;
		return;
	}
	if (!imp_middlewares(m, r, &strip, &redirect))
		return;
	eps = imp_entrypoints(r->entrypoints);
	if (redirect) {
		imp_note("router %s only redirects to https: portier does that for every tenant with TLS (https_redirect)",
			 r->name);
		return;
	}
	if (!(lb = imp_router_service(m, r)))
		return;
	lb->used = true;
	route = json_pack("{s:s,s:s}", "rule", r->rule, "service", lb->name);
	if (route && strip)
		json_object_set_new(route, "strip_prefix", json_string(strip));
	if (route && r->priority) {
		char label[IMP_LABEL_MAX], *end;
		long long prio = strtoll(r->priority, &end, 10);

		snprintf(label, sizeof(label), "traefik.http.routers.%s.priority", r->name);
		if (end == r->priority || *end)
			imp_skip(m, label, "expected an integer");
		else
			json_object_set_new(route, "priority", json_integer(prio));
	}
	if (!route || json_array_append_new(routes, route) < 0) {
		fprintf(stderr, "skipped router %s: out of memory\n", r->name);
		m->skipped++;
		return;
	}
	if (r->tls || r->certresolver) {
		m->n_tls++;
	} else if (eps == 0) {
		m->n_no_entrypoint++;
	} else if (eps == 1) {
		m->n_web_only++;
		if (!m->first_web_only)
			m->first_web_only = r->name;
	} else {
		m->n_tls_entrypoint++;
	}
}

/* imp_tls: the tenant's tls from how Traefik served the routes, or NULL to
 * leave the edge's tls.default. */
static const char *imp_tls(const struct imp *m)
{
	if (m->n_tls == 0 && m->n_tls_entrypoint == 0 && m->n_no_entrypoint == 0)
		return m->n_web_only ? "off" : NULL;
	if (m->n_web_only)
		imp_note("router %s served plain HTTP only; portier serves the tenant over HTTPS and redirects HTTP",
			 m->first_web_only);
	if (m->n_tls || m->n_tls_entrypoint)
		return "acme";
	imp_note("no router names TLS or an entrypoint: the edge's tls.default applies");
	return NULL;
}

/* imp_tenant: the tenant made of every router that could be translated. */
static json_t *imp_tenant(struct imp *m)
{
	json_t *tenant = json_object(), *routes = json_array(), *services = json_object();
	const char *tls;

	if (!tenant || !routes || !services)
		goto fail;
	for (size_t i = 0; i < m->n_routers; i++)
		imp_route(m, &m->routers[i], routes);
	for (size_t i = 0; i < m->n_lbs; i++) {
		struct imp_lb *lb = &m->lbs[i];
		json_t *svc;

		if (!lb->used) {
			imp_note("Traefik service %s is used by no translated router: not imported", lb->name);
			continue;
		}
		if (!(svc = json_pack("{s:O}", "backends", lb->backends)) ||
		    json_object_set_new(services, lb->name, svc) < 0)
			goto fail;
		if (lb->health_path) {
			json_t *h = json_pack("{s:s}", "path", lb->health_path);

			if (h && lb->health_interval)
				json_object_set_new(h, "interval", json_string(lb->health_interval));
			if (!h || json_object_set_new(svc, "health", h) < 0)
				goto fail;
		} else if (lb->health_interval) {
			char label[IMP_LABEL_MAX];

			snprintf(label, sizeof(label), "traefik.http.services.%s.loadbalancer.healthcheck.interval",
				 lb->name);
			imp_skip(m, label, "a health check needs healthcheck.path as well");
		}
	}
	json_object_set_new(tenant, "routes", routes);
	json_object_set_new(tenant, "services", services);
	if ((tls = imp_tls(m)))
		json_object_set_new(tenant, "tls", json_string(tls));
	return tenant;
fail:
	json_decref(tenant);
	json_decref(routes);
	json_decref(services);
	return NULL;
}

/* ---- the command ------------------------------------------------------ */

static int imp_usage(const char *msg, const char *arg)
{
	fprintf(stderr, "portierctl tenant import-traefik: %s%s%s\n"
			"usage: portierctl tenant import-traefik COMPOSE_FILE [--tenant NAME] [--apply]\n",
		msg, arg ? " " : "", arg ? arg : "");
	return CTL_USAGE;
}

/* imp_validate: the tenant checked as the edge would (rules compiled);
 * false with the field and message on stderr. */
static bool imp_validate(const char *name, json_t *tenant)
{
	struct cfg_tenant t;
	struct cfg_err err;

	memset(&t, 0, sizeof(t));
	memset(&err, 0, sizeof(err));
	if (cfg_tenant_from_json(name, tenant, &t, &err) < 0) {
		fprintf(stderr, "portierctl: the translated tenant is not valid: %s%s%s\n", err.field,
			err.field[0] ? ": " : "", err.message);
		return false;
	}
	cfg_tenant_clear(&t);
	return true;
}

int cmd_tenant_import_traefik(const struct ctl *c, int argc, char **argv)
{
	const char *file = NULL, *tenant_name = NULL;
	struct prov_edge_answer a = {0};
	json_t *tenant = NULL, *doc = NULL;
	struct imp *m = NULL;
	char err[1024];
	bool apply = false;
	int rc = CTL_REJECTED;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--apply") == 0)
			apply = true;
		else if (strcmp(argv[i], "--tenant") == 0 && i + 1 < argc)
			tenant_name = argv[++i];
		else if (strncmp(argv[i], "--tenant=", 9) == 0)
			tenant_name = argv[i] + 9;
		else if (argv[i][0] == '-')
			return imp_usage("unknown option or missing value:", argv[i]);
		else if (file)
			return imp_usage("unexpected argument", argv[i]);
		else
			file = argv[i];
	}
	if (!file)
		return imp_usage("missing COMPOSE_FILE", NULL);
	if (tenant_name && !tenant_name_valid(tenant_name))
		return imp_usage("invalid tenant name (use [a-z0-9][a-z0-9-]{0,62}):", tenant_name);
	if (!(m = calloc(1, sizeof(*m)))) {
		fprintf(stderr, "portierctl: out of memory\n");
		return CTL_REJECTED;
	}
	if (icomp_load(&m->proj, file, err, sizeof(err)) < 0) {
		fprintf(stderr, "portierctl: %s\n", err);
		goto out;
	}
	if (!tenant_name) {
		tenant_name = m->proj.name;
		if (!tenant_name_valid(tenant_name)) {
			snprintf(err, sizeof(err),
				 "no tenant name can be made from the project name (directory %.900s): use",
				 m->proj.dir);
			rc = imp_usage(err, "--tenant NAME");
			goto out;
		}
	}
	imp_collect(m);
	if (!(tenant = imp_tenant(m)) ||
	    !(doc = json_pack("{s:{s:O}}", "tenants", tenant_name, tenant))) {
		fprintf(stderr, "portierctl: out of memory\n");
		goto out;
	}
	ctl_print_json(doc);
	fflush(stdout);
	if (json_array_size(json_object_get(tenant, "routes")) == 0) {
		fprintf(stderr, "portierctl: no router could be translated%s\n",
			apply ? "; nothing applied" : "");
		goto out;
	}
	if (!imp_validate(tenant_name, tenant)) {
		if (apply)
			fprintf(stderr, "portierctl: nothing applied\n");
		goto out;
	}
	if (apply) {
		if ((rc = prov_edge_put(c, tenant_name, tenant, &a)) != CTL_OK) {
			fprintf(stderr, "portierctl: tenant %s not applied: %s\n", tenant_name, a.why);
			goto out;
		}
		fprintf(stderr, "tenant %s %s (generation %lld)\n", tenant_name,
			a.status == 201 ? "created" : "replaced", a.generation);
	}
	rc = CTL_OK;
	if (m->skipped) {
		fprintf(stderr, "portierctl: %u label%s or router%s not translated (listed above)\n",
			m->skipped, m->skipped == 1 ? "" : "s", m->skipped == 1 ? "" : "s");
		rc = CTL_REJECTED;
	}
out:
	if (m) {
		for (size_t i = 0; i < m->n_lbs; i++)
			json_decref(m->lbs[i].backends);
		icomp_clear(&m->proj);
		free(m);
	}
	json_decref(doc);
	json_decref(tenant);
	prov_edge_clear(&a);
	return rc;
}
