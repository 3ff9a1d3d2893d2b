/*
 * cmd_tenant.c - tenant add, rm, ls and show. add checks locally only what is
 * cheap (name, that hosts and backends are given, the rate's syntax) and
 * writes the shorthand form; the edge validates the rest.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/portierctl/cmd.h"
#include "config/portierctl/ctl.h"
#include "config/portierctl/table.h"
#include "config/static_load.h"
#include "config/tenant_load.h"

#define TENANT_RATE_MAX 1000000000ull      /* rate_limit.average, as the edge bounds it */
#define TENANT_BURST_MAX 1000000000000ull  /* rate_limit.burst */
#define TENANT_PATH_MAX 512

static const char tenant_name_rule[] =
	"use 1 to 63 characters of a-z, 0-9 and '-', starting with a letter or digit";

/* tenant_path: "/v1/tenants/NAME" into buf; name is already valid. */
static void tenant_path(const char *name, char *buf, size_t len)
{
	char escaped[TENANT_PATH_MAX / 2];

	if (ctl_path_escape(name, escaped, sizeof(escaped)) < 0)
		escaped[0] = '\0';
	snprintf(buf, len, "/v1/tenants/%s", escaped);
}

/* tenant_one_name: the single NAME argument of rm and show, or NULL after
 * printing what is wrong. */
static const char *tenant_one_name(int argc, char **argv, const char *usage)
{
	const char *name = NULL;
	bool options = true;

	for (int i = 0; i < argc; i++) {
		if (options && strcmp(argv[i], "--") == 0) {
			options = false;
			continue;
		}
		if (options && argv[i][0] == '-' && argv[i][1] != '\0') {
			cmd_usage_error(usage, "unknown option %s", argv[i]);
			return NULL;
		}
		if (name) {
			cmd_usage_error(usage, "unexpected argument %s", argv[i]);
			return NULL;
		}
		name = argv[i];
	}
	if (!name) {
		cmd_usage_error(usage, "missing the tenant NAME");
		return NULL;
	}
	if (!tenant_name_valid(name)) {
		cmd_usage_error(usage, "invalid tenant name \"%s\": %s", name, tenant_name_rule);
		return NULL;
	}
	return name;
}

/* tenant_parse_uint: all digits, 1..max. */
static int tenant_parse_uint(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v > (max - (uint64_t)(s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v == 0)
		return -1;
	*out = v;
	return 0;
}

/* tenant_parse_rate: "N/PERIOD" where PERIOD is a duration ("1s", "250ms")
 * or a bare unit ("s", "m", "h", "d" meaning one of it). */
static int tenant_parse_rate(const char *s, uint64_t *average, char *period, size_t len)
{
	const char *slash = strchr(s, '/');
	const char *unit;
	uint64_t ms;
	int n;

	if (!slash || tenant_parse_uint(s, (size_t)(slash - s), TENANT_RATE_MAX, average) < 0)
		return -1;
	unit = slash + 1;
	if (*unit >= '0' && *unit <= '9')
		n = snprintf(period, len, "%s", unit);
	else
		n = snprintf(period, len, "1%s", unit);
	if (n < 0 || (size_t)n >= len)
		return -1;
	if (cfg_parse_duration(period, &ms) < 0 || ms == 0)
		return -1;
	return 0;
}

/* tenant_option: when argv[*i] is opt ("--opt VALUE" or "--opt=VALUE"),
 * 1 with *value set and *i on the value's word; 0 when it is not opt; -1
 * when the value is missing or empty. */
static int tenant_option(int argc, char **argv, int *i, const char *opt, const char **value)
{
	const char *a = argv[*i];
	size_t n = strlen(opt);

	if (strncmp(a, opt, n) != 0)
		return 0;
	if (a[n] == '=') {
		*value = a + n + 1;
	} else if (a[n] == '\0') {
		/* "--host --backend x" misses the host rather than naming it. */
		if (*i + 1 >= argc || strncmp(argv[*i + 1], "--", 2) == 0)
			return -1;
		*value = argv[++*i];
	} else {
		return 0;
	}
	return **value ? 1 : -1;
}

/* tenant_add_string: append s to the array; -1 when s is not UTF-8. */
static int tenant_add_string(json_t *array, const char *s)
{
	json_t *v = json_string(s);

	return v ? json_array_append_new(array, v) : -1;
}

/* The options of tenant add, as given. */
struct tenant_add_args {
	const char *name;
	const char *rate;
	const char *burst;
	const char *per;
	const char *tls;
	json_t *hosts;
	json_t *backends;
};

/* tenant_add_parse: fill args from argv; CTL_OK or CTL_USAGE (printed). */
static int tenant_add_parse(int argc, char **argv, struct tenant_add_args *args)
{
	static const char *const u = CMD_USAGE_TENANT_ADD;
	bool options = true;

	for (int i = 0; i < argc; i++) {
		struct {
			const char *opt;
			const char **single;
			json_t *list;
		} opts[] = {
			{"--host", NULL, args->hosts},   {"--backend", NULL, args->backends},
			{"--rate", &args->rate, NULL},   {"--burst", &args->burst, NULL},
			{"--per", &args->per, NULL},     {"--tls", &args->tls, NULL},
		};
		const char *a = argv[i], *value = NULL;
		size_t k;
		int r = 0;

		if (options && strcmp(a, "--") == 0) {
			options = false;
			continue;
		}
		if (!options || a[0] != '-' || a[1] == '\0') {
			if (args->name)
				return cmd_usage_error(u, "unexpected argument %s", a);
			args->name = a;
			continue;
		}
		for (k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
			if ((r = tenant_option(argc, argv, &i, opts[k].opt, &value)) != 0)
				break;
		}
		if (r == 0)
			return cmd_usage_error(u, "unknown option %s", a);
		if (r < 0)
			return cmd_usage_error(u, "%s needs a value", opts[k].opt);
		if (opts[k].list) {
			if (tenant_add_string(opts[k].list, value) < 0)
				return cmd_usage_error(u, "%s %s: not valid UTF-8", opts[k].opt,
						       value);
		} else if (*opts[k].single) {
			return cmd_usage_error(u, "%s is given twice", opts[k].opt);
		} else {
			*opts[k].single = value;
		}
	}
	if (!args->name)
		return cmd_usage_error(u, "missing the tenant NAME");
	if (!tenant_name_valid(args->name))
		return cmd_usage_error(u, "invalid tenant name \"%s\": %s", args->name,
				       tenant_name_rule);
	if (json_array_size(args->hosts) == 0)
		return cmd_usage_error(u, "at least one --host is needed, e.g. --host app.example.com");
	if (json_array_size(args->backends) == 0)
		return cmd_usage_error(u, "at least one --backend is needed, e.g. --backend app:8080");
	if ((args->burst || args->per) && !args->rate)
		return cmd_usage_error(u, "%s needs --rate N/PERIOD", args->burst ? "--burst" : "--per");
	return CTL_OK;
}

/* tenant_rate_limit: add "rate_limit" to body when --rate is given; CTL_OK,
 * CTL_USAGE (printed) or CTL_REJECTED on ENOMEM. */
static int tenant_rate_limit(const struct tenant_add_args *args, json_t *body)
{
	static const char *const u = CMD_USAGE_TENANT_ADD;
	char period[32];
	uint64_t average, burst = 0;
	json_t *rl;

	if (!args->rate)
		return CTL_OK;
	if (tenant_parse_rate(args->rate, &average, period, sizeof(period)) < 0)
		return cmd_usage_error(u,
				       "--rate %s: expected N/PERIOD with N from 1 to %llu and a "
				       "period such as s, m, h, 1s, 10s or 500ms (e.g. 100/s)",
				       args->rate, TENANT_RATE_MAX);
	if (args->burst &&
	    tenant_parse_uint(args->burst, strlen(args->burst), TENANT_BURST_MAX, &burst) < 0)
		return cmd_usage_error(u, "--burst %s: expected a whole number from 1 to %llu",
				       args->burst, TENANT_BURST_MAX);
	if (args->per && strcmp(args->per, "tenant") != 0 && strcmp(args->per, "client_ip") != 0)
		return cmd_usage_error(u, "--per %s: expected tenant or client_ip", args->per);
	if (!(rl = json_object()) || json_object_set_new(body, "rate_limit", rl) < 0 ||
	    json_object_set_new(rl, "average", json_integer((json_int_t)average)) < 0 ||
	    json_object_set_new(rl, "period", json_string(period)) < 0 ||
	    (args->burst &&
	     json_object_set_new(rl, "burst", json_integer((json_int_t)burst)) < 0) ||
	    (args->per && json_object_set_new(rl, "per", json_string(args->per)) < 0)) {
		fprintf(stderr, "portierctl: out of memory\n");
		return CTL_REJECTED;
	}
	return CTL_OK;
}

int cmd_tenant_add(const struct ctl *c, int argc, char **argv)
{
	struct tenant_add_args args = {.hosts = json_array(), .backends = json_array()};
	json_t *body = json_object(), *answer = NULL;
	char path[TENANT_PATH_MAX], buf[32];
	int rc, status;

	if (!args.hosts || !args.backends || !body) {
		fprintf(stderr, "portierctl: out of memory\n");
		rc = CTL_REJECTED;
		goto out;
	}
	if ((rc = tenant_add_parse(argc, argv, &args)) != CTL_OK)
		goto out;
	if (args.tls && strcmp(args.tls, "acme") != 0 && strcmp(args.tls, "internal") != 0 &&
	    strcmp(args.tls, "off") != 0) {
		rc = cmd_usage_error(CMD_USAGE_TENANT_ADD, "--tls %s: expected acme, internal or off",
				     args.tls);
		goto out;
	}
	if (json_object_set(body, "hosts", args.hosts) < 0 ||
	    json_object_set(body, "backends", args.backends) < 0) {
		fprintf(stderr, "portierctl: out of memory\n");
		rc = CTL_REJECTED;
		goto out;
	}
	if ((rc = tenant_rate_limit(&args, body)) != CTL_OK)
		goto out;
	if (args.tls && json_object_set_new(body, "tls", json_string(args.tls)) < 0) {
		fprintf(stderr, "portierctl: out of memory\n");
		rc = CTL_REJECTED;
		goto out;
	}
	tenant_path(args.name, path, sizeof(path));
	rc = ctl_request(c, "PUT", path, body, &status, &answer);
	if (rc == CTL_OK && !c->json)
		printf("tenant %s %s (generation %s)\n", args.name,
		       status == 201 ? "created" : "replaced",
		       ctl_json_text(json_object_get(answer, "generation"), buf, sizeof(buf)));
out:
	json_decref(answer);
	json_decref(body);
	json_decref(args.hosts);
	json_decref(args.backends);
	return rc;
}
int cmd_tenant_rm(const struct ctl *c, int argc, char **argv)
{
	const char *name = tenant_one_name(argc, argv, CMD_USAGE_TENANT_RM);
	char path[TENANT_PATH_MAX], buf[32];
	json_t *answer = NULL;
	int rc;

	if (!name)
		return CTL_USAGE;
	tenant_path(name, path, sizeof(path));
	rc = ctl_request(c, "DELETE", path, NULL, NULL, &answer);
	if (rc == CTL_OK && !c->json)
		printf("tenant %s removed (generation %s)\n", name,
		       ctl_json_text(json_object_get(answer, "generation"), buf, sizeof(buf)));
	json_decref(answer);
	return rc;
}

int cmd_tenant_show(const struct ctl *c, int argc, char **argv)
{
	const char *name = tenant_one_name(argc, argv, CMD_USAGE_TENANT_SHOW);
	char path[TENANT_PATH_MAX];
	json_t *answer = NULL, *tenant;
	int rc;

	if (!name)
		return CTL_USAGE;
	tenant_path(name, path, sizeof(path));
	rc = ctl_request(c, "GET", path, NULL, NULL, &answer);
	if (rc == CTL_OK && !c->json) {
		/* A document even without --json: the tenant as the edge keeps it. */
		tenant = json_object_get(answer, "tenant");
		ctl_print_json(tenant ? tenant : answer);
	}
	json_decref(answer);
	return rc;
}

/* Strings collected for one cell, sorted and de-duplicated when joined. */
struct tenant_cell {
	char **v;
	size_t n;
	size_t cap;
};

static int tenant_cell_add(struct tenant_cell *l, const char *s, size_t len)
{
	char *copy;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		char **grown;

		if (cap > SIZE_MAX / sizeof(char *) || !(grown = realloc(l->v, cap * sizeof(char *))))
			return -1;
		l->v = grown;
		l->cap = cap;
	}
	if (!(copy = strndup(s, len)))
		return -1;
	l->v[l->n++] = copy;
	return 0;
}

/* A cell entry and where it came, to sort without losing the order. */
struct tenant_cell_ref {
	const char *s;
	size_t i;
};

static int tenant_cell_cmp(const void *a, const void *b)
{
	const struct tenant_cell_ref *x = a, *y = b;
	int d = strcmp(x->s, y->s);

	return d ? d : (x->i > y->i) - (x->i < y->i);
}

/* tenant_cell_join: "a,b,c" in the order first seen, without repeats; NULL
 * on ENOMEM; caller frees. Repeats are found by sorting, so a tenant with
 * many routes costs n log n, not n squared. */
static char *tenant_cell_join(struct tenant_cell *l)
{
	struct tenant_cell_ref *refs = calloc(l->n ? l->n : 1, sizeof(*refs));
	bool *repeat = calloc(l->n ? l->n : 1, sizeof(*repeat));
	size_t len = 1, o = 0;
	char *out = NULL;

	if (!refs || !repeat)
		goto out;
	for (size_t i = 0; i < l->n; i++)
		refs[i] = (struct tenant_cell_ref){l->v[i], i};
	qsort(refs, l->n, sizeof(*refs), tenant_cell_cmp);
	for (size_t i = 1; i < l->n; i++) {
		if (strcmp(refs[i].s, refs[i - 1].s) == 0)
			repeat[refs[i].i] = true;
	}
	for (size_t i = 0; i < l->n; i++)
		len += strlen(l->v[i]) + 1;
	if (!(out = malloc(len)))
		goto out;
	for (size_t i = 0; i < l->n; i++) {
		size_t n = strlen(l->v[i]);

		if (repeat[i])
			continue;
		if (o > 0)
			out[o++] = ',';
		memcpy(out + o, l->v[i], n);
		o += n;
	}
	out[o] = '\0';
out:
	free(refs);
	free(repeat);
	return out;
}

static void tenant_cell_free(struct tenant_cell *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

/* tenant_rule_hosts: add the values of the Host(...) matchers in rule, read
 * as text; *found counts them. -1 on ENOMEM. */
static int tenant_rule_hosts(const char *rule, struct tenant_cell *l, size_t *found)
{
	const char *p = rule;

	while ((p = strstr(p, "Host("))) {
		bool word = p > rule && (isalnum((unsigned char)p[-1]) || p[-1] == '_');

		p += 5;
		while (!word) {
			const char *end;
			char quote;

			while (*p == ' ' || *p == '\t')
				p++;
			quote = *p;
			if ((quote != '`' && quote != '"') || !(end = strchr(p + 1, quote)))
				break;
			if (end > p + 1) {
				if (tenant_cell_add(l, p + 1, (size_t)(end - p - 1)) < 0)
					return -1;
				(*found)++;
			}
			p = end + 1;
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p != ',')
				break;
			p++;
		}
	}
	return 0;
}

/* tenant_strings: add the string elements of an array. */
static int tenant_strings(const json_t *array, struct tenant_cell *l)
{
	size_t i;
	const json_t *v;

	json_array_foreach(array, i, v) {
		if (json_is_string(v) && tenant_cell_add(l, json_string_value(v), json_string_length(v)) < 0)
			return -1;
	}
	return 0;
}

/* tenant_hosts: shorthand "hosts", and the hosts of the full form's routes
 * (a route without Host(...) shows its rule). */
static int tenant_hosts(const json_t *tenant, struct tenant_cell *l)
{
	const json_t *route;
	size_t i;

	if (tenant_strings(json_object_get(tenant, "hosts"), l) < 0)
		return -1;
	json_array_foreach(json_object_get(tenant, "routes"), i, route) {
		const json_t *rule = json_object_get(route, "rule");
		size_t found = 0;

		if (!json_is_string(rule))
			continue;
		if (tenant_rule_hosts(json_string_value(rule), l, &found) < 0)
			return -1;
		if (found == 0 &&
		    tenant_cell_add(l, json_string_value(rule), json_string_length(rule)) < 0)
			return -1;
	}
	return 0;
}

/* tenant_backends: shorthand "backends", and every service's backends
 * ("respond STATUS" for the services portier answers itself). */
static int tenant_backends(const json_t *tenant, struct tenant_cell *l)
{
	const char *key;
	json_t *svc, *respond;
	char buf[64], text[96];

	if (tenant_strings(json_object_get(tenant, "backends"), l) < 0)
		return -1;
	json_object_foreach(json_object_get(tenant, "services"), key, svc) {
		if (tenant_strings(json_object_get(svc, "backends"), l) < 0)
			return -1;
		if (!(respond = json_object_get(svc, "respond")))
			continue;
		if (json_object_get(respond, "status"))
			snprintf(text, sizeof(text), "respond %s",
				 ctl_json_text(json_object_get(respond, "status"), buf, sizeof(buf)));
		else
			snprintf(text, sizeof(text), "respond");
		if (tenant_cell_add(l, text, strlen(text)) < 0)
			return -1;
	}
	return 0;
}

/* tenant_tls: the TLS cell; a tenant without tls uses the edge's default. */
static const char *tenant_tls(const json_t *tenant)
{
	const json_t *tls = json_object_get(tenant, "tls");

	if (!tls)
		return "default";
	if (json_is_string(tls))
		return json_string_value(tls);
	if (json_is_object(tls))
		return "files";
	return "-";
}

/* tenant_row: one line of tenant ls. -1 on ENOMEM. */
static int tenant_row(struct table *t, const char *name, const json_t *tenant)
{
	struct tenant_cell hosts = {0}, backends = {0};
	char *h = NULL, *b = NULL;
	int rc = -1;

	if (tenant_hosts(tenant, &hosts) < 0 || tenant_backends(tenant, &backends) < 0)
		goto out;
	if (!(h = tenant_cell_join(&hosts)) || !(b = tenant_cell_join(&backends)))
		goto out;
	rc = table_add(t, (const char *const[]){name, h, b, tenant_tls(tenant)});
out:
	free(h);
	free(b);
	tenant_cell_free(&hosts);
	tenant_cell_free(&backends);
	return rc;
}

static int tenant_name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int cmd_tenant_ls(const struct ctl *c, int argc, char **argv)
{
	static const char *const headers[] = {"name", "hosts", "backends", "tls"};
	struct table t = {0};
	json_t *answer = NULL, *tenants, *tenant;
	const char **names = NULL;
	const char *key;
	size_t n = 0;
	int rc;

	if (argc > 0)
		return cmd_usage_error(CMD_USAGE_TENANT_LS, "unexpected argument %s", argv[0]);
	rc = ctl_request(c, "GET", "/v1/tenants", NULL, NULL, &answer);
	if (rc != CTL_OK || c->json)
		goto out;
	tenants = json_object_get(answer, "tenants");
	if (json_object_size(tenants) == 0) {
		printf("no tenants yet\n");
		goto out;
	}
	if (!(names = calloc(json_object_size(tenants), sizeof(*names))) ||
	    table_init(&t, 4, headers) < 0)
		goto nomem;
	json_object_foreach(tenants, key, tenant)
		names[n++] = key;
	qsort(names, n, sizeof(*names), tenant_name_cmp);
	for (size_t i = 0; i < n; i++) {
		if (tenant_row(&t, names[i], json_object_get(tenants, names[i])) < 0)
			goto nomem;
	}
	table_print(&t, stdout);
	goto out;
nomem:
	fprintf(stderr, "portierctl: out of memory\n");
	rc = CTL_REJECTED;
out:
	table_free(&t);
	free(names);
	json_decref(answer);
	return rc;
}
