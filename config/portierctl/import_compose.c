/*
 * import_compose.c - the parts of a compose file import-traefik reads:
 * services' container_name, labels (list "k=v" or map form), expose and
 * ports. Values are interpolated as docker compose does; label keys are not.
 */
#include "config/portierctl/import_compose.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/fileio.h"
#include "config/portierctl/compose_yaml.h"

/* icomp_sanitise: a project name as a tenant name ([a-z0-9][a-z0-9-]{0,62}). */
static void icomp_sanitise(const char *in, char *out, size_t outcap)
{
	size_t o = 0;

	for (; *in && o + 1 < outcap && o < ICOMP_NAME_MAX; in++) {
		char c = *in;

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c == '_' || c == '.' || c == ' ' || c == '\t')
			c = '-';
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			continue;
		if (o == 0 && c == '-')
			continue;
		out[o++] = c;
	}
	while (o > 0 && out[o - 1] == '-')
		o--;
	out[o] = '\0';
}

/* icomp_string: the interpolated text of a scalar node (NULL node: ""). */
static char *icomp_string(struct icomp_project *p, const json_t *v, const char *what,
			  char *err, size_t errlen)
{
	char why[512];
	char *s;

	if (json_is_null(v))
		return strdup("");
	if (!json_is_string(v)) {
		snprintf(err, errlen, "%s: expected a string", what);
		return NULL;
	}
	if (!(s = cenv_interpolate(&p->env, json_string_value(v), why, sizeof(why))))
		snprintf(err, errlen, "%s: %s", what, why);
	return s;
}

/* icomp_port_add: count the container port of an expose or ports entry
 * ("80", "8080:80", "127.0.0.1:8080:80/tcp", ranges count as several). */
static void icomp_port_add(struct icomp_service *s, const char *spec)
{
	const char *colon = strrchr(spec, ':'), *p = colon ? colon + 1 : spec;
	const char *slash = strchr(p, '/');
	char *end;
	unsigned long port;

	if (slash && strcmp(slash + 1, "tcp") != 0)
		return; /* udp and sctp ports carry no HTTP */
	port = strtoul(p, &end, 10);
	if (end == p || (end != slash && *end != '\0') || port == 0 || port > 65535) {
		s->n_ports = 2; /* a range or something unreadable: not one port */
		return;
	}
	if (s->n_ports == 0) {
		s->n_ports = 1;
		s->port = (unsigned)port;
	} else if (s->port != port) {
		s->n_ports = 2;
	}
}

/* icomp_ports: the expose and ports lists of one service. */
static int icomp_ports(struct icomp_project *p, struct icomp_service *s, const json_t *def,
		       char *err, size_t errlen)
{
	static const char *const keys[] = {"expose", "ports", NULL};

	for (size_t k = 0; keys[k]; k++) {
		const json_t *list = json_object_get(def, keys[k]), *v;
		size_t i;

		if (!json_is_array(list))
			continue;
		json_array_foreach(list, i, v) {
			char what[320], *spec;

			if (i >= ICOMP_LABELS_MAX)
				break;
			if (json_is_object(v)) /* long syntax: {target: 80, published: 8080} */
				v = json_object_get(v, "target");
			snprintf(what, sizeof(what), "services.%.200s.%s[%zu]", s->name, keys[k], i);
			if (!(spec = icomp_string(p, v, what, err, errlen)))
				return -1;
			icomp_port_add(s, spec);
			free(spec);
		}
	}
	return 0;
}

/* icomp_label_set: record one label (value already interpolated). */
static int icomp_label_set(struct icomp_service *s, const char *key, size_t keylen,
			   const char *value, char *err, size_t errlen)
{
	char *k = strndup(key, keylen);
	int rc = k ? json_object_set_new(s->labels, k, json_string(value)) : -1;

	free(k);
	if (rc < 0)
		snprintf(err, errlen, "label %.*s of service %.200s: out of memory or not UTF-8",
			 (int)(keylen > 200 ? 200 : keylen), key, s->name);
	return rc;
}

/* icomp_labels: the labels of one service, list or map form. */
static int icomp_labels(struct icomp_project *p, struct icomp_service *s, const json_t *def,
			size_t *total, char *err, size_t errlen)
{
	const json_t *labels = json_object_get(def, "labels"), *v;
	const char *key;
	size_t i, n = json_is_array(labels) ? json_array_size(labels) : json_object_size(labels);

	if (n > ICOMP_LABELS_MAX || (*total += n) > ICOMP_LABELS_TOTAL_MAX) {
		snprintf(err, errlen, "services.%.200s.labels: too many labels (over %d)", s->name,
			 ICOMP_LABELS_MAX);
		return -1;
	}
	if (json_is_object(labels)) {
		json_object_foreach((json_t *)labels, key, v) {
			char what[512], *value;
			int rc;

			snprintf(what, sizeof(what), "services.%.200s.labels.%.200s", s->name, key);
			if (!(value = icomp_string(p, v, what, err, errlen)))
				return -1;
			rc = icomp_label_set(s, key, strlen(key), value, err, errlen);
			free(value);
			if (rc < 0)
				return -1;
		}
		return 0;
	}
	if (!json_is_array(labels))
		return 0;
	json_array_foreach(labels, i, v) {
		char what[320], *item, *eq;
		int rc;

		snprintf(what, sizeof(what), "services.%.200s.labels[%zu]", s->name, i);
		/* The list form is interpolated whole, as compose does. */
		if (!(item = icomp_string(p, v, what, err, errlen)))
			return -1;
		eq = strchr(item, '=');
		rc = icomp_label_set(s, item, eq ? (size_t)(eq - item) : strlen(item),
				     eq ? eq + 1 : "", err, errlen);
		free(item);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* icomp_services: every service of the file. */
static int icomp_services(struct icomp_project *p, char *err, size_t errlen)
{
	const json_t *services = json_object_get(p->tree, "services"), *def;
	const char *name;
	size_t total = 0;

	if (!json_is_object(services) || json_object_size(services) == 0) {
		snprintf(err, errlen, "no services in the compose file");
		return -1;
	}
	if (json_object_size(services) > ICOMP_SERVICES_MAX) {
		snprintf(err, errlen, "more than %d services", ICOMP_SERVICES_MAX);
		return -1;
	}
	if (!(p->svcs = calloc(json_object_size(services), sizeof(*p->svcs)))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	json_object_foreach((json_t *)services, name, def) {
		struct icomp_service *s = &p->svcs[p->n_svcs];
		const json_t *cn = json_object_get(def, "container_name");

		if (!json_is_object(def))
			continue;
		p->n_svcs++;
		s->name = name;
		if (!(s->labels = json_object())) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		if (cn && !json_is_null(cn)) {
			char what[256];

			snprintf(what, sizeof(what), "services.%.200s.container_name", name);
			if (!(s->container = icomp_string(p, cn, what, err, errlen)))
				return -1;
		} else if (!(s->container = strdup(name))) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		if (icomp_ports(p, s, def, err, errlen) < 0 ||
		    icomp_labels(p, s, def, &total, err, errlen) < 0)
			return -1;
	}
	return 0;
}

/* icomp_project_name: COMPOSE_PROJECT_NAME, top-level name, directory. */
static int icomp_project_name(struct icomp_project *p, char *err, size_t errlen)
{
	const char *env = cenv_lookup(&p->env, "COMPOSE_PROJECT_NAME");
	const json_t *top = json_object_get(p->tree, "name");
	char *dup;

	if (env && *env) {
		icomp_sanitise(env, p->name, sizeof(p->name));
		return 0;
	}
	if (json_is_string(top)) {
		if (!(dup = icomp_string(p, top, "name", err, errlen)))
			return -1;
		icomp_sanitise(dup, p->name, sizeof(p->name));
		free(dup);
		if (p->name[0])
			return 0;
	}
	if (!(dup = strdup(p->dir))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	icomp_sanitise(basename(dup), p->name, sizeof(p->name));
	free(dup);
	return 0;
}

int icomp_load(struct icomp_project *p, const char *path, char *err, size_t errlen)
{
	char real[PATH_MAX], envpath[PATH_MAX + 8], why[512];
	char *text = NULL;
	size_t len = 0;
	int rc = -1;

	memset(p, 0, sizeof(*p));
	if (cenv_init(&p->env) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (!realpath(path, real)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	snprintf(p->dir, sizeof(p->dir), "%s", dirname(real));
	snprintf(envpath, sizeof(envpath), "%s/.env", p->dir);
	if (cenv_load_dotenv(&p->env, envpath, err, errlen) < 0)
		goto out;
	if (!(text = fileio_read(path, CYAML_FILE_MAX, &len, err, errlen)))
		goto out;
	if (!(p->tree = cyaml_load(text, len, why, sizeof(why)))) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto out;
	}
	if (!json_is_object(p->tree)) {
		snprintf(err, errlen, "%s: expected a mapping with \"services\"", path);
		goto out;
	}
	if (icomp_project_name(p, err, errlen) < 0 || icomp_services(p, err, errlen) < 0)
		goto out;
	rc = 0;
out:
	free(text);
	if (rc < 0)
		icomp_clear(p);
	return rc;
}

void icomp_clear(struct icomp_project *p)
{
	for (size_t i = 0; i < p->n_svcs; i++) {
		free(p->svcs[i].container);
		json_decref(p->svcs[i].labels);
	}
	free(p->svcs);
	p->svcs = NULL;
	p->n_svcs = 0;
	json_decref(p->tree);
	p->tree = NULL;
	cenv_clear(&p->env);
}
