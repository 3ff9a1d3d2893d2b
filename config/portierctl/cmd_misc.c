/*
 * cmd_misc.c - the commands about the edge as a whole: cert ls, cert renew,
 * status, reload and check.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/fileio.h"
#include "config/portierctl/cmd.h"
#include "config/portierctl/ctl.h"
#include "config/portierctl/table.h"
#include "config/tenant_load.h"

#define MISC_HOST_MAX 253
#define MISC_PATH_MAX 1024

/* misc_positional: the n positional arguments of a command into args, or
 * CTL_USAGE after saying what is wrong. */
static int misc_positional(int argc, char **argv, const char *usage, const char *what,
			   const char **args, int n)
{
	bool options = true;
	int got = 0;

	for (int i = 0; i < argc; i++) {
		if (options && strcmp(argv[i], "--") == 0) {
			options = false;
			continue;
		}
		if (options && argv[i][0] == '-' && argv[i][1] != '\0')
			return cmd_usage_error(usage, "unknown option %s", argv[i]);
		if (got == n)
			return cmd_usage_error(usage, "unexpected argument %s", argv[i]);
		args[got++] = argv[i];
	}
	if (got < n)
		return cmd_usage_error(usage, "missing %s", what);
	return CTL_OK;
}

static void misc_oom(void)
{
	fprintf(stderr, "portierctl: out of memory\n");
}

int cmd_cert_ls(const struct ctl *c, int argc, char **argv)
{
	enum { COLS = 7 };
	static const char *const headers[COLS] = {"host",   "source", "state", "not after",
						  "next attempt", "issuer", "last error"};
	static const char *const keys[COLS] = {"host",	       "source", "state", "not_after",
					       "next_attempt", "issuer", "last_error"};
	struct table t = {0};
	json_t *answer = NULL, *certs, *cert;
	size_t i;
	int rc;

	if ((rc = misc_positional(argc, argv, CMD_USAGE_CERT_LS, "", NULL, 0)) != CTL_OK)
		return rc;
	rc = ctl_request(c, "GET", "/v1/certs", NULL, NULL, &answer);
	if (rc != CTL_OK || c->json)
		goto out;
	certs = json_object_get(answer, "certs");
	if (json_array_size(certs) == 0) {
		printf("no certificates yet\n");
		goto out;
	}
	if (table_init(&t, COLS, headers) < 0)
		goto nomem;
	json_array_foreach(certs, i, cert) {
		char bufs[COLS][32];
		const char *cells[COLS];

		for (size_t k = 0; k < COLS; k++)
			cells[k] = ctl_json_text(json_object_get(cert, keys[k]), bufs[k],
						 sizeof(bufs[k]));
		if (table_add(&t, cells) < 0)
			goto nomem;
	}
	table_print(&t, stdout);
	goto out;
nomem:
	misc_oom();
	rc = CTL_REJECTED;
out:
	table_free(&t);
	json_decref(answer);
	return rc;
}

int cmd_cert_renew(const struct ctl *c, int argc, char **argv)
{
	const char *host;
	char escaped[MISC_HOST_MAX * 3 + 1], path[MISC_PATH_MAX];
	json_t *answer = NULL;
	int rc;

	if ((rc = misc_positional(argc, argv, CMD_USAGE_CERT_RENEW, "the HOST", &host, 1)) !=
	    CTL_OK)
		return rc;
	if (!*host || strlen(host) > MISC_HOST_MAX || strpbrk(host, "/ \t\r\n") ||
	    ctl_path_escape(host, escaped, sizeof(escaped)) < 0)
		return cmd_usage_error(CMD_USAGE_CERT_RENEW,
				       "invalid host \"%s\": expected a name such as app.example.com",
				       host);
	snprintf(path, sizeof(path), "/v1/certs/%s/renew", escaped);
	rc = ctl_request(c, "POST", path, NULL, NULL, &answer);
	if (rc == CTL_OK && !c->json) {
		printf("renewal of ");
		table_put(stdout, host);
		printf(" started\n");
	}
	json_decref(answer);
	return rc;
}

/* misc_uptime: seconds as "3d 4h 5m 6s", leading zero units left out. */
static const char *misc_uptime(const json_t *v, char *buf, size_t len)
{
	uint64_t s, d, h, m;
	size_t o = 0;

	if (json_is_integer(v) && json_integer_value(v) >= 0)
		s = (uint64_t)json_integer_value(v);
	else if (json_is_real(v) && json_real_value(v) >= 0 && json_real_value(v) < 1e15)
		s = (uint64_t)json_real_value(v);
	else
		return "-";
	d = s / 86400;
	h = s / 3600 % 24;
	m = s / 60 % 60;
	s %= 60;
	if (d)
		o += (size_t)snprintf(buf + o, len - o, "%llud ", (unsigned long long)d);
	if (d || h)
		o += (size_t)snprintf(buf + o, len - o, "%lluh ", (unsigned long long)h);
	if (d || h || m)
		o += (size_t)snprintf(buf + o, len - o, "%llum ", (unsigned long long)m);
	snprintf(buf + o, len - o, "%llus", (unsigned long long)s);
	return buf;
}

static int misc_name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* misc_status_tenants: the TENANT / REQUESTS table, by name. -1 on ENOMEM. */
static int misc_status_tenants(const json_t *tenants)
{
	static const char *const headers[] = {"tenant", "requests"};
	struct table t = {0};
	const char **names;
	const char *key;
	json_t *v;
	size_t n = 0;
	int rc = -1;

	if (json_object_size(tenants) == 0) {
		printf("no tenants\n");
		return 0;
	}
	if (!(names = calloc(json_object_size(tenants), sizeof(*names))))
		return -1;
	json_object_foreach((json_t *)tenants, key, v)
		names[n++] = key;
	qsort(names, n, sizeof(*names), misc_name_cmp);
	if (table_init(&t, 2, headers) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		char buf[32];
		const json_t *requests = json_object_get(json_object_get(tenants, names[i]),
							 "requests");

		if (table_add(&t, (const char *const[]){names[i],
							ctl_json_text(requests, buf, sizeof(buf))}) < 0)
			goto out;
	}
	table_print(&t, stdout);
	rc = 0;
out:
	table_free(&t);
	free(names);
	return rc;
}

int cmd_status(const struct ctl *c, int argc, char **argv)
{
	static const char *const keys[] = {"version", "generation", "workers", "connections"};
	struct table t = {0};
	json_t *answer = NULL;
	char buf[64];
	int rc;

	if ((rc = misc_positional(argc, argv, CMD_USAGE_STATUS, "", NULL, 0)) != CTL_OK)
		return rc;
	rc = ctl_request(c, "GET", "/v1/status", NULL, NULL, &answer);
	if (rc != CTL_OK || c->json)
		goto out;
	if (table_init(&t, 2, NULL) < 0 ||
	    table_add(&t, (const char *const[]){
				  "version", ctl_json_text(json_object_get(answer, keys[0]), buf,
							   sizeof(buf))}) < 0 ||
	    table_add(&t, (const char *const[]){
				  "uptime", misc_uptime(json_object_get(answer, "uptime_s"), buf,
							sizeof(buf))}) < 0)
		goto nomem;
	for (size_t i = 1; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (table_add(&t, (const char *const[]){keys[i],
							ctl_json_text(json_object_get(answer, keys[i]),
								      buf, sizeof(buf))}) < 0)
			goto nomem;
	}
	table_print(&t, stdout);
	printf("\n");
	if (misc_status_tenants(json_object_get(answer, "tenants")) < 0)
		goto nomem;
	goto out;
nomem:
	misc_oom();
	rc = CTL_REJECTED;
out:
	table_free(&t);
	json_decref(answer);
	return rc;
}

int cmd_reload(const struct ctl *c, int argc, char **argv)
{
	json_t *answer = NULL;
	char buf[32];
	int rc;

	if ((rc = misc_positional(argc, argv, CMD_USAGE_RELOAD, "", NULL, 0)) != CTL_OK)
		return rc;
	rc = ctl_request(c, "POST", "/v1/reload", NULL, NULL, &answer);
	if (rc == CTL_OK && !c->json)
		printf("reloaded: generation %s\n",
		       ctl_json_text(json_object_get(answer, "generation"), buf, sizeof(buf)));
	json_decref(answer);
	return rc;
}

/* misc_check_path: /v1/validate, with ?name= the file's base name without
 * ".json" for a single tenant when that is a valid tenant name (else the
 * edge's default name). */
static void misc_check_path(const char *file, bool document, char *path, size_t len)
{
	const char *base = strrchr(file, '/');
	char name[64];
	size_t n;

	base = base ? base + 1 : file;
	n = strlen(base);
	if (n > 5 && strcmp(base + n - 5, ".json") == 0)
		n -= 5;
	snprintf(path, len, "/v1/validate");
	if (document || n == 0 || n >= sizeof(name))
		return;
	memcpy(name, base, n);
	name[n] = '\0';
	if (tenant_name_valid(name))
		snprintf(path, len, "/v1/validate?name=%s", name);
}

int cmd_check(const struct ctl *c, int argc, char **argv)
{
	const char *file;
	char err[1024], path[MISC_PATH_MAX];
	json_error_t jerr;
	json_t *root = NULL, *answer = NULL;
	size_t len;
	char *text;
	int rc, status;

	if ((rc = misc_positional(argc, argv, CMD_USAGE_CHECK, "the FILE", &file, 1)) != CTL_OK)
		return rc;
	if (!(text = fileio_read(file, CTL_MAX_FILE, &len, err, sizeof(err)))) {
		fprintf(stderr, "portierctl: check: ");
		table_put(stderr, err);
		fputc('\n', stderr);
		return CTL_USAGE;
	}
	/* Duplicate keys are refused as the edge's loader refuses them, rather
	 * than silently merged on the way. */
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (!root) {
		fprintf(stderr, "%s:%d:%d: ", file, jerr.line, jerr.column);
		table_put(stderr, jerr.text);
		fputc('\n', stderr);
		return CTL_REJECTED;
	}
	misc_check_path(file, json_is_object(root) && json_object_get(root, "tenants"), path,
			sizeof(path));
	status = ctl_call(c, "POST", path, root, &answer, err, sizeof(err));
	json_decref(root);
	if (status < 0) {
		fprintf(stderr, "portierctl: ");
		table_put(stderr, err);
		fputc('\n', stderr);
		return CTL_UNREACHABLE;
	}
	rc = status >= 200 && status <= 299 && !json_is_false(json_object_get(answer, "ok"))
		     ? CTL_OK
		     : CTL_REJECTED;
	if (c->json && answer)
		ctl_print_json(answer);
	else if (rc != CTL_OK)
		ctl_report_error_as(file, status, answer);
	else if (!c->json)
		printf("%s: ok\n", file);
	json_decref(answer);
	return rc;
}
