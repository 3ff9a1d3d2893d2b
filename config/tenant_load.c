/*
 * tenant_load.c - tenants.json and single tenants: the full form and the
 * shorthand of DESIGN.md section 3, validated strictly (unknown keys, wrong
 * types and out-of-range values are errors naming the field) and bounded so
 * that hostile control input cannot grow memory or CPU without limit.
 * Rules are compiled here; host isolation between tenants is snapshot.c's.
 */
#include "config/tenant_load.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "config/hostname.h"
#include "config/json_field.h"
#include "config/rule.h"
#include "config/static_load.h"

#define TENANT_ROUTES_MAX   1000
#define TENANT_SERVICES_MAX 1000
#define TENANT_BACKENDS_MAX 256
#define TENANT_RULE_MAX     4096
#define TENANT_URLPATH_MAX  1024 /* strip_prefix, health.path */
#define TENANT_FILEPATH_MAX 4096 /* tls.cert, tls.key */
#define TENANT_BODY_MAX     (64 * 1024)
#define TENANT_NAME_MAX     63   /* tenant and service names */
/* tenants.json holds every tenant; far larger than portier.json, still bounded. */
#define TENANT_FILE_MAX     (64 * 1024 * 1024)

#define TENANT_DEFAULT_CONTENT_TYPE "text/plain; charset=utf-8"
#define TENANT_SHORTHAND_SERVICE "default"

bool tenant_name_valid(const char *name)
{
	size_t len;

	if (!name)
		return false;
	len = strlen(name);
	if (len == 0 || len > TENANT_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && c == '-');
		if (!ok)
			return false;
	}
	return true;
}

/* tenant_service_name_valid: [A-Za-z0-9][A-Za-z0-9_.-]{0,62}, loose enough
 * for names carried over from Traefik or compose files. */
static bool tenant_service_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > TENANT_NAME_MAX || !isalnum((unsigned char)name[0]))
		return false;
	for (size_t i = 1; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!isalnum(c) && c != '_' && c != '.' && c != '-')
			return false;
	}
	return true;
}

static int tenant_oom(struct cfg_err *err, const struct jf_path *p)
{
	return jf_fail(err, 500, p, "out of memory");
}

/* ---- clearing -------------------------------------------------------- */

static void tenant_service_clear(struct cfg_service *s)
{
	free(s->name);
	free(s->respond.body);
	free(s->respond.content_type);
	for (size_t i = 0; i < s->n_backends; i++)
		cfg_addr_clear(&s->backends[i]);
	free(s->backends);
	free(s->state);
	free(s->health.path);
	memset(s, 0, sizeof(*s));
}

static void tenant_route_clear(struct cfg_route *r)
{
	free(r->rule_text);
	rule_free(r->rule);
	free(r->service);
	free(r->strip_prefix);
	memset(r, 0, sizeof(*r));
}

void cfg_tenant_clear(struct cfg_tenant *t)
{
	if (!t)
		return;
	free(t->name);
	cfg_tenant_stats_release(t->stats);
	cfg_limits_release(t->limits);
	for (size_t i = 0; i < t->n_routes; i++)
		tenant_route_clear(&t->routes[i]);
	free(t->routes);
	for (size_t i = 0; i < t->n_services; i++)
		tenant_service_clear(&t->services[i]);
	free(t->services);
	free(t->tls_cert);
	free(t->tls_key);
	json_decref(t->json);
	memset(t, 0, sizeof(*t));
}

void cfg_tenants_clear(struct cfg_tenants *ts)
{
	if (!ts)
		return;
	for (size_t i = 0; i < ts->n; i++)
		cfg_tenant_clear(&ts->v[i]);
	free(ts->v);
	ts->v = NULL;
	ts->n = 0;
}

/* ---- small values ---------------------------------------------------- */

/* tenant_url_path: "/..." without spaces (control bytes are rejected by
 * jf_string), copied into *dst. */
static int tenant_url_path(const json_t *v, struct jf_path *p, struct cfg_err *err, char **dst)
{
	const char *s;

	if (jf_string(v, TENANT_URLPATH_MAX, p, err, &s) < 0)
		return -1;
	if (s[0] != '/')
		return jf_fail(err, 400, p, "must start with \"/\"");
	if (strchr(s, ' ') || strchr(s, '?') || strchr(s, '#'))
		return jf_fail(err, 400, p, "must be a plain path (no spaces, '?' or '#')");
	return jf_strdup(dst, s) < 0 ? tenant_oom(err, p) : 0;
}

/* tenant_enum: like static_enum but local: v must be one of names. */
static int tenant_enum(const json_t *v, const char *const *names, const char *expect,
		       const struct jf_path *p, struct cfg_err *err, size_t *idx)
{
	*idx = 0; /* gcc -O3 cannot see that jf_fail never returns 0 */
	if (json_is_string(v)) {
		for (size_t i = 0; names[i]; i++) {
			if (strcmp(json_string_value(v), names[i]) == 0) {
				*idx = i;
				return 0;
			}
		}
	}
	return jf_fail(err, 400, p, "expected %s", expect);
}

/* tenant_get: the member `key` of obj, the path pushed to it when present. */
static json_t *tenant_get(json_t *obj, const char *key, struct jf_path *p, size_t *mark)
{
	json_t *v = json_object_get(obj, key);

	if (v)
		*mark = jf_path_key(p, key);
	return v;
}

/* ---- rate limits ----------------------------------------------------- */

static int tenant_rate_limit_parse(json_t *obj, struct jf_path *p, struct cfg_err *err,
				   struct cfg_rate_limit *rl)
{
	static const char *const keys[] = {"average", "period", "burst", "per", "max_clients",
					   "ipv6_prefix", NULL};
	static const char *const pers[] = {"tenant", "client_ip", NULL};
	json_t *v;
	size_t mark, idx;
	uint64_t u;

	if (jf_expect_object(obj, p, err) < 0 || jf_check_keys(obj, keys, p, err) < 0)
		return -1;
	memset(rl, 0, sizeof(*rl));
	rl->period_ms = 1000;
	rl->max_clients = 65536;
	rl->ipv6_prefix = 64;
	if (!(v = tenant_get(obj, "average", p, &mark))) {
		jf_path_key(p, "average");
		return jf_fail(err, 400, p, "required: requests allowed per period");
	}
	if (jf_uint(v, 1, 1000000000, p, err, &rl->average) < 0)
		return -1;
	jf_path_pop(p, mark);
	rl->burst = rl->average;
	if ((v = tenant_get(obj, "period", p, &mark))) {
		if (jf_duration(v, 1, p, err, &rl->period_ms) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	if ((v = tenant_get(obj, "burst", p, &mark))) {
		if (jf_uint(v, 1, 1000000000000ull, p, err, &rl->burst) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	if ((v = tenant_get(obj, "per", p, &mark))) {
		if (tenant_enum(v, pers, "\"tenant\" or \"client_ip\"", p, err, &idx) < 0)
			return -1;
		rl->per_client_ip = idx == 1;
		jf_path_pop(p, mark);
	}
	if ((v = tenant_get(obj, "max_clients", p, &mark))) {
		if (jf_uint(v, 1, 16 * 1024 * 1024, p, err, &u) < 0)
			return -1;
		rl->max_clients = (uint32_t)u;
		jf_path_pop(p, mark);
	}
	if ((v = tenant_get(obj, "ipv6_prefix", p, &mark))) {
		if (jf_uint(v, 1, 128, p, err, &u) < 0)
			return -1;
		rl->ipv6_prefix = (uint8_t)u;
		jf_path_pop(p, mark);
	}
	rl->set = true;
	return 0;
}

/* ---- services -------------------------------------------------------- */

static int tenant_backends_parse(const json_t *v, struct jf_path *p, struct cfg_err *err,
				 struct cfg_service *s)
{
	size_t n;

	if (!json_is_array(v))
		return jf_fail(err, 400, p, "expected a list of \"HOST:PORT\" strings");
	n = json_array_size(v);
	if (n == 0)
		return jf_fail(err, 400, p, "must list at least one backend");
	if (n > TENANT_BACKENDS_MAX)
		return jf_fail(err, 400, p, "at most %d backends", TENANT_BACKENDS_MAX);
	if (!(s->backends = calloc(n, sizeof(*s->backends))) ||
	    !(s->state = calloc(n, sizeof(*s->state))))
		return tenant_oom(err, p);
	for (size_t i = 0; i < n; i++) {
		size_t mark = jf_path_index(p, i);
		const char *str;

		if (jf_string(json_array_get(v, i), 300, p, err, &str) < 0)
			return -1;
		if (cfg_parse_addr(str, &s->backends[i]) < 0 || s->backends[i].port == 0) {
			cfg_addr_clear(&s->backends[i]);
			return jf_fail(err, 400, p,
				       "expected \"HOST:PORT\" (a container or DNS name, an IPv4 address or [IPV6]; port 1-65535), got \"%.100s\"",
				       str);
		}
		s->n_backends++;
		jf_path_pop(p, mark);
	}
	return 0;
}

static int tenant_health_parse(json_t *obj, struct jf_path *p, struct cfg_err *err,
			       struct cfg_health *h)
{
	static const char *const keys[] = {"path", "interval", "timeout", "max_fails", "cooldown",
					   NULL};
	json_t *v;
	size_t mark;
	uint64_t u;

	if (jf_expect_object(obj, p, err) < 0 || jf_check_keys(obj, keys, p, err) < 0)
		return -1;
	if ((v = tenant_get(obj, "path", p, &mark))) {
		if (tenant_url_path(v, p, err, &h->path) < 0)
			return -1;
		h->enabled = true;
		jf_path_pop(p, mark);
	}
	if ((v = tenant_get(obj, "interval", p, &mark))) {
		if (!h->enabled)
			return jf_fail(err, 400, p, "active checks need \"path\" as well");
		if (jf_duration(v, 1, p, err, &h->interval_ms) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	if ((v = tenant_get(obj, "timeout", p, &mark))) {
		if (!h->enabled)
			return jf_fail(err, 400, p, "active checks need \"path\" as well");
		if (jf_duration(v, 1, p, err, &h->timeout_ms) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	if ((v = tenant_get(obj, "max_fails", p, &mark))) {
		if (jf_uint(v, 1, 1000, p, err, &u) < 0)
			return -1;
		h->max_fails = (uint32_t)u;
		jf_path_pop(p, mark);
	}
	if ((v = tenant_get(obj, "cooldown", p, &mark))) {
		if (jf_duration(v, 1, p, err, &h->cooldown_ms) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	return 0;
}

static int tenant_respond_parse(json_t *obj, struct jf_path *p, struct cfg_err *err,
				struct cfg_respond *r)
{
	static const char *const keys[] = {"status", "body", "content_type", NULL};
	const char *ct = TENANT_DEFAULT_CONTENT_TYPE, *body = "";
	json_t *v;
	size_t mark;
	uint64_t u;

	if (jf_expect_object(obj, p, err) < 0 || jf_check_keys(obj, keys, p, err) < 0)
		return -1;
	r->status = 200;
	r->body_len = 0;
	if ((v = tenant_get(obj, "status", p, &mark))) {
		if (jf_uint(v, 100, 599, p, err, &u) < 0)
			return -1;
		r->status = (int)u;
		jf_path_pop(p, mark);
	}
	if ((v = tenant_get(obj, "body", p, &mark))) {
		/* A body is bytes for the client: newlines and tabs are fine. */
		if (!json_is_string(v))
			return jf_fail(err, 400, p, "expected a string");
		if (json_string_length(v) > TENANT_BODY_MAX)
			return jf_fail(err, 400, p, "too long (at most %d bytes)", TENANT_BODY_MAX);
		body = json_string_value(v);
		r->body_len = json_string_length(v);
		jf_path_pop(p, mark);
	}
	if ((v = tenant_get(obj, "content_type", p, &mark))) {
		if (jf_string(v, 256, p, err, &ct) < 0)
			return -1;
		if (!*ct)
			return jf_fail(err, 400, p, "must not be empty");
		jf_path_pop(p, mark);
	}
	if (!(r->body = malloc(r->body_len + 1)) || !(r->content_type = strdup(ct)))
		return tenant_oom(err, p);
	memcpy(r->body, body, r->body_len);
	r->body[r->body_len] = '\0';
	return 0;
}

static void tenant_health_defaults(struct cfg_health *h)
{
	memset(h, 0, sizeof(*h));
	h->interval_ms = 10000;
	h->timeout_ms = 2000;
	h->max_fails = 3;
	h->cooldown_ms = 10000;
}

/* tenant_service_parse: {backends, balance, health} or {respond}. */
static int tenant_service_parse(const char *name, json_t *obj, struct jf_path *p,
				struct cfg_err *err, struct cfg_service *s)
{
	static const char *const keys[] = {"backends", "balance", "health", "respond", NULL};
	static const char *const balances[] = {"round_robin", "least_conn", "ip_hash", NULL};
	json_t *v, *backends, *respond;
	size_t mark, idx;

	if (jf_expect_object(obj, p, err) < 0 || jf_check_keys(obj, keys, p, err) < 0)
		return -1;
	if (!(s->name = strdup(name)))
		return tenant_oom(err, p);
	tenant_health_defaults(&s->health);
	backends = json_object_get(obj, "backends");
	respond = json_object_get(obj, "respond");
	if (backends && respond) {
		jf_path_key(p, "respond");
		return jf_fail(err, 400, p, "a service has either \"backends\" or \"respond\", not both");
	}
	if (!backends && !respond)
		return jf_fail(err, 400, p,
			       "needs \"backends\" (a list of \"HOST:PORT\") or \"respond\"");
	if (respond) {
		const char *extra = json_object_get(obj, "balance") ? "balance"
				    : json_object_get(obj, "health") ? "health" : NULL;
		if (extra) {
			jf_path_key(p, extra);
			return jf_fail(err, 400, p, "only applies to services with \"backends\"");
		}
		s->is_respond = true;
		mark = jf_path_key(p, "respond");
		if (tenant_respond_parse(respond, p, err, &s->respond) < 0)
			return -1;
		jf_path_pop(p, mark);
		return 0;
	}
	mark = jf_path_key(p, "backends");
	if (tenant_backends_parse(backends, p, err, s) < 0)
		return -1;
	jf_path_pop(p, mark);
	if ((v = tenant_get(obj, "balance", p, &mark))) {
		if (tenant_enum(v, balances, "\"round_robin\", \"least_conn\" or \"ip_hash\"", p,
				err, &idx) < 0)
			return -1;
		s->balance = (enum cfg_balance)idx;
		jf_path_pop(p, mark);
	}
	if ((v = tenant_get(obj, "health", p, &mark))) {
		if (tenant_health_parse(v, p, err, &s->health) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	return 0;
}

static int tenant_services_parse(json_t *obj, struct jf_path *p, struct cfg_err *err,
				 struct cfg_tenant *t)
{
	const char *name;
	json_t *v;
	size_t n;

	if (jf_expect_object(obj, p, err) < 0)
		return -1;
	n = json_object_size(obj);
	if (n == 0)
		return jf_fail(err, 400, p, "must define at least one service");
	if (n > TENANT_SERVICES_MAX)
		return jf_fail(err, 400, p, "at most %d services", TENANT_SERVICES_MAX);
	if (!(t->services = calloc(n, sizeof(*t->services))))
		return tenant_oom(err, p);
	json_object_foreach(obj, name, v) {
		size_t mark = jf_path_key(p, name);

		if (!tenant_service_name_valid(name))
			return jf_fail(err, 400, p,
				       "invalid service name: use letters, digits, '_', '.' and '-' (at most 63, starting with a letter or digit)");
		/* Counted first so a half-built service is freed by the clear. */
		t->n_services++;
		if (tenant_service_parse(name, v, p, err, &t->services[t->n_services - 1]) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	return 0;
}

/* ---- routes ---------------------------------------------------------- */

/* tenant_rule_compile: compile text into r; the compiler's message, then
 * the host-claim check (every alternative bound to a Host), go in err. */
static int tenant_rule_compile(const char *text, struct jf_path *p, struct cfg_err *err,
			       struct cfg_route *r)
{
	const struct rule_host *hosts;
	char msg[400];
	size_t n;

	msg[0] = '\0';
	if (!(r->rule_text = strdup(text)))
		return tenant_oom(err, p);
	if (!(r->rule = rule_compile(text, msg, sizeof(msg))))
		return jf_fail(err, 400, p, "invalid rule: %s", msg[0] ? msg : "syntax error");
	if (rule_hosts(r->rule, &hosts, &n, msg, sizeof(msg)) < 0)
		return jf_fail(err, 400, p, "%s", msg[0] ? msg : "rule must be bound to a Host");
	r->priority = (int64_t)strlen(text);
	return 0;
}

/* tenant_service_index: the index of the service called name, or -1. */
static ssize_t tenant_service_index(const struct cfg_tenant *t, const char *name)
{
	for (size_t i = 0; i < t->n_services; i++)
		if (strcmp(t->services[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}

static int tenant_route_service(const json_t *v, struct jf_path *p, struct cfg_err *err,
				const struct cfg_tenant *t, struct cfg_route *r)
{
	char names[200] = "";
	size_t used = 0;
	const char *s;
	ssize_t idx;

	if (jf_string(v, TENANT_NAME_MAX + 64, p, err, &s) < 0)
		return -1;
	if ((idx = tenant_service_index(t, s)) >= 0) {
		r->service_idx = (size_t)idx;
		return jf_strdup(&r->service, s) < 0 ? tenant_oom(err, p) : 0;
	}
	for (size_t i = 0; i < t->n_services && used < sizeof(names); i++) {
		int n = snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
				 t->services[i].name);
		if (n < 0)
			break;
		used += (size_t)n;
	}
	return jf_fail(err, 400, p, "no service \"%.64s\" in this tenant (services: %s)", s, names);
}

static int tenant_route_parse(json_t *obj, struct jf_path *p, struct cfg_err *err,
			      const struct cfg_tenant *t, struct cfg_route *r)
{
	static const char *const keys[] = {"rule", "service", "strip_prefix", "priority",
					   "rate_limit", NULL};
	const char *text;
	json_t *v;
	size_t mark;

	if (jf_expect_object(obj, p, err) < 0 || jf_check_keys(obj, keys, p, err) < 0)
		return -1;
	mark = jf_path_key(p, "rule");
	if (!(v = json_object_get(obj, "rule")))
		return jf_fail(err, 400, p, "required, e.g. \"Host(`app.example.com`)\"");
	if (jf_string(v, TENANT_RULE_MAX, p, err, &text) < 0)
		return -1;
	if (tenant_rule_compile(text, p, err, r) < 0)
		return -1;
	jf_path_pop(p, mark);

	mark = jf_path_key(p, "service");
	if (!(v = json_object_get(obj, "service")))
		return jf_fail(err, 400, p, "required: the name of one of this tenant's services");
	if (tenant_route_service(v, p, err, t, r) < 0)
		return -1;
	jf_path_pop(p, mark);

	if ((v = tenant_get(obj, "strip_prefix", p, &mark))) {
		if (tenant_url_path(v, p, err, &r->strip_prefix) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	if ((v = tenant_get(obj, "priority", p, &mark))) {
		if (jf_int(v, INT64_MIN, INT64_MAX, p, err, &r->priority) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	if ((v = tenant_get(obj, "rate_limit", p, &mark))) {
		if (tenant_rate_limit_parse(v, p, err, &r->rate_limit) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	return 0;
}

static int tenant_routes_parse(const json_t *v, struct jf_path *p, struct cfg_err *err,
			       struct cfg_tenant *t)
{
	size_t n;

	if (!json_is_array(v))
		return jf_fail(err, 400, p, "expected a list of routes");
	n = json_array_size(v);
	if (n == 0)
		return jf_fail(err, 400, p, "must list at least one route");
	if (n > TENANT_ROUTES_MAX)
		return jf_fail(err, 400, p, "at most %d routes", TENANT_ROUTES_MAX);
	if (!(t->routes = calloc(n, sizeof(*t->routes))))
		return tenant_oom(err, p);
	for (size_t i = 0; i < n; i++) {
		size_t mark = jf_path_index(p, i);

		t->n_routes++;
		if (tenant_route_parse(json_array_get(v, i), p, err, t, &t->routes[i]) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	return 0;
}

/* ---- shorthand ------------------------------------------------------- */

/* tenant_shorthand_host: hosts[i] lowercased into buf and checked. */
static int tenant_shorthand_host(const json_t *v, struct jf_path *p, struct cfg_err *err,
				 char *buf, size_t cap)
{
	const char *s;
	size_t len;

	if (jf_string(v, cap - 1, p, err, &s) < 0)
		return -1;
	len = strlen(s);
	for (size_t i = 0; i <= len; i++)
		buf[i] = (char)tolower((unsigned char)s[i]);
	if (!host_is_valid_name(buf, len, true))
		return jf_fail(err, 400, p,
			       "expected a host name such as \"app.example.com\" or \"*.example.com\"");
	return 0;
}

static int tenant_shorthand_routes(const json_t *hosts, struct jf_path *p, struct cfg_err *err,
				   struct cfg_tenant *t)
{
	size_t n;

	if (!json_is_array(hosts))
		return jf_fail(err, 400, p, "expected a list of host names");
	n = json_array_size(hosts);
	if (n == 0)
		return jf_fail(err, 400, p, "must list at least one host");
	if (n > TENANT_ROUTES_MAX)
		return jf_fail(err, 400, p, "at most %d hosts", TENANT_ROUTES_MAX);
	if (!(t->routes = calloc(n, sizeof(*t->routes))))
		return tenant_oom(err, p);
	for (size_t i = 0; i < n; i++) {
		size_t mark = jf_path_index(p, i);
		struct cfg_route *r = &t->routes[i];
		char host[256], rule[sizeof(host) + 16];

		if (tenant_shorthand_host(json_array_get(hosts, i), p, err, host, sizeof(host)) < 0)
			return -1;
		snprintf(rule, sizeof(rule), "Host(`%s`)", host);
		for (size_t j = 0; j < i; j++)
			if (strcmp(t->routes[j].rule_text, rule) == 0)
				return jf_fail(err, 400, p, "host listed twice");
		t->n_routes++;
		if (tenant_rule_compile(rule, p, err, r) < 0)
			return -1;
		if (!(r->service = strdup(TENANT_SHORTHAND_SERVICE)))
			return tenant_oom(err, p);
		r->service_idx = 0;
		jf_path_pop(p, mark);
	}
	return 0;
}

/* tenant_shorthand: {"hosts": [...], "backends": [...]} = one service
 * "default" and one Host(`h`) route per host. */
static int tenant_shorthand(json_t *obj, struct jf_path *p, struct cfg_err *err,
			    struct cfg_tenant *t)
{
	json_t *hosts = json_object_get(obj, "hosts");
	json_t *backends = json_object_get(obj, "backends");
	struct cfg_service *s;
	size_t mark;

	if (!hosts || !backends) {
		jf_path_key(p, hosts ? "backends" : "hosts");
		return jf_fail(err, 400, p, hosts ? "required with \"hosts\": a list of \"HOST:PORT\""
						  : "required with \"backends\": a list of host names");
	}
	if (!(t->services = calloc(1, sizeof(*t->services))))
		return tenant_oom(err, p);
	t->n_services = 1;
	s = &t->services[0];
	tenant_health_defaults(&s->health);
	if (!(s->name = strdup(TENANT_SHORTHAND_SERVICE)))
		return tenant_oom(err, p);
	mark = jf_path_key(p, "backends");
	if (tenant_backends_parse(backends, p, err, s) < 0)
		return -1;
	jf_path_pop(p, mark);
	mark = jf_path_key(p, "hosts");
	if (tenant_shorthand_routes(hosts, p, err, t) < 0)
		return -1;
	jf_path_pop(p, mark);
	return 0;
}

/* ---- tenant ---------------------------------------------------------- */

static int tenant_tls_parse(json_t *v, struct jf_path *p, struct cfg_err *err,
			    struct cfg_tenant *t)
{
	static const char *const modes[] = {"acme", "internal", "off", NULL};
	static const enum cfg_tls_mode vals[] = {CFG_TLS_ACME, CFG_TLS_INTERNAL, CFG_TLS_OFF};
	static const char *const keys[] = {"cert", "key", NULL};
	char **dst[] = {&t->tls_cert, &t->tls_key};
	size_t idx;

	if (!json_is_object(v)) {
		if (tenant_enum(v, modes,
				"\"acme\", \"internal\", \"off\" or {\"cert\": PATH, \"key\": PATH}",
				p, err, &idx) < 0)
			return -1;
		t->tls = vals[idx];
		return 0;
	}
	if (jf_check_keys(v, keys, p, err) < 0)
		return -1;
	for (size_t i = 0; keys[i]; i++) {
		size_t mark = jf_path_key(p, keys[i]);
		json_t *f = json_object_get(v, keys[i]);
		const char *s;

		if (!f)
			return jf_fail(err, 400, p, "required: path to a PEM file");
		if (jf_string(f, TENANT_FILEPATH_MAX, p, err, &s) < 0)
			return -1;
		if (!*s)
			return jf_fail(err, 400, p, "must not be empty");
		if (jf_strdup(dst[i], s) < 0)
			return tenant_oom(err, p);
		jf_path_pop(p, mark);
	}
	t->tls = CFG_TLS_FILES;
	return 0;
}

/* tenant_common: the keys both forms share. */
static int tenant_common(json_t *obj, struct jf_path *p, struct cfg_err *err,
			 struct cfg_tenant *t)
{
	json_t *v;
	size_t mark;
	uint64_t u;

	if ((v = tenant_get(obj, "rate_limit", p, &mark))) {
		if (tenant_rate_limit_parse(v, p, err, &t->rate_limit) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	if ((v = tenant_get(obj, "max_inflight", p, &mark))) {
		if (jf_uint(v, 1, 10000000, p, err, &u) < 0)
			return -1;
		t->max_inflight = u;
		jf_path_pop(p, mark);
	}
	if ((v = tenant_get(obj, "tls", p, &mark))) {
		if (tenant_tls_parse(v, p, err, t) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	if ((v = tenant_get(obj, "https_redirect", p, &mark))) {
		if (jf_bool(v, p, err, &t->https_redirect) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	if ((v = tenant_get(obj, "hsts", p, &mark))) {
		if (jf_bool(v, p, err, &t->hsts) < 0)
			return -1;
		jf_path_pop(p, mark);
	}
	if ((v = tenant_get(obj, "max_body", p, &mark))) {
		if (jf_size(v, (uint64_t)INT64_MAX, p, err, &u) < 0)
			return -1;
		t->max_body = (int64_t)u;
		jf_path_pop(p, mark);
	}
	return 0;
}

static int tenant_full(json_t *obj, struct jf_path *p, struct cfg_err *err, struct cfg_tenant *t)
{
	json_t *v;
	size_t mark;

	/* Services first: routes name them. */
	mark = jf_path_key(p, "services");
	if (!(v = json_object_get(obj, "services")))
		return jf_fail(err, 400, p, "required: an object of NAME: {\"backends\": [...]}");
	if (tenant_services_parse(v, p, err, t) < 0)
		return -1;
	jf_path_pop(p, mark);
	mark = jf_path_key(p, "routes");
	if (!(v = json_object_get(obj, "routes")))
		return jf_fail(err, 400, p,
			       "required: a list of routes (or use the shorthand \"hosts\" + \"backends\")");
	if (tenant_routes_parse(v, p, err, t) < 0)
		return -1;
	jf_path_pop(p, mark);
	return 0;
}

static int tenant_parse(const char *name, json_t *obj, struct jf_path *p, struct cfg_err *err,
			struct cfg_tenant *t)
{
	static const char *const full_keys[] = {"routes", "services", "rate_limit", "max_inflight",
						"tls", "https_redirect", "hsts", "max_body", NULL};
	static const char *const short_keys[] = {"hosts", "backends", "rate_limit", "max_inflight",
						 "tls", "https_redirect", "hsts", "max_body", NULL};
	bool shorthand;

	memset(t, 0, sizeof(*t));
	t->https_redirect = true;
	t->max_body = -1;
	if (!tenant_name_valid(name))
		return jf_fail(err, 400, p,
			       "invalid tenant name \"%.80s\": use lowercase letters, digits and '-', at most 63, starting with a letter or digit",
			       name ? name : "");
	if (jf_expect_object(obj, p, err) < 0)
		return -1;
	if (!(t->name = strdup(name)))
		return tenant_oom(err, p);
	shorthand = json_object_get(obj, "hosts") || json_object_get(obj, "backends");
	if (shorthand) {
		const char *full = json_object_get(obj, "routes") ? "routes"
				   : json_object_get(obj, "services") ? "services" : NULL;
		if (full) {
			jf_path_key(p, full);
			return jf_fail(err, 400, p,
				       "cannot be combined with the shorthand \"hosts\"/\"backends\"; use one form");
		}
	}
	if (jf_check_keys(obj, shorthand ? short_keys : full_keys, p, err) < 0)
		return -1;
	if ((shorthand ? tenant_shorthand : tenant_full)(obj, p, err, t) < 0)
		return -1;
	if (tenant_common(obj, p, err, t) < 0)
		return -1;
	t->json = json_incref(obj);
	return 0;
}

int cfg_tenant_from_json(const char *name, json_t *obj, struct cfg_tenant *out,
			 struct cfg_err *err)
{
	struct jf_path p;

	jf_path_init(&p, "");
	if (tenant_parse(name, obj, &p, err, out) < 0) {
		cfg_tenant_clear(out);
		return -1;
	}
	return 0;
}

int cfg_tenants_from_json(json_t *root, struct cfg_tenants *out, struct cfg_err *err)
{
	static const char *const keys[] = {"tenants", NULL};
	struct jf_path p;
	const char *name;
	json_t *tenants, *v;
	size_t n;

	memset(out, 0, sizeof(*out));
	jf_path_init(&p, "");
	if (!json_is_object(root))
		return jf_fail(err, 400, &p, "expected {\"tenants\": {NAME: TENANT, ...}}");
	if (jf_check_keys(root, keys, &p, err) < 0)
		return -1;
	jf_path_key(&p, "tenants");
	if (!(tenants = json_object_get(root, "tenants")))
		return jf_fail(err, 400, &p, "required: an object of NAME: TENANT");
	if (jf_expect_object(tenants, &p, err) < 0)
		return -1;
	n = json_object_size(tenants);
	if (n > CFG_TENANTS_MAX)
		return jf_fail(err, 400, &p, "at most %d tenants", CFG_TENANTS_MAX);
	if (n && !(out->v = calloc(n, sizeof(*out->v))))
		return tenant_oom(err, &p);
	json_object_foreach(tenants, name, v) {
		size_t mark = jf_path_key(&p, name);

		if (tenant_parse(name, v, &p, err, &out->v[out->n]) < 0) {
			cfg_tenant_clear(&out->v[out->n]);
			cfg_tenants_clear(out);
			return -1;
		}
		out->n++;
		jf_path_pop(&p, mark);
	}
	return 0;
}

int cfg_tenants_load_file(const char *path, struct cfg_tenants *out, struct cfg_err *err)
{
	json_t *root = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = jf_load_file(path, TENANT_FILE_MAX, true, &root, err);
	if (rc <= 0)
		return rc; /* 0: no file yet, an empty table */
	rc = cfg_tenants_from_json(root, out, err);
	json_decref(root);
	return rc;
}

json_t *cfg_tenants_to_json(const struct cfg_tenants *ts)
{
	json_t *root = json_object(), *tenants = json_object();

	if (!root || !tenants || json_object_set(root, "tenants", tenants) < 0)
		goto fail;
	for (size_t i = 0; ts && i < ts->n; i++) {
		/* Tenants built by hand (no json) cannot be written back faithfully;
		 * only loaded tenants are persisted. */
		if (!ts->v[i].json)
			continue;
		if (json_object_set(tenants, ts->v[i].name, ts->v[i].json) < 0)
			goto fail;
	}
	json_decref(tenants);
	return root;
fail:
	json_decref(tenants);
	json_decref(root);
	return NULL;
}
