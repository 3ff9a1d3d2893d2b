/*
 * provision.c - `portierctl tenant provision` and `tenant deprovision`
 * (DESIGN.md section 5).
 *
 * provision: validate NAME and DOMAIN, render the template into OUT/NAME,
 * create OUT/NAME/.env with fresh secrets (never replaced), register the
 * tenant's routes with the edge, and with --up start the compose project.
 * Each step leaves what the earlier ones did in place and says so, so the
 * operator can finish by hand. deprovision undoes it in reverse order:
 * --down, the routes, --purge.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "config/fileio.h"
#include "config/hostname.h"
#include "config/portierctl/cmd.h"
#include "config/portierctl/ctl.h"
#include "config/portierctl/provision_docker.h"
#include "config/portierctl/provision_edge.h"
#include "config/portierctl/provision_purge.h"
#include "config/portierctl/provision_render.h"
#include "config/tenant_load.h"

#define PROV_DEFAULT_OUT "./tenants"
#define PROV_SYSTEM_TEMPLATE "/usr/share/portier/tenant"
#define PROV_LOCAL_TEMPLATE "./docker/tenant"
#define PROV_SECRET_BYTES 32
#define PROV_HOST_MAX 253
#define PROV_WEB_PORT 8080 /* the template's ${TENANT}-web */
#define PROV_API_PORT 4000 /* the template's ${TENANT}-api */

static const char *const prov_secret_names[] = {
	"POSTGRES_PASSWORD", "REDIS_PASSWORD", "API_MASTER_KEY", "WEB_SECRET_KEY", NULL,
};

struct prov_opts {
	const char *name;
	const char *domain;
	const char *tmpl;
	const char *out;
	bool up, force, down, purge;
};

/* What provision works on once the options are checked. */
struct prov_plan {
	char domain[PROV_HOST_MAX + 1];
	char web_host[PROV_HOST_MAX + 1];
	char api_host[PROV_HOST_MAX + 1];
	char dir[PATH_MAX];
	char compose[64];
};

static int prov_usage(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* prov_usage: the message, the usage lines, CTL_USAGE. */
static int prov_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "portierctl tenant %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: portierctl tenant provision NAME --domain DOMAIN [--template DIR]"
			" [--out DIR] [--up] [--force]\n"
			"       portierctl tenant deprovision NAME [--down] [--purge] [--out DIR]\n");
	return CTL_USAGE;
}

/* prov_parse: NAME and the options both commands take (provision = true
 * allows --domain --template --up --force; otherwise --down --purge).
 * "--opt VALUE" and "--opt=VALUE" both work. */
static int prov_parse(int argc, char **argv, bool provision, struct prov_opts *o)
{
	const char *cmd = provision ? "provision" : "deprovision";

	memset(o, 0, sizeof(*o));
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *eq = strchr(a, '=');
		size_t klen = eq && a[0] == '-' ? (size_t)(eq - a) : strlen(a);
		const char **slot = NULL;

		if (a[0] != '-') {
			if (o->name)
				return prov_usage(cmd, "unexpected argument \"%s\"", a);
			o->name = a;
			continue;
		}
		if (provision && strncmp(a, "--domain", klen) == 0 && klen == 8)
			slot = &o->domain;
		else if (provision && strncmp(a, "--template", klen) == 0 && klen == 10)
			slot = &o->tmpl;
		else if (strncmp(a, "--out", klen) == 0 && klen == 5)
			slot = &o->out;
		else if (provision && strcmp(a, "--up") == 0)
			o->up = true;
		else if (provision && strcmp(a, "--force") == 0)
			o->force = true;
		else if (!provision && strcmp(a, "--down") == 0)
			o->down = true;
		else if (!provision && strcmp(a, "--purge") == 0)
			o->purge = true;
		else
			return prov_usage(cmd, "unknown option \"%s\"", a);
		if (!slot)
			continue;
		if (eq)
			*slot = eq + 1;
		else if (i + 1 < argc)
			*slot = argv[++i];
		else
			return prov_usage(cmd, "%s needs a value", a);
		if (!**slot)
			return prov_usage(cmd, "%s needs a value", a);
	}
	if (!o->name)
		return prov_usage(cmd, "%s", "missing the tenant NAME");
	if (!tenant_name_valid(o->name))
		return prov_usage(cmd,
				  "invalid tenant name \"%s\": use [a-z0-9][a-z0-9-]{0,62} (lowercase letters, digits, '-')",
				  o->name);
	if (provision && !o->domain)
		return prov_usage(cmd, "%s", "missing --domain DOMAIN");
	if (!o->out)
		o->out = PROV_DEFAULT_OUT;
	return CTL_OK;
}

static bool prov_is_dir(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* prov_plan_make: the lowercased domain, the two hosts and the directory. */
static int prov_plan_make(const struct prov_opts *o, struct prov_plan *p)
{
	size_t len = strlen(o->domain);
	int n;

	memset(p, 0, sizeof(*p));
	if (len > 0 && o->domain[len - 1] == '.')
		len--; /* "example.com." is example.com */
	if (len == 0 || len > PROV_HOST_MAX)
		return prov_usage("provision", "invalid domain \"%s\"", o->domain);
	for (size_t i = 0; i < len; i++) {
		char c = o->domain[i];

		p->domain[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	if (!host_is_valid_name(p->domain, len, false))
		return prov_usage("provision",
				  "invalid domain \"%s\": expected a DNS name such as example.com",
				  o->domain);
	n = snprintf(p->web_host, sizeof(p->web_host), "%s.%s", o->name, p->domain);
	if (n < 0 || (size_t)n >= sizeof(p->web_host) ||
	    !host_is_valid_name(p->web_host, (size_t)n, false))
		return prov_usage("provision", "%s: NAME.DOMAIN is not a valid host name",
				  o->name);
	n = snprintf(p->api_host, sizeof(p->api_host), "api-%s.%s", o->name, p->domain);
	if (n < 0 || (size_t)n >= sizeof(p->api_host) ||
	    !host_is_valid_name(p->api_host, (size_t)n, false))
		return prov_usage("provision",
				  "%s: api-NAME.DOMAIN is not a valid host name (a label has at most 63 characters)",
				  o->name);
	n = snprintf(p->dir, sizeof(p->dir), "%s/%s", o->out, o->name);
	if (n < 0 || (size_t)n >= sizeof(p->dir))
		return prov_usage("provision", "--out %s: path too long", o->out);
	return CTL_OK;
}

/* prov_template_dir: --template, else $PORTIER_TEMPLATE, else the installed
 * template, else the one in a source checkout. */
static const char *prov_template_dir(const struct prov_opts *o)
{
	const char *env = getenv("PORTIER_TEMPLATE");

	if (o->tmpl)
		return o->tmpl;
	if (env && *env)
		return env;
	if (prov_is_dir(PROV_SYSTEM_TEMPLATE))
		return PROV_SYSTEM_TEMPLATE;
	return PROV_LOCAL_TEMPLATE;
}

/* prov_env_text: the .env contents with fresh secrets; cleansed by the caller. */
static int prov_env_text(const char *name, const char *domain, char *out, size_t outlen)
{
	unsigned char raw[PROV_SECRET_BYTES];
	size_t o;
	int n, rc = -1;

	n = snprintf(out, outlen,
		     "# Generated by portierctl tenant provision: the tenant's secrets.\n"
		     "# Keep this file private (mode 0600); provision --force never rewrites it.\n"
		     "TENANT=%s\nDOMAIN=%s\n",
		     name, domain);
	if (n < 0 || (size_t)n >= outlen)
		return -1;
	o = (size_t)n;
	for (size_t i = 0; prov_secret_names[i]; i++) {
		if (RAND_bytes(raw, sizeof(raw)) != 1)
			goto out;
		n = snprintf(out + o, outlen - o, "%s=", prov_secret_names[i]);
		if (n < 0 || (size_t)n >= outlen - o)
			goto out;
		o += (size_t)n;
		if (outlen - o < 2 * sizeof(raw) + 2)
			goto out;
		for (size_t k = 0; k < sizeof(raw); k++) {
			out[o++] = "0123456789abcdef"[raw[k] >> 4];
			out[o++] = "0123456789abcdef"[raw[k] & 15];
		}
		out[o++] = '\n';
		out[o] = '\0';
	}
	rc = 0;
out:
	OPENSSL_cleanse(raw, sizeof(raw));
	return rc;
}

/* prov_env_create: write dir/.env, created with O_EXCL and mode 0600 so it is
 * never readable by others, not even briefly. Returns 1 when created, 0 when
 * a .env already exists (kept as it is), -1 with err. */
static int prov_env_create(const char *dir, const char *name, const char *domain, char *err,
			   size_t errlen)
{
	char path[PATH_MAX], text[1024];
	size_t len, off = 0;
	struct stat sb;
	int fd = -1, rc = -1;

	if (snprintf(path, sizeof(path), "%s/.env", dir) >= (int)sizeof(path)) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -1;
	}
	if (lstat(path, &sb) == 0) {
		if (!S_ISREG(sb.st_mode)) {
			snprintf(err, errlen, "%s exists and is not a regular file", path);
			return -1;
		}
		if (sb.st_mode & 077)
			fprintf(stderr, "warning: %s is readable by others (mode %04o); run chmod 600 %s\n",
				path, (unsigned)(sb.st_mode & 07777), path);
		return 0;
	}
	if (prov_env_text(name, domain, text, sizeof(text)) < 0) {
		snprintf(err, errlen, "%s: cannot generate secrets (OpenSSL RAND_bytes failed)", path);
		goto out;
	}
	len = strlen(text);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}
	if (fsync(fd) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	rc = 1;
out:
	OPENSSL_cleanse(text, sizeof(text));
	if (fd >= 0) {
		close(fd);
		if (rc < 0)
			unlink(path);
	}
	return rc;
}

/* prov_dir_create: make OUT and OUT/NAME (0700). An existing OUT/NAME is
 * refused unless force, and must then be a real directory. */
static int prov_dir_create(const struct prov_opts *o, const struct prov_plan *p)
{
	char err[512];
	struct stat sb;

	if (fileio_mkdirs(o->out, 0755, 0755, err, sizeof(err)) < 0) {
		fprintf(stderr, "portierctl: %s\n", err);
		return CTL_REJECTED;
	}
	if (mkdir(p->dir, 0700) == 0)
		return CTL_OK;
	if (errno != EEXIST) {
		fprintf(stderr, "portierctl: %s: %s\n", p->dir, strerror(errno));
		return CTL_REJECTED;
	}
	if (!o->force) {
		fprintf(stderr,
			"portierctl: %s already exists: use --force to render its files again (its .env and secrets are kept)\n",
			p->dir);
		return CTL_REJECTED;
	}
	if (lstat(p->dir, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
		fprintf(stderr, "portierctl: %s is not a directory (a symbolic link is refused)\n",
			p->dir);
		return CTL_REJECTED;
	}
	return CTL_OK;
}

/* prov_tenant_json: the tenant the template serves (web and api), tls acme. */
static json_t *prov_tenant_json(const char *name, const struct prov_plan *p)
{
	char web_rule[PROV_HOST_MAX + 16], api_rule[PROV_HOST_MAX + 16];
	char web_be[128], api_be[128];

	snprintf(web_rule, sizeof(web_rule), "Host(`%s`)", p->web_host);
	snprintf(api_rule, sizeof(api_rule), "Host(`%s`)", p->api_host);
	snprintf(web_be, sizeof(web_be), "%s-web:%d", name, PROV_WEB_PORT);
	snprintf(api_be, sizeof(api_be), "%s-api:%d", name, PROV_API_PORT);
	return json_pack("{s:[{s:s,s:s},{s:s,s:s}],s:{s:{s:[s]},s:{s:[s]}},s:s}",
			 "routes", "rule", web_rule, "service", "web", "rule", api_rule, "service",
			 "api", "services", "web", "backends", web_be, "api", "backends", api_be,
			 "tls", "acme");
}

/* prov_compose: run `docker compose -p NAME -f FILE [--env-file ENV] ACTION...`.
 * state tells the operator what is already in place when it fails. */
static int prov_compose(const char *name, const char *dir, const char *action,
			const char *state)
{
	char docker[PATH_MAX], file[PATH_MAX], env[PATH_MAX], compose[64];
	char line[3 * PATH_MAX], err[512] = "";
	char *argv[12];
	size_t n = 0;
	int st;

	if (prov_render_compose_name(dir, compose, sizeof(compose)) < 0) {
		fprintf(stderr, "portierctl: no compose file (compose.yml) in %s: %s\n", dir, state);
		return CTL_REJECTED;
	}
	snprintf(file, sizeof(file), "%s/%s", dir, compose);
	snprintf(env, sizeof(env), "%s/.env", dir);
	argv[n++] = "docker";
	argv[n++] = "compose";
	argv[n++] = "-p";
	argv[n++] = (char *)name;
	argv[n++] = "-f";
	argv[n++] = file;
	if (access(env, F_OK) == 0) {
		argv[n++] = "--env-file";
		argv[n++] = env;
	}
	argv[n++] = (char *)action;
	if (strcmp(action, "up") == 0)
		argv[n++] = "-d";
	argv[n] = NULL;
	prov_docker_cmdline(argv, line, sizeof(line));
	if (!prov_docker_find(docker, sizeof(docker))) {
		fprintf(stderr, "portierctl: docker is not installed: %s; run: %s\n", state, line);
		return CTL_REJECTED;
	}
	st = prov_docker_run(docker, argv, err, sizeof(err));
	if (st < 0) {
		fprintf(stderr, "portierctl: %s: %s; run: %s\n", err, state, line);
		return CTL_REJECTED;
	}
	if (st != 0) {
		fprintf(stderr, "portierctl: docker compose %s failed (exit %d): %s; run: %s\n",
			action, st, state, line);
		return CTL_REJECTED;
	}
	return CTL_OK;
}

int cmd_tenant_provision(const struct ctl *c, int argc, char **argv)
{
	struct prov_opts o;
	struct prov_plan p;
	struct prov_edge_answer a = {0};
	const char *tmpl;
	char err[PATH_MAX + 512], state[PATH_MAX + 64];
	json_t *tenant = NULL;
	FILE *info = c->json ? stderr : stdout; /* --json keeps stdout for the answer */
	int rc, files, env;

	if ((rc = prov_parse(argc, argv, true, &o)) != CTL_OK ||
	    (rc = prov_plan_make(&o, &p)) != CTL_OK)
		return rc;
	tmpl = prov_template_dir(&o);
	if (prov_render_compose_name(tmpl, p.compose, sizeof(p.compose)) < 0) {
		fprintf(stderr,
			"portierctl: no tenant template at %s (no compose.yml there): use --template DIR or PORTIER_TEMPLATE\n",
			tmpl);
		return CTL_REJECTED;
	}
	if ((rc = prov_dir_create(&o, &p)) != CTL_OK)
		return rc;
	rc = CTL_REJECTED;
	if ((files = prov_render_dir(tmpl, p.dir, o.name, p.domain, err, sizeof(err))) < 0) {
		fprintf(stderr, "portierctl: %s (files rendered so far are in %s)\n", err, p.dir);
		goto out;
	}
	if ((env = prov_env_create(p.dir, o.name, p.domain, err, sizeof(err))) < 0) {
		fprintf(stderr, "portierctl: %s (files rendered in %s; routes not registered)\n",
			err, p.dir);
		goto out;
	}
	fprintf(info, "rendered %d file%s from %s into %s; %s\n", files, files == 1 ? "" : "s", tmpl,
	       p.dir, env ? "secrets generated in .env (mode 0600)" : "kept the existing .env and its secrets");
	if (!(tenant = prov_tenant_json(o.name, &p))) {
		fprintf(stderr, "portierctl: out of memory\n");
		goto out;
	}
	if ((rc = prov_edge_put(c, o.name, tenant, &a)) != CTL_OK) {
		fprintf(stderr, "portierctl: files rendered in %s; routes not registered: %s\n", p.dir,
			a.why);
		goto out;
	}
	if (c->json && a.body) {
		ctl_print_json(a.body);
	} else {
		printf("tenant %s %s (generation %lld): https://%s -> %s-web:%d, https://%s -> %s-api:%d\n",
		       o.name, a.status == 201 ? "registered" : "updated", a.generation, p.web_host,
		       o.name, PROV_WEB_PORT, p.api_host, o.name, PROV_API_PORT);
	}
	if (o.up) {
		snprintf(state, sizeof(state), "files are in %s and routes are registered", p.dir);
		if ((rc = prov_compose(o.name, p.dir, "up", state)) != CTL_OK)
			goto out;
		fprintf(info, "started the compose project %s\n", o.name);
	}
	rc = CTL_OK;
out:
	json_decref(tenant);
	prov_edge_clear(&a);
	return rc;
}

int cmd_tenant_deprovision(const struct ctl *c, int argc, char **argv)
{
	struct prov_opts o;
	struct prov_edge_answer a = {0};
	char dir[PATH_MAX], err[PATH_MAX + 256], state[PATH_MAX + 64];
	int rc, n;

	if ((rc = prov_parse(argc, argv, false, &o)) != CTL_OK)
		return rc;
	n = snprintf(dir, sizeof(dir), "%s/%s", o.out, o.name);
	if (n < 0 || (size_t)n >= sizeof(dir))
		return prov_usage("deprovision", "--out %s: path too long", o.out);
	if (o.down) {
		if (!prov_is_dir(dir)) {
			fprintf(stderr, "portierctl: %s does not exist: cannot run docker compose down (nothing changed)\n",
				dir);
			return CTL_REJECTED;
		}
		snprintf(state, sizeof(state), "routes are still registered and files are in %s", dir);
		if ((rc = prov_compose(o.name, dir, "down", state)) != CTL_OK)
			return rc;
		fprintf(c->json ? stderr : stdout, "stopped the compose project %s\n", o.name);
	}
	if ((rc = prov_edge_delete(c, o.name, &a)) != CTL_OK) {
		fprintf(stderr, "portierctl: routes of %s not removed: %s%s\n", o.name, a.why,
			o.purge ? " (files kept)" : "");
		goto out;
	}
	if (c->json && a.body) {
		ctl_print_json(a.body);
	} else if (a.status == 404) {
		printf("tenant %s not registered with the edge\n", o.name);
	} else {
		printf("tenant %s removed from the edge (generation %lld)\n", o.name, a.generation);
	}
	if (o.purge) {
		rc = CTL_REJECTED;
		n = prov_purge(o.out, o.name, err, sizeof(err));
		if (n < 0) {
			fprintf(stderr, "portierctl: %s\n", err);
			goto out;
		}
		if (n == 0)
			fprintf(c->json ? stderr : stdout, "%s does not exist: nothing to purge\n", dir);
		else
			fprintf(c->json ? stderr : stdout,
				"removed %s (docker volumes %s-* are kept: docker volume rm to delete data)\n",
				dir, o.name);
	}
	rc = CTL_OK;
out:
	prov_edge_clear(&a);
	return rc;
}
