/*
 * test_config_tenant.c - tenants: shorthand expansion, the full form of
 * DESIGN.md section 3, the tenants document and file, and the field path and
 * message of each kind of mistake.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/rule.h"
#include "config/tenant_load.h"
#include "tests/unit/check.h"

static json_t *parse(const char *text)
{
	json_error_t je;
	json_t *v = json_loads(text, JSON_REJECT_DUPLICATES, &je);

	if (!v)
		fprintf(stderr, "test JSON does not parse: %s: %s\n", text, je.text);
	return v;
}

static int tenant_text(const char *name, const char *text, struct cfg_tenant *t,
		       struct cfg_err *err)
{
	json_t *v = parse(text);
	int rc;

	if (!v)
		return -2;
	rc = cfg_tenant_from_json(name, v, t, err);
	json_decref(v);
	return rc;
}

static void check_msg(const char *msg, const char *frag, int line)
{
	if (strstr(msg, frag)) {
		check_passed++;
	} else {
		check_failed++;
		fprintf(stderr, "%s:%d: message \"%s\" lacks \"%s\"\n", __FILE__, line, msg, frag);
	}
}

/* BAD: the tenant text is rejected naming field (relative) and frag. */
#define BAD(TEXT, FIELD, FRAG) do { \
	struct cfg_tenant t_; struct cfg_err e_ = {0}; \
	CHECK(tenant_text("acme", TEXT, &t_, &e_) == -1); \
	CHECK_STR(e_.field, FIELD); \
	check_msg(e_.message, FRAG, __LINE__); \
	CHECK(e_.status == 400); \
	CHECK(t_.name == NULL && t_.routes == NULL && t_.json == NULL); \
} while (0)

/* BAD_DOC: the tenants document is rejected naming field (absolute). */
#define BAD_DOC(TEXT, FIELD, FRAG) do { \
	struct cfg_tenants ts_; struct cfg_err e_ = {0}; json_t *v_ = parse(TEXT); \
	CHECK(v_ && cfg_tenants_from_json(v_, &ts_, &e_) == -1); \
	CHECK_STR(e_.field, FIELD); \
	check_msg(e_.message, FRAG, __LINE__); \
	CHECK(ts_.v == NULL && ts_.n == 0); \
	json_decref(v_); \
} while (0)

static void test_names(void)
{
	char n63[64], n64[65];

	memset(n63, 'a', 63);
	n63[63] = '\0';
	memset(n64, 'b', 64);
	n64[64] = '\0';
	CHECK(tenant_name_valid("a"));
	CHECK(tenant_name_valid("a-b"));
	CHECK(tenant_name_valid("0abc"));
	CHECK(tenant_name_valid("demo-2-"));
	CHECK(tenant_name_valid(n63));
	CHECK(!tenant_name_valid(n64));
	CHECK(!tenant_name_valid("-a"));
	CHECK(!tenant_name_valid("A"));
	CHECK(!tenant_name_valid("a_b"));
	CHECK(!tenant_name_valid("a.b"));
	CHECK(!tenant_name_valid(""));
	CHECK(!tenant_name_valid(NULL));
}

static void test_shorthand(void)
{
	json_t *v = parse("{\"hosts\": [\"Demo.Example.com\", \"api-demo.example.com\", \"*.demo.example.com\"],"
			  " \"backends\": [\"demo-openwebui:8080\", \"[fd00::7]:8081\"],"
			  " \"rate_limit\": {\"average\": 10}, \"tls\": \"internal\", \"hsts\": true}");
	struct cfg_tenant t;
	struct cfg_err err = {0};

	CHECK(cfg_tenant_from_json("demo", v, &t, &err) == 0);
	if (err.message[0])
		fprintf(stderr, "shorthand: %s: %s\n", err.field, err.message);
	CHECK_STR(t.name, "demo");
	CHECK(t.n_services == 1);
	if (t.n_services == 1) {
		struct cfg_service *s = &t.services[0];
		CHECK_STR(s->name, "default");
		CHECK(!s->is_respond);
		CHECK(s->n_backends == 2 && s->state != NULL);
		CHECK_STR(s->backends[0].host, "demo-openwebui");
		CHECK(s->backends[0].port == 8080);
		CHECK_STR(s->backends[1].host, "fd00::7");
		CHECK(s->balance == CFG_BAL_ROUND_ROBIN);
		CHECK(!s->health.enabled && s->health.max_fails == 3);
		CHECK(s->health.cooldown_ms == 10000);
	}
	CHECK(t.n_routes == 3);
	if (t.n_routes == 3) {
		CHECK_STR(t.routes[0].rule_text, "Host(`demo.example.com`)");
		CHECK_STR(t.routes[1].rule_text, "Host(`api-demo.example.com`)");
		CHECK_STR(t.routes[2].rule_text, "Host(`*.demo.example.com`)");
		CHECK_STR(t.routes[0].service, "default");
		CHECK(t.routes[0].service_idx == 0 && t.routes[0].rule != NULL);
		CHECK(t.routes[0].priority == (int64_t)strlen("Host(`demo.example.com`)"));
		CHECK(t.routes[0].strip_prefix == NULL && !t.routes[0].rate_limit.set);
	}
	CHECK(t.rate_limit.set && t.rate_limit.average == 10 && t.rate_limit.burst == 10);
	CHECK(t.rate_limit.period_ms == 1000 && !t.rate_limit.per_client_ip);
	CHECK(t.rate_limit.max_clients == 65536 && t.rate_limit.ipv6_prefix == 64);
	CHECK(t.tls == CFG_TLS_INTERNAL);
	CHECK(t.https_redirect && t.hsts);
	CHECK(t.max_body == -1);
	CHECK(t.json == v); /* kept as written, shorthand and all */
	CHECK(v->refcount == 2);
	cfg_tenant_clear(&t);
	CHECK(t.name == NULL && t.json == NULL);
	CHECK(v->refcount == 1);
	cfg_tenant_clear(&t);
	cfg_tenant_clear(NULL);
	json_decref(v);
}

static const char design_tenant[] =
	"{\"routes\": ["
	"  {\"rule\": \"Host(`demo.example.com`)\", \"service\": \"chat\"},"
	"  {\"rule\": \"Host(`api-demo.example.com`)\", \"service\": \"api\"},"
	"  {\"rule\": \"Host(`demo.example.com`) && PathPrefix(`/api`)\", \"service\": \"api\","
	"   \"strip_prefix\": \"/api\", \"priority\": 0}],"
	" \"services\": {"
	"  \"chat\": {\"backends\": [\"demo-openwebui:8080\"]},"
	"  \"api\": {\"backends\": [\"demo-litellm:4000\", \"10.0.0.7:4000\"], \"balance\": \"least_conn\","
	"           \"health\": {\"path\": \"/health\", \"interval\": \"10s\"}},"
	"  \"maint\": {\"respond\": {\"status\": 503, \"body\": \"down for maintenance\\n\"}}},"
	" \"rate_limit\": {\"average\": 100, \"period\": \"1s\", \"burst\": 200, \"per\": \"tenant\"},"
	" \"tls\": \"acme\", \"https_redirect\": true, \"hsts\": false, \"max_body\": \"100m\"}";

static void test_full(void)
{
	struct cfg_tenant t;
	struct cfg_err err = {0};
	struct cfg_static st = {0};

	CHECK(tenant_text("demo", design_tenant, &t, &err) == 0);
	if (err.message[0])
		fprintf(stderr, "full: %s: %s\n", err.field, err.message);
	CHECK(t.n_routes == 3 && t.n_services == 3);
	if (t.n_routes == 3 && t.n_services == 3) {
		CHECK_STR(t.services[0].name, "chat");
		CHECK_STR(t.services[1].name, "api");
		CHECK_STR(t.services[2].name, "maint");
		CHECK(t.routes[0].service_idx == 0 && t.routes[1].service_idx == 1);
		CHECK(t.routes[2].service_idx == 1);
		CHECK_STR(t.routes[2].strip_prefix, "/api");
		CHECK(t.routes[2].priority == 0);
		CHECK(t.routes[1].priority == (int64_t)strlen("Host(`api-demo.example.com`)"));
		CHECK(t.services[1].balance == CFG_BAL_LEAST_CONN);
		CHECK(t.services[1].n_backends == 2);
		CHECK(t.services[1].health.enabled);
		CHECK_STR(t.services[1].health.path, "/health");
		CHECK(t.services[1].health.interval_ms == 10000 && t.services[1].health.timeout_ms == 2000);
		CHECK(t.services[2].is_respond && t.services[2].respond.status == 503);
		CHECK_STR(t.services[2].respond.body, "down for maintenance\n");
		CHECK(t.services[2].respond.body_len == 21);
		CHECK_STR(t.services[2].respond.content_type, "text/plain; charset=utf-8");
		CHECK(t.services[2].state == NULL && t.services[2].n_backends == 0);
	}
	CHECK(t.rate_limit.set && t.rate_limit.average == 100 && t.rate_limit.burst == 200);
	CHECK(t.tls == CFG_TLS_ACME && t.https_redirect && !t.hsts);
	CHECK(t.max_body == 100 * 1024 * 1024);
	st.tls.dflt = CFG_TLS_OFF;
	CHECK(cfg_tenant_tls(&t, &st) == CFG_TLS_ACME);
	cfg_tenant_clear(&t);

	/* Route limits, files TLS, respond details, all health keys. */
	CHECK(tenant_text("x1",
			  "{\"routes\": [{\"rule\": \"Host(`x.test`)\", \"service\": \"s\", \"priority\": -5,"
			  "  \"rate_limit\": {\"average\": 5, \"period\": \"1m\", \"burst\": 1, \"per\": \"client_ip\","
			  "   \"max_clients\": 100, \"ipv6_prefix\": 56}}],"
			  " \"services\": {\"s\": {\"respond\": {\"status\": 204, \"content_type\": \"application/json\"}},"
			  "  \"web_1\": {\"backends\": [\"web_1:80\"], \"balance\": \"ip_hash\","
			  "   \"health\": {\"path\": \"/\", \"interval\": \"1s\", \"timeout\": \"500ms\", \"max_fails\": 1, \"cooldown\": \"1m\"}}},"
			  " \"tls\": {\"cert\": \"/etc/c.pem\", \"key\": \"/etc/k.pem\"}, \"https_redirect\": false,"
			  " \"max_body\": 0}",
			  &t, &err) == 0);
	CHECK(t.n_routes == 1 && t.routes[0].priority == -5);
	CHECK(t.routes[0].rate_limit.set && t.routes[0].rate_limit.per_client_ip);
	CHECK(t.routes[0].rate_limit.period_ms == 60000 && t.routes[0].rate_limit.burst == 1);
	CHECK(t.routes[0].rate_limit.max_clients == 100 && t.routes[0].rate_limit.ipv6_prefix == 56);
	CHECK(!t.rate_limit.set);
	CHECK(t.services[0].is_respond && t.services[0].respond.status == 204);
	CHECK(t.services[0].respond.body_len == 0 && t.services[0].respond.body[0] == '\0');
	CHECK_STR(t.services[0].respond.content_type, "application/json");
	CHECK(t.services[1].balance == CFG_BAL_IP_HASH);
	CHECK(t.services[1].health.timeout_ms == 500 && t.services[1].health.max_fails == 1);
	CHECK(t.services[1].health.cooldown_ms == 60000);
	CHECK(t.tls == CFG_TLS_FILES);
	CHECK_STR(t.tls_cert, "/etc/c.pem");
	CHECK_STR(t.tls_key, "/etc/k.pem");
	CHECK(!t.https_redirect && t.max_body == 0);
	cfg_tenant_clear(&t);

	/* No tls: the static default applies. */
	CHECK(tenant_text("x2", "{\"hosts\": [\"x2.test\"], \"backends\": [\"a:1\"]}", &t, &err) == 0);
	CHECK(t.tls == CFG_TLS_INHERIT);
	st.tls.dflt = CFG_TLS_OFF;
	CHECK(cfg_tenant_tls(&t, &st) == CFG_TLS_OFF);
	CHECK(cfg_tenant_tls(&t, NULL) == CFG_TLS_INTERNAL);
	cfg_tenant_clear(&t);
}

static void test_bad(void)
{
	char *big;
	size_t off;

	/* Form. */
	BAD("[]", "", "expected an object");
	BAD("{\"hosts\": [\"a.test\"], \"backends\": [\"a:1\"], \"routes\": []}", "routes", "cannot be combined");
	BAD("{\"backends\": [\"a:1\"], \"services\": {}}", "services", "cannot be combined");
	BAD("{\"hosts\": [\"a.test\"]}", "backends", "required");
	BAD("{\"backends\": [\"a:1\"]}", "hosts", "required");
	BAD("{\"hosts\": [\"a.test\"], \"backends\": [\"a:1\"], \"balance\": \"ip_hash\"}", "balance", "unknown key");
	BAD("{}", "services", "required");
	BAD("{\"services\": {\"a\": {\"backends\": [\"x:1\"]}}}", "routes", "required");
	BAD("{\"services\": {\"a\": {\"backends\": [\"x:1\"]}}, \"routes\": [], \"middlewares\": 1}", "middlewares", "unknown key");
	/* Routes. */
	BAD("{\"services\": {\"a\": {\"backends\": [\"x:1\"]}}, \"routes\": []}", "routes", "at least one route");
	BAD("{\"services\": {\"a\": {\"backends\": [\"x:1\"]}}, \"routes\": {}}", "routes", "expected a list");
	BAD("{\"services\": {\"a\": {\"backends\": [\"x:1\"]}}, \"routes\": [5]}", "routes[0]", "expected an object");
	BAD("{\"services\": {\"a\": {\"backends\": [\"x:1\"]}}, \"routes\": [{\"service\": \"a\"}]}", "routes[0].rule", "required");
	BAD("{\"services\": {\"a\": {\"backends\": [\"x:1\"]}}, \"routes\": [{\"rule\": \"Host(`a.test`)\", \"service\": \"a\"},"
	    " {\"rule\": \"Host(`b.test`\", \"service\": \"a\"}]}", "routes[1].rule", "invalid rule");
	BAD("{\"services\": {\"a\": {\"backends\": [\"x:1\"]}}, \"routes\": [{\"rule\": \"HostRegexp(`(`)\", \"service\": \"a\"}]}",
	    "routes[0].rule", "invalid rule");
	BAD("{\"services\": {\"a\": {\"backends\": [\"x:1\"]}}, \"routes\": [{\"rule\": \"PathPrefix(`/`)\", \"service\": \"a\"}]}",
	    "routes[0].rule", "");
	BAD("{\"services\": {\"a\": {\"backends\": [\"x:1\"]}}, \"routes\": [{\"rule\": \"\", \"service\": \"a\"}]}",
	    "routes[0].rule", "");
	BAD("{\"services\": {\"a\": {\"backends\": [\"x:1\"]}}, \"routes\": [{\"rule\": \"Host(`a.test`)\"}]}", "routes[0].service", "required");
	BAD("{\"services\": {\"a\": {\"backends\": [\"x:1\"]}}, \"routes\": [{\"rule\": \"Host(`a.test`)\", \"service\": \"a\"},"
	    " {\"rule\": \"Host(`b.test`)\", \"service\": \"nope\"}]}", "routes[1].service", "no service \"nope\" in this tenant (services: a)");
	BAD("{\"services\": {\"a\": {\"backends\": [\"x:1\"]}}, \"routes\": [{\"rule\": \"Host(`a.test`)\", \"service\": \"a\", \"strip_prefix\": \"api\"}]}",
	    "routes[0].strip_prefix", "must start with");
	BAD("{\"services\": {\"a\": {\"backends\": [\"x:1\"]}}, \"routes\": [{\"rule\": \"Host(`a.test`)\", \"service\": \"a\", \"strip_prefix\": \"/a b\"}]}",
	    "routes[0].strip_prefix", "no spaces");
	BAD("{\"services\": {\"a\": {\"backends\": [\"x:1\"]}}, \"routes\": [{\"rule\": \"Host(`a.test`)\", \"service\": \"a\", \"priority\": \"high\"}]}",
	    "routes[0].priority", "integer");
	BAD("{\"services\": {\"a\": {\"backends\": [\"x:1\"]}}, \"routes\": [{\"rule\": \"Host(`a.test`)\", \"service\": \"a\", \"middlewares\": []}]}",
	    "routes[0].middlewares", "unknown key");
	BAD("{\"services\": {\"a\": {\"backends\": [\"x:1\"]}}, \"routes\": [{\"rule\": \"Host(`a.test`)\", \"service\": \"a\", \"rate_limit\": {\"average\": 0}}]}",
	    "routes[0].rate_limit.average", "between 1");
	/* Services. */
	BAD("{\"services\": {}, \"routes\": []}", "services", "at least one service");
	BAD("{\"services\": [], \"routes\": []}", "services", "expected an object");
	BAD("{\"services\": {\"web\": {\"backends\": [\"x:1\"], \"respond\": {}}}, \"routes\": []}", "services.web.respond", "not both");
	BAD("{\"services\": {\"web\": {}}, \"routes\": []}", "services.web", "needs \"backends\"");
	BAD("{\"services\": {\"web\": {\"backends\": []}}, \"routes\": []}", "services.web.backends", "at least one backend");
	BAD("{\"services\": {\"web\": {\"backends\": \"x:1\"}}, \"routes\": []}", "services.web.backends", "expected a list");
	BAD("{\"services\": {\"web\": {\"backends\": [\"x:1\", \"web\"]}}, \"routes\": []}", "services.web.backends[1]", "HOST:PORT");
	BAD("{\"services\": {\"web\": {\"backends\": [\"web:0\"]}}, \"routes\": []}", "services.web.backends[0]", "port 1-65535");
	BAD("{\"services\": {\"web\": {\"backends\": [\"web:70000\"]}}, \"routes\": []}", "services.web.backends[0]", "HOST:PORT");
	BAD("{\"services\": {\"web\": {\"backends\": [\"we b:80\"]}}, \"routes\": []}", "services.web.backends[0]", "HOST:PORT");
	BAD("{\"services\": {\"web\": {\"backends\": [80]}}, \"routes\": []}", "services.web.backends[0]", "expected a string");
	BAD("{\"services\": {\"web\": {\"backends\": [\"x:1\"], \"balance\": \"random\"}}, \"routes\": []}", "services.web.balance", "least_conn");
	BAD("{\"services\": {\"web\": {\"backends\": [\"x:1\"], \"health\": {\"path\": \"health\"}}}, \"routes\": []}", "services.web.health.path", "must start with");
	BAD("{\"services\": {\"web\": {\"backends\": [\"x:1\"], \"health\": {\"interval\": \"5s\"}}}, \"routes\": []}", "services.web.health.interval", "path");
	BAD("{\"services\": {\"web\": {\"backends\": [\"x:1\"], \"health\": {\"max_fails\": 0}}}, \"routes\": []}", "services.web.health.max_fails", "between 1");
	BAD("{\"services\": {\"web\": {\"backends\": [\"x:1\"], \"health\": {\"cooldown\": \"soon\"}}}, \"routes\": []}", "services.web.health.cooldown", "duration");
	BAD("{\"services\": {\"web\": {\"backends\": [\"x:1\"], \"health\": {\"pth\": \"/\"}}}, \"routes\": []}", "services.web.health.pth", "unknown key");
	BAD("{\"services\": {\"web\": {\"respond\": {\"status\": 700}}}, \"routes\": []}", "services.web.respond.status", "between 100 and 599");
	BAD("{\"services\": {\"web\": {\"respond\": {\"body\": 5}}}, \"routes\": []}", "services.web.respond.body", "expected a string");
	BAD("{\"services\": {\"web\": {\"respond\": {\"content_type\": \"a\\r\\nb: c\"}}}, \"routes\": []}", "services.web.respond.content_type", "control characters");
	BAD("{\"services\": {\"web\": {\"respond\": {}, \"balance\": \"ip_hash\"}}, \"routes\": []}", "services.web.balance", "only applies");
	BAD("{\"services\": {\"bad name\": {\"backends\": [\"x:1\"]}}, \"routes\": []}", "services.bad name", "invalid service name");
	/* Tenant-level keys. */
	BAD("{\"hosts\": [\"a.test\"], \"backends\": [\"a:1\"], \"rate_limit\": {\"average\": 0}}", "rate_limit.average", "between 1");
	BAD("{\"hosts\": [\"a.test\"], \"backends\": [\"a:1\"], \"rate_limit\": {\"burst\": 5}}", "rate_limit.average", "required");
	BAD("{\"hosts\": [\"a.test\"], \"backends\": [\"a:1\"], \"rate_limit\": {\"average\": 5, \"per\": \"ip\"}}", "rate_limit.per", "client_ip");
	BAD("{\"hosts\": [\"a.test\"], \"backends\": [\"a:1\"], \"rate_limit\": {\"average\": 5, \"ipv6_prefix\": 129}}", "rate_limit.ipv6_prefix", "between 1 and 128");
	BAD("{\"hosts\": [\"a.test\"], \"backends\": [\"a:1\"], \"rate_limit\": {\"average\": 5, \"period\": \"1x\"}}", "rate_limit.period", "duration");
	BAD("{\"hosts\": [\"a.test\"], \"backends\": [\"a:1\"], \"rate_limit\": {\"average\": 5, \"max_clients\": 0}}", "rate_limit.max_clients", "between 1");
	BAD("{\"hosts\": [\"a.test\"], \"backends\": [\"a:1\"], \"rate_limit\": 100}", "rate_limit", "expected an object");
	BAD("{\"hosts\": [\"a.test\"], \"backends\": [\"a:1\"], \"tls\": \"letsencrypt\"}", "tls", "\"acme\", \"internal\", \"off\"");
	BAD("{\"hosts\": [\"a.test\"], \"backends\": [\"a:1\"], \"tls\": {\"cert\": \"/a\"}}", "tls.key", "required");
	BAD("{\"hosts\": [\"a.test\"], \"backends\": [\"a:1\"], \"tls\": {\"cert\": \"/a\", \"key\": \"/b\", \"chain\": \"/c\"}}", "tls.chain", "unknown key");
	BAD("{\"hosts\": [\"a.test\"], \"backends\": [\"a:1\"], \"https_redirect\": \"yes\"}", "https_redirect", "true or false");
	BAD("{\"hosts\": [\"a.test\"], \"backends\": [\"a:1\"], \"hsts\": 1}", "hsts", "true or false");
	BAD("{\"hosts\": [\"a.test\"], \"backends\": [\"a:1\"], \"max_body\": \"lots\"}", "max_body", "size");
	/* Shorthand values. */
	BAD("{\"hosts\": [\"bad host\"], \"backends\": [\"a:1\"]}", "hosts[0]", "host name");
	BAD("{\"hosts\": [\"a.test\", \"A.test\"], \"backends\": [\"a:1\"]}", "hosts[1]", "twice");
	BAD("{\"hosts\": [], \"backends\": [\"a:1\"]}", "hosts", "at least one host");
	BAD("{\"hosts\": \"a.test\", \"backends\": [\"a:1\"]}", "hosts", "expected a list");
	BAD("{\"hosts\": [\"a.test\"], \"backends\": [\"a\"]}", "backends[0]", "HOST:PORT");

	/* Bounds: too many routes, a rule too long. */
	big = malloc(1100 * 64 + 8192);
	if (big) {
		off = (size_t)sprintf(big, "{\"services\": {\"a\": {\"backends\": [\"x:1\"]}}, \"routes\": [");
		for (int i = 0; i < 1001; i++)
			off += (size_t)sprintf(big + off, "%s{\"rule\": \"Host(`h%d.test`)\", \"service\": \"a\"}",
					       i ? "," : "", i);
		strcpy(big + off, "]}");
		BAD(big, "routes", "at most 1000");
		off = (size_t)sprintf(big, "{\"services\": {\"a\": {\"backends\": [\"x:1\"]}}, \"routes\": [{\"rule\": \"Host(`a.test`) && Path(`/");
		memset(big + off, 'x', 4100);
		off += 4100;
		strcpy(big + off, "`)\", \"service\": \"a\"}]}");
		BAD(big, "routes[0].rule", "too long");
		free(big);
	}
}

static void test_bad_name(void)
{
	struct cfg_tenant t;
	struct cfg_err err = {0};

	CHECK(tenant_text("Bad_Name", "{\"hosts\": [\"a.test\"], \"backends\": [\"a:1\"]}", &t, &err) == -1);
	CHECK_STR(err.field, "");
	check_msg(err.message, "invalid tenant name", __LINE__);
	CHECK(t.name == NULL);
}

static const char two_tenants[] =
	"{\"tenants\": {"
	" \"alpha\": {\"hosts\": [\"alpha.test\"], \"backends\": [\"alpha-web:80\"]},"
	" \"beta\": {\"routes\": [{\"rule\": \"Host(`beta.test`)\", \"service\": \"web\"}],"
	"          \"services\": {\"web\": {\"backends\": [\"beta-web:80\"]}}}}}";

static void test_document(void)
{
	struct cfg_tenants ts;
	struct cfg_err err = {0};
	json_t *v = parse(two_tenants), *out;

	CHECK(cfg_tenants_from_json(v, &ts, &err) == 0);
	CHECK(ts.n == 2);
	CHECK_STR(ts.n == 2 ? ts.v[0].name : NULL, "alpha");
	CHECK_STR(ts.n == 2 ? ts.v[1].name : NULL, "beta");
	out = cfg_tenants_to_json(&ts);
	CHECK(out && json_equal(out, v));
	json_decref(out);
	cfg_tenants_clear(&ts);
	CHECK(ts.v == NULL && ts.n == 0);
	cfg_tenants_clear(&ts);
	cfg_tenants_clear(NULL);
	json_decref(v);

	v = parse("{\"tenants\": {}}");
	CHECK(cfg_tenants_from_json(v, &ts, &err) == 0 && ts.n == 0);
	out = cfg_tenants_to_json(&ts);
	CHECK(out && json_equal(out, v));
	json_decref(out);
	cfg_tenants_clear(&ts);
	json_decref(v);

	BAD_DOC("{\"tenants\": {\"acme\": {\"services\": {\"a\": {\"backends\": [\"x:1\"]}},"
		" \"routes\": [{\"rule\": \"Host(`a.test`)\", \"service\": \"a\"}, {\"rule\": \"Host(`b.test`\", \"service\": \"a\"}]}}}",
		"tenants.acme.routes[1].rule", "invalid rule");
	BAD_DOC("{\"tenants\": {\"ok\": {\"hosts\": [\"ok.test\"], \"backends\": [\"a:1\"]},"
		" \"Acme\": {\"hosts\": [\"a.test\"], \"backends\": [\"a:1\"]}}}",
		"tenants.Acme", "invalid tenant name");
	BAD_DOC("{\"tenants\": {\"acme\": {\"hosts\": [\"a.test\"], \"backends\": [\"a:0\"]}}}",
		"tenants.acme.backends[0]", "HOST:PORT");
	BAD_DOC("{\"tenants\": {\"acme\": 5}}", "tenants.acme", "expected an object");
	BAD_DOC("{\"tenant\": {}}", "tenant", "unknown key");
	BAD_DOC("{}", "tenants", "required");
	BAD_DOC("{\"tenants\": []}", "tenants", "expected an object");
	BAD_DOC("[]", "", "expected {\"tenants\"");
}

static char test_dir[64];

static void test_files(void)
{
	char path[256];
	struct cfg_tenants ts;
	struct cfg_err err = {0};
	FILE *f;

	snprintf(test_dir, sizeof(test_dir), "/tmp/portier-test-tenant-XXXXXX");
	if (!mkdtemp(test_dir)) {
		CHECK(!"mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/tenants.json", test_dir);
	/* No file yet: an empty table. */
	CHECK(cfg_tenants_load_file(path, &ts, &err) == 0);
	CHECK(ts.n == 0 && ts.v == NULL);

	if ((f = fopen(path, "w"))) {
		fputs(two_tenants, f);
		fclose(f);
	}
	CHECK(cfg_tenants_load_file(path, &ts, &err) == 0);
	CHECK(ts.n == 2);
	cfg_tenants_clear(&ts);

	/* Two tenants of one name: the second key is refused by the parser. */
	if ((f = fopen(path, "w"))) {
		fputs("{\"tenants\": {\"a\": {\"hosts\": [\"a.test\"], \"backends\": [\"a:1\"]},"
		      " \"a\": {\"hosts\": [\"b.test\"], \"backends\": [\"a:1\"]}}}", f);
		fclose(f);
	}
	CHECK(cfg_tenants_load_file(path, &ts, &err) == -1);
	check_msg(err.message, "duplicate", __LINE__);
	CHECK(ts.n == 0);

	if ((f = fopen(path, "w"))) {
		fputs("{\"tenants\": {\"a\": {\"hosts\": [\"a.test\"], \"backends\": [\"a:1\"]}}, ", f);
		fclose(f);
	}
	CHECK(cfg_tenants_load_file(path, &ts, &err) == -1);
	check_msg(err.message, path, __LINE__);
	check_msg(err.message, "line 1", __LINE__);

	if ((f = fopen(path, "w"))) {
		fputs("{\"tenants\": {\"a\": {\"hosts\": [\"a.test\"], \"backends\": [\"a:1\"], \"tls\": \"on\"}}}", f);
		fclose(f);
	}
	CHECK(cfg_tenants_load_file(path, &ts, &err) == -1);
	CHECK_STR(err.field, "tenants.a.tls");
	unlink(path);
	rmdir(test_dir);
}

/* test_example: config/examples/tenants.json loads (see test_config_static). */
static void test_example(void)
{
	static const char *const candidates[] = {
		"config/examples/tenants.json", "../config/examples/tenants.json",
		"../../config/examples/tenants.json",
	};
	struct cfg_tenants ts;
	struct cfg_err err = {0};

	for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
		if (access(candidates[i], R_OK) != 0)
			continue;
		CHECK(cfg_tenants_load_file(candidates[i], &ts, &err) == 0);
		if (err.message[0])
			fprintf(stderr, "%s: %s: %s\n", candidates[i], err.field, err.message);
		CHECK(ts.n >= 2);
		cfg_tenants_clear(&ts);
		return;
	}
	CHECK(!"config/examples/tenants.json not found");
}

int main(void)
{
	test_names();
	test_shorthand();
	test_full();
	test_bad();
	test_bad_name();
	test_document();
	test_files();
	test_example();
	return check_done();
}
