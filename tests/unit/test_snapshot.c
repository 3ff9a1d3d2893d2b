/*
 * test_snapshot.c - the compiled routing table: exact, wildcard and regex
 * hosts, priorities, host ownership, isolation conflicts between tenants,
 * backend state carried over a rebuild, reference counting.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/snapshot.h"
#include "config/tenant_load.h"
#include "tests/unit/check.h"

static int load(const char *text, struct cfg_tenants *ts, struct cfg_err *err)
{
	json_error_t je;
	json_t *v = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	int rc;

	if (!v) {
		fprintf(stderr, "test JSON does not parse: %s\n", je.text);
		memset(ts, 0, sizeof(*ts));
		return -2;
	}
	rc = cfg_tenants_from_json(v, ts, err);
	if (rc < 0)
		fprintf(stderr, "tenants rejected: %s: %s\n", err->field, err->message);
	json_decref(v);
	return rc;
}

/* build: tenants text to a snapshot, or NULL with err set. */
static struct route_snapshot *build(const char *text, const struct route_snapshot *prev,
				    struct cfg_err *err)
{
	struct cfg_tenants ts;
	struct route_snapshot *s;

	if (load(text, &ts, err) < 0)
		return NULL;
	s = snapshot_build(&ts, 1, prev, err);
	if (s)
		CHECK(ts.v == NULL && ts.n == 0); /* ownership taken */
	cfg_tenants_clear(&ts);
	return s;
}

static bool no_header(const void *ud, const char *name, size_t name_len, size_t idx,
		      const char **val, size_t *val_len)
{
	(void)ud, (void)name, (void)name_len, (void)idx, (void)val, (void)val_len;
	return false;
}

/* route: match host and path; "tenant/service" or "-" when nothing matches. */
static const char *route(const struct route_snapshot *s, const char *host, const char *path)
{
	static char buf[160];
	struct rule_req req = {
		.host = host, .host_len = strlen(host), .path = path, .path_len = strlen(path),
		.method = "GET", .method_len = 3, .client = NULL, .header_get = no_header,
	};
	struct route_match m;

	if (!snapshot_match(s, &req, &m))
		return "-";
	CHECK(m.service == &m.tenant->services[m.route->service_idx]);
	snprintf(buf, sizeof(buf), "%s/%s", m.tenant->name, m.service->name);
	return buf;
}

static const char *owner(const struct route_snapshot *s, const char *host)
{
	const struct cfg_tenant *t = snapshot_tenant_for_host(s, host, strlen(host));

	return t ? t->name : "-";
}

/* A tenant in the full form with one route per (rule, service) pair. */
#define T1(name, rule, svc) \
	"\"" name "\": {\"routes\": [{\"rule\": \"" rule "\", \"service\": \"" svc "\"}]," \
	" \"services\": {\"" svc "\": {\"backends\": [\"" name "-" svc ":80\"]}}}"

static void test_routing(void)
{
	static const char text[] =
		"{\"tenants\": {"
		" \"alpha\": {\"routes\": ["
		"   {\"rule\": \"Host(`a.example.com`)\", \"service\": \"web\"},"
		"   {\"rule\": \"Host(`a.example.com`) && PathPrefix(`/api`)\", \"service\": \"api\"},"
		"   {\"rule\": \"Host(`*.apps.example.com`)\", \"service\": \"web\"},"
		"   {\"rule\": \"Host(`special.apps.example.com`)\", \"service\": \"api\"},"
		"   {\"rule\": \"Host(`pinned.example.com`)\", \"service\": \"web\", \"priority\": 1000},"
		"   {\"rule\": \"Host(`pinned.example.com`) && PathPrefix(`/api`)\", \"service\": \"api\"}],"
		"  \"services\": {\"web\": {\"backends\": [\"alpha-web:80\"]}, \"api\": {\"backends\": [\"alpha-api:80\"]}}},"
		" \"beta\": {\"routes\": ["
		"   {\"rule\": \"Host(`b.example.com`) || Host(`b2.example.com`)\", \"service\": \"web\"},"
		"   {\"rule\": \"HostRegexp(`^[a-z]+\\\\.regex\\\\.test$`)\", \"service\": \"web\"},"
		"   {\"rule\": \"HostRegexp(`^api\\\\.regex\\\\.test$`) && Path(`/v1`)\", \"service\": \"maint\"}],"
		"  \"services\": {\"web\": {\"backends\": [\"beta-web:80\"]},"
		"   \"maint\": {\"respond\": {\"status\": 503}}}},"
		" " T1("gamma", "Host(`*.shared.test`)", "web") ","
		" " T1("delta", "HostRegexp(`^x\\\\.shared\\\\.test$`)", "web") "}}";
	struct cfg_err err = {0};
	struct route_snapshot *s = build(text, NULL, &err);

	CHECK(s != NULL);
	if (!s) {
		fprintf(stderr, "build: %s: %s\n", err.field, err.message);
		return;
	}
	CHECK(snapshot_generation(s) == 1);
	CHECK(snapshot_tenants(s)->n == 4);
	/* Exact hosts, path prefix beating the plain host by default priority. */
	CHECK_STR(route(s, "a.example.com", "/"), "alpha/web");
	CHECK_STR(route(s, "a.example.com", "/api/x"), "alpha/api");
	CHECK_STR(route(s, "b.example.com", "/"), "beta/web");
	CHECK_STR(route(s, "b2.example.com", "/x"), "beta/web");
	CHECK_STR(route(s, "c.example.com", "/"), "-");
	CHECK_STR(route(s, "example.com", "/"), "-");
	/* Explicit priority wins over a longer rule. */
	CHECK_STR(route(s, "pinned.example.com", "/api"), "alpha/web");
	/* Wildcard: exactly one label; an exact claim of the same tenant ranks by priority. */
	CHECK_STR(route(s, "x.apps.example.com", "/"), "alpha/web");
	CHECK_STR(route(s, "special.apps.example.com", "/"), "alpha/api");
	CHECK_STR(route(s, "x.y.apps.example.com", "/"), "-");
	CHECK_STR(route(s, "apps.example.com", "/"), "-");
	CHECK_STR(route(s, ".apps.example.com", "/"), "-");
	/* Regex hosts. */
	CHECK_STR(route(s, "foo.regex.test", "/"), "beta/web");
	CHECK_STR(route(s, "api.regex.test", "/v1"), "beta/maint");
	CHECK_STR(route(s, "api.regex.test", "/v2"), "beta/web");
	CHECK_STR(route(s, "foo1.regex.test", "/"), "-");
	/* A regex of another tenant never takes a host under a wildcard. */
	CHECK_STR(route(s, "x.shared.test", "/"), "gamma/web");
	CHECK_STR(route(s, "y.shared.test", "/"), "gamma/web");
	CHECK_STR(route(s, "", "/"), "-");

	CHECK_STR(owner(s, "a.example.com"), "alpha");
	CHECK_STR(owner(s, "b2.example.com"), "beta");
	CHECK_STR(owner(s, "q.apps.example.com"), "alpha");
	CHECK_STR(owner(s, "foo.regex.test"), "beta");
	CHECK_STR(owner(s, "x.shared.test"), "gamma");
	CHECK_STR(owner(s, "nobody.test"), "-");
	CHECK_STR(owner(s, "a.example.co"), "-");
	/* Lengths are honoured: a prefix of a known host is another host. */
	CHECK(snapshot_tenant_for_host(s, "a.example.comX", 13) != NULL);
	CHECK(snapshot_tenant_for_host(s, "a.example.com", 12) == NULL);
	CHECK(snapshot_tenant_for_host(s, "", 0) == NULL);
	CHECK(snapshot_tenant_for_host(NULL, "a", 1) == NULL);
	snapshot_release(s);
}

static void test_empty(void)
{
	struct cfg_tenants ts = {0};
	struct cfg_err err = {0};
	struct route_snapshot *s = snapshot_build(&ts, 7, NULL, &err);

	CHECK(s != NULL);
	CHECK(snapshot_generation(s) == 7);
	CHECK(snapshot_tenants(s)->n == 0);
	CHECK_STR(route(s, "a.example.com", "/"), "-");
	CHECK_STR(owner(s, "a.example.com"), "-");
	snapshot_release(s);
	snapshot_release(NULL);
	CHECK(snapshot_retain(NULL) == NULL);
}

/* CONFLICT: the tenants build fails with 409 on field, naming frag. */
#define CONFLICT(TEXT, FIELD, FRAG1, FRAG2) do { \
	struct cfg_tenants ts_; struct cfg_err e_ = {0}; \
	CHECK(load(TEXT, &ts_, &e_) == 0); \
	size_t n_ = ts_.n; \
	CHECK(snapshot_build(&ts_, 2, NULL, &e_) == NULL); \
	CHECK(e_.status == 409); \
	CHECK_STR(e_.field, FIELD); \
	if (!strstr(e_.message, FRAG1) || !strstr(e_.message, FRAG2)) { \
		check_failed++; \
		fprintf(stderr, "%s:%d: \"%s\" lacks \"%s\" or \"%s\"\n", __FILE__, __LINE__, e_.message, FRAG1, FRAG2); \
	} else { check_passed++; } \
	CHECK(ts_.n == n_ && ts_.v != NULL); /* untouched on failure */ \
	cfg_tenants_clear(&ts_); \
} while (0)

static void test_isolation(void)
{
	struct cfg_err err = {0};
	struct route_snapshot *s;

	/* exact / exact */
	CONFLICT("{\"tenants\": {" T1("alpha", "Host(`a.example.com`)", "web") ","
		 T1("beta", "Host(`a.example.com`)", "web") "}}",
		 "tenants.beta.routes[0].rule", "host a.example.com is already routed by tenant 'alpha'", "");
	/* exact hidden in an alternative, second route */
	CONFLICT("{\"tenants\": {" T1("alpha", "Host(`a.example.com`) || Host(`b.example.com`)", "web") ","
		 "\"beta\": {\"routes\": [{\"rule\": \"Host(`c.example.com`)\", \"service\": \"web\"},"
		 " {\"rule\": \"Host(`b.example.com`) && PathPrefix(`/x`)\", \"service\": \"web\"}],"
		 " \"services\": {\"web\": {\"backends\": [\"b:80\"]}}}}}",
		 "tenants.beta.routes[1].rule", "b.example.com", "tenant 'alpha'");
	/* wildcard then exact under it */
	CONFLICT("{\"tenants\": {" T1("alpha", "Host(`*.example.com`)", "web") ","
		 T1("beta", "Host(`x.example.com`)", "web") "}}",
		 "tenants.beta.routes[0].rule", "host x.example.com", "tenant 'alpha'");
	/* exact then a wildcard over it */
	CONFLICT("{\"tenants\": {" T1("alpha", "Host(`x.example.com`)", "web") ","
		 T1("beta", "Host(`*.example.com`)", "web") "}}",
		 "tenants.beta.routes[0].rule", "host x.example.com", "tenant 'alpha'");
	/* wildcard / wildcard */
	CONFLICT("{\"tenants\": {" T1("alpha", "Host(`*.example.com`)", "web") ","
		 T1("beta", "Host(`*.example.com`) && Path(`/b`)", "web") "}}",
		 "tenants.beta.routes[0].rule", "*.example.com", "tenant 'alpha'");
	/* regex after exact */
	CONFLICT("{\"tenants\": {" T1("alpha", "Host(`a.example.com`)", "web") ","
		 T1("beta", "HostRegexp(`^[a-z]+\\\\.example\\\\.com$`)", "web") "}}",
		 "tenants.beta.routes[0].rule", "a.example.com", "tenant 'alpha'");
	/* exact after regex */
	CONFLICT("{\"tenants\": {" T1("alpha", "HostRegexp(`^[a-z]+\\\\.example\\\\.com$`)", "web") ","
		 T1("beta", "Host(`a.example.com`)", "web") "}}",
		 "tenants.beta.routes[0].rule", "host a.example.com is already routed by tenant 'alpha'", "");

	/* One tenant may claim a host from several routes, and a wildcard over
	 * its own exact hosts; other tenants may hold deeper or sibling names. */
	s = build("{\"tenants\": {"
		  "\"alpha\": {\"routes\": [{\"rule\": \"Host(`a.example.com`)\", \"service\": \"web\"},"
		  " {\"rule\": \"Host(`a.example.com`) && Path(`/x`)\", \"service\": \"web\"},"
		  " {\"rule\": \"Host(`*.example.com`)\", \"service\": \"web\"},"
		  " {\"rule\": \"HostRegexp(`^r[0-9]\\\\.example\\\\.net$`)\", \"service\": \"web\"}],"
		  " \"services\": {\"web\": {\"backends\": [\"a:80\"]}}},"
		  T1("beta", "Host(`x.a.example.com`) || Host(`example.com`) || Host(`*.b.example.com`)", "web") "}}",
		  NULL, &err);
	CHECK(s != NULL);
	if (!s)
		fprintf(stderr, "build: %s: %s\n", err.field, err.message);
	CHECK_STR(s ? route(s, "x.a.example.com", "/") : NULL, "beta/web");
	CHECK_STR(s ? route(s, "q.example.com", "/") : NULL, "alpha/web");
	CHECK_STR(s ? route(s, "q.b.example.com", "/") : NULL, "beta/web");
	snapshot_release(s);
}

static void test_conflict_third_owner(void)
{
	/* alpha owns y.example.com, beta x.example.com; alpha's wildcard must
	 * still see beta's host below it. */
	struct cfg_tenants ts;
	struct cfg_err err = {0};

	CHECK(load("{\"tenants\": {" T1("beta", "Host(`x.example.com`)", "web") ","
		   "\"alpha\": {\"routes\": [{\"rule\": \"Host(`y.example.com`)\", \"service\": \"web\"},"
		   " {\"rule\": \"Host(`*.example.com`)\", \"service\": \"web\"}],"
		   " \"services\": {\"web\": {\"backends\": [\"a:80\"]}}}}}", &ts, &err) == 0);
	CHECK(snapshot_build(&ts, 1, NULL, &err) == NULL);
	CHECK(err.status == 409);
	CHECK_STR(err.field, "tenants.alpha.routes[1].rule");
	CHECK(strstr(err.message, "x.example.com") && strstr(err.message, "tenant 'beta'"));
	cfg_tenants_clear(&ts);

	/* Sibling hosts of two tenants under one parent are fine on their own. */
	CHECK(load("{\"tenants\": {" T1("alpha", "Host(`y.example.com`)", "web") ","
		   T1("beta", "Host(`x.example.com`)", "web") "}}", &ts, &err) == 0);
	struct route_snapshot *s = snapshot_build(&ts, 1, NULL, &err);
	CHECK(s != NULL);
	snapshot_release(s);
	cfg_tenants_clear(&ts);
}

static void test_duplicate_names(void)
{
	struct cfg_tenants a, b, both;
	struct cfg_err err = {0};

	CHECK(load("{\"tenants\": {" T1("same", "Host(`a.test`)", "web") "}}", &a, &err) == 0);
	CHECK(load("{\"tenants\": {" T1("same", "Host(`b.test`)", "web") "}}", &b, &err) == 0);
	both.n = 2;
	both.v = calloc(2, sizeof(*both.v));
	if (!both.v || a.n != 1 || b.n != 1)
		return;
	both.v[0] = a.v[0];
	both.v[1] = b.v[0];
	free(a.v);
	free(b.v);
	CHECK(snapshot_build(&both, 1, NULL, &err) == NULL);
	CHECK(err.status == 409);
	CHECK_STR(err.field, "tenants.same");
	cfg_tenants_clear(&both);
}

#define STATE_TENANTS(backends, svc) \
	"{\"tenants\": {\"alpha\": {\"routes\": [{\"rule\": \"Host(`a.test`)\", \"service\": \"" svc "\"}]," \
	" \"services\": {\"" svc "\": {\"backends\": " backends "}}}," \
	T1("beta", "Host(`b.test`)", "web") "}}"

static struct cfg_service *service_of(struct route_snapshot *s, size_t t, size_t i)
{
	return &snapshot_tenants(s)->v[t].services[i];
}

static void test_state_carry(void)
{
	struct cfg_err err = {0};
	struct route_snapshot *s1, *s2, *s3;
	struct cfg_service *svc;

	s1 = build(STATE_TENANTS("[\"10.0.0.1:80\", \"10.0.0.2:80\"]", "web"), NULL, &err);
	CHECK(s1 != NULL);
	if (!s1)
		return;
	svc = service_of(s1, 0, 0);
	atomic_store(&svc->state[1].fails, 5);
	atomic_store(&svc->state[1].down_until_ms, 1234);
	atomic_store(&svc->state[1].check_down, true);
	atomic_store(&svc->state[1].active, 7);
	atomic_store(&svc->state[0].fails, 1);
	atomic_store(&service_of(s1, 1, 0)->state[0].fails, 9);

	/* 10.0.0.2:80 survives and moves to index 0; 10.0.0.1:80 is gone. */
	s2 = build(STATE_TENANTS("[\"10.0.0.2:80\", \"10.0.0.3:80\", \"10.0.0.2:81\"]", "web"), s1, &err);
	CHECK(s2 != NULL);
	if (s2) {
		svc = service_of(s2, 0, 0);
		CHECK(atomic_load(&svc->state[0].fails) == 5);
		CHECK(atomic_load(&svc->state[0].down_until_ms) == 1234);
		CHECK(atomic_load(&svc->state[0].check_down));
		CHECK(atomic_load(&svc->state[0].active) == 0); /* in-flight stays with s1 */
		CHECK(atomic_load(&svc->state[1].fails) == 0);
		CHECK(atomic_load(&svc->state[2].fails) == 0);
		CHECK(atomic_load(&service_of(s2, 1, 0)->state[0].fails) == 9);
	}
	/* A renamed service starts fresh. */
	s3 = build(STATE_TENANTS("[\"10.0.0.2:80\"]", "web2"), s2, &err);
	CHECK(s3 != NULL);
	if (s3)
		CHECK(atomic_load(&service_of(s3, 0, 0)->state[0].fails) == 0);
	snapshot_release(s1);
	snapshot_release(s2);
	snapshot_release(s3);
}

static void test_refcount(void)
{
	struct cfg_err err = {0};
	struct route_snapshot *s = build("{\"tenants\": {" T1("alpha", "Host(`a.test`)", "web") "}}",
					 NULL, &err);

	CHECK(s != NULL);
	if (!s)
		return;
	CHECK(snapshot_retain(s) == s);
	snapshot_release(s);
	/* Still alive: one reference left. */
	CHECK_STR(route(s, "a.test", "/"), "alpha/web");
	CHECK_STR(snapshot_tenants(s)->v[0].name, "alpha");
	snapshot_release(s); /* frees; ASan reports a leak or double free otherwise */
}

static void test_many(void)
{
	/* Many tenants: every host found, none confused. */
	enum { N = 3000 };
	size_t cap = (size_t)N * 160 + 64, off = 0;
	char *text = malloc(cap);
	struct cfg_err err = {0};
	struct route_snapshot *s;
	int wrong = 0;

	if (!text)
		return;
	off += (size_t)snprintf(text + off, cap - off, "{\"tenants\": {");
	for (int i = 0; i < N; i++)
		off += (size_t)snprintf(text + off, cap - off,
					"%s\"t%d\": {\"hosts\": [\"h%d.example.com\", \"*.w%d.example.com\"],"
					" \"backends\": [\"b%d:80\"]}",
					i ? "," : "", i, i, i, i);
	snprintf(text + off, cap - off, "}}");
	s = build(text, NULL, &err);
	free(text);
	CHECK(s != NULL);
	if (!s)
		return;
	for (int i = 0; i < N; i++) {
		char host[64], want[64];
		snprintf(host, sizeof(host), "h%d.example.com", i);
		snprintf(want, sizeof(want), "t%d/default", i);
		wrong += strcmp(route(s, host, "/"), want) != 0;
		snprintf(host, sizeof(host), "x.w%d.example.com", i);
		wrong += strcmp(route(s, host, "/"), want) != 0;
	}
	CHECK(wrong == 0);
	CHECK_STR(route(s, "h3000.example.com", "/"), "-");
	snapshot_release(s);
}

int main(void)
{
	test_routing();
	test_empty();
	test_isolation();
	test_conflict_third_owner();
	test_duplicate_names();
	test_state_carry();
	test_refcount();
	test_many();
	return check_done();
}
