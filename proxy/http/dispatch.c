#include "proxy/http/dispatch.h"

#include <stdio.h>
#include <string.h>

#include "proxy/edge.h"
#include "proxy/http/client_addr.h"
#include "proxy/http/response.h"
#include "proxy/limit/limiter.h"
#include "proxy/worker.h"

#define DISPATCH_TEXT "text/plain; charset=utf-8"

void dispatch_error(struct dispatch *d, const struct req *r, int status)
{
	d->status = status;
	d->content_type = DISPATCH_TEXT;
	d->body_len = response_error_body(d->body_buf, sizeof d->body_buf, status, r->id);
	d->body = d->body_buf;
	d->extra[0] = '\0';
}

/* dispatch_redirect: 308 to the same URL on the HTTPS listener. */
static void dispatch_redirect(struct worker *w, const struct req *r, struct dispatch *d)
{
	uint16_t port = edge_https_port(w->edge);
	char *loc = d->extra;
	size_t cap = sizeof d->extra;
	int n = snprintf(loc, cap, "Location: https://%.*s", (int)r->host_len, r->host);
	if (port != 443)
		n += snprintf(loc + n, cap - (size_t)n, ":%u", port);
	n += snprintf(loc + n, cap - (size_t)n, "%.*s%s%.*s\r\n", (int)r->path_len, r->path,
		      r->query ? "?" : "", (int)r->query_len, r->query ? r->query : "");
	if ((size_t)n >= cap) {
		dispatch_error(d, r, 414);
		return;
	}
	d->status = 308;
	d->content_type = DISPATCH_TEXT;
	d->body_len = response_error_body(d->body_buf, sizeof d->body_buf, 308, r->id);
	d->body = d->body_buf;
}

enum dispatch_result dispatch_route(struct worker *w, struct req *r, const char *sni,
				    struct dispatch *d)
{
	d->extra[0] = '\0';
	d->max_body = 0;
	r->snap = snapshot_retain(w->routes);
	const struct cfg_tenant *t = snapshot_tenant_for_host(r->snap, r->host, r->host_len);
	if (r->tls && t) {
		/* SNI and Host must agree on the tenant (RFC 9110 7.4). */
		const struct cfg_tenant *st =
			sni && sni[0] ? snapshot_tenant_for_host(r->snap, sni, strlen(sni)) : NULL;
		if (st != t) {
			dispatch_error(d, r, 421);
			return DISPATCH_ANSWER;
		}
	}
	if (!t) {
		dispatch_error(d, r, 404);
		return DISPATCH_ANSWER;
	}
	r->route.tenant = t; /* for the access log, whatever answers */
	if (!r->tls && cfg_tenant_tls(t, w->cfg) != CFG_TLS_OFF && t->https_redirect &&
	    edge_https_port(w->edge)) {
		dispatch_redirect(w, r, d);
		return DISPATCH_ANSWER;
	}
	struct rule_req view;
	req_rule_view(r, &view);
	if (!snapshot_match(r->snap, &view, &r->route)) {
		r->route.tenant = t;
		dispatch_error(d, r, 404);
		return DISPATCH_ANSWER;
	}
	int64_t tmax = r->route.tenant->max_body;
	d->max_body = tmax >= 0 ? (uint64_t)tmax : w->cfg->limits.max_body;
	if (d->max_body && r->content_length > 0 && (uint64_t)r->content_length > d->max_body) {
		dispatch_error(d, r, 413);
		return DISPATCH_ANSWER;
	}
	return DISPATCH_CONTINUE;
}

/* dispatch_limits: false when r is refused (429 in d; it took no token). */
static bool dispatch_limits(struct worker *w, struct req *r, bool to_backend, struct dispatch *d)
{
	const struct cfg_tenant *t = r->route.tenant;
	bool per_client = limits_need_client(t, r->route.route);
	struct client_key key;
	if (per_client &&
	    client_addr_key(r, w->edge, limits_client_prefix(t, r->route.route), &key) < 0)
		return true; /* listeners are IP: unreachable, but never refuse for it */
	struct limit_answer a;
	if (limits_admit(t, r->route.route, per_client ? &key : NULL, to_backend, limits_now_ns(),
			 &r->inflight_held, &a))
		return true;
	if (t->stats)
		atomic_fetch_add_explicit(&t->stats->rate_limited, 1, memory_order_relaxed);
	dispatch_error(d, r, 429);
	if (!limits_format_429(&a, d->extra, sizeof d->extra))
		d->extra[0] = '\0';
	return false;
}

enum dispatch_result dispatch_admit(struct worker *w, struct req *r, struct dispatch *d)
{
	const struct cfg_service *svc = r->route.service;
	if (r->route.tenant->limits && !dispatch_limits(w, r, !svc->is_respond, d))
		return DISPATCH_ANSWER;
	if (!svc->is_respond)
		return DISPATCH_EXCHANGE;
	d->status = svc->respond.status;
	d->content_type = svc->respond.content_type ? svc->respond.content_type : DISPATCH_TEXT;
	d->body = svc->respond.body ? svc->respond.body : "";
	d->body_len = svc->respond.body_len;
	d->extra[0] = '\0';
	return DISPATCH_ANSWER;
}

bool dispatch_header_next(const char *extra, size_t *pos, const char **name, size_t *name_len,
			  const char **value, size_t *value_len)
{
	const char *line = extra + *pos;
	const char *eol = strstr(line, "\r\n");
	const char *colon = eol ? memchr(line, ':', (size_t)(eol - line)) : NULL;
	if (!colon)
		return false;
	*name = line;
	*name_len = (size_t)(colon - line);
	const char *v = colon + 1;
	while (v < eol && *v == ' ')
		v++;
	*value = v;
	*value_len = (size_t)(eol - v);
	*pos = (size_t)(eol + 2 - extra);
	return true;
}
