/*
 * provision_render.c - template rendering. Only the two placeholders
 * portierctl knows are substituted; compose interpolates the rest from .env
 * when it runs, so secrets never appear in the rendered compose files.
 */
#include "config/portierctl/provision_render.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/fileio.h"

static const char *const prov_render_compose_names[] = {
	"compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml", NULL,
};

char *prov_render_text(const char *text, size_t len, const char *tenant, const char *domain,
		       size_t *outlen)
{
	static const char ph_tenant[] = "${TENANT}", ph_domain[] = "${DOMAIN}";
	size_t lt = strlen(tenant), ld = strlen(domain), grow = lt > ld ? lt : ld;
	size_t cap, o = 0;
	char *out;

	/* Worst case: every 9-byte placeholder grows to the longer value. */
	if (len > PROV_RENDER_FILE_MAX || grow > 512)
		return NULL;
	cap = len + (len / (sizeof(ph_tenant) - 1) + 1) * grow + 1;
	if (!(out = malloc(cap)))
		return NULL;
	for (size_t i = 0; i < len;) {
		const char *val = NULL;
		size_t vlen = 0;

		if (text[i] == '$' && i + 1 < len && text[i + 1] == '$') {
			out[o++] = '$';
			out[o++] = '$';
			i += 2;
			continue;
		}
		if (len - i >= sizeof(ph_tenant) - 1 &&
		    memcmp(text + i, ph_tenant, sizeof(ph_tenant) - 1) == 0) {
			val = tenant;
			vlen = lt;
		} else if (len - i >= sizeof(ph_domain) - 1 &&
			   memcmp(text + i, ph_domain, sizeof(ph_domain) - 1) == 0) {
			val = domain;
			vlen = ld;
		}
		if (val) {
			memcpy(out + o, val, vlen);
			o += vlen;
			i += sizeof(ph_tenant) - 1;
		} else {
			out[o++] = text[i++];
		}
	}
	out[o] = '\0';
	*outlen = o;
	return out;
}

int prov_render_compose_name(const char *dir, char *out, size_t outlen)
{
	for (size_t i = 0; prov_render_compose_names[i]; i++) {
		char path[PATH_MAX];
		struct stat sb;
		int n = snprintf(path, sizeof(path), "%s/%s", dir, prov_render_compose_names[i]);

		if (n < 0 || (size_t)n >= sizeof(path))
			return -1;
		if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
			n = snprintf(out, outlen, "%s", prov_render_compose_names[i]);
			return n < 0 || (size_t)n >= outlen ? -1 : 0;
		}
	}
	return -1;
}

/* prov_render_one: render tmpl/name into dir/name. */
static int prov_render_one(const char *tmpl, const char *dir, const char *name,
			   const char *tenant, const char *domain, char *err, size_t errlen)
{
	char path[PATH_MAX];
	char *text = NULL, *out = NULL;
	size_t len = 0, outlen = 0;
	int rc = -1;
	int n = snprintf(path, sizeof(path), "%s/%s", tmpl, name);

	if (n < 0 || (size_t)n >= sizeof(path)) {
		snprintf(err, errlen, "%s/%s: path too long", tmpl, name);
		goto out;
	}
	if (!(text = fileio_read(path, PROV_RENDER_FILE_MAX, &len, err, errlen)))
		goto out;
	if (!(out = prov_render_text(text, len, tenant, domain, &outlen))) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	rc = fileio_write_atomic(dir, name, out, outlen, 0644, err, errlen);
out:
	free(text);
	free(out);
	return rc;
}

int prov_render_dir(const char *tmpl, const char *dir, const char *tenant, const char *domain,
		    char *err, size_t errlen)
{
	DIR *d = opendir(tmpl);
	struct dirent *ent;
	unsigned seen = 0;
	int written = 0, rc = -1;

	if (!d) {
		snprintf(err, errlen, "template %s: %s", tmpl, strerror(errno));
		return -1;
	}
	while ((ent = readdir(d))) {
		struct stat sb;

		if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
			continue;
		if (++seen > PROV_RENDER_FILES_MAX) {
			snprintf(err, errlen, "template %s: more than %d entries", tmpl,
				 PROV_RENDER_FILES_MAX);
			goto out;
		}
		if (ent->d_name[0] == '.' || strcmp(ent->d_name, "README.md") == 0)
			continue;
		if (fstatat(dirfd(d), ent->d_name, &sb, 0) < 0 || !S_ISREG(sb.st_mode)) {
			fprintf(stderr, "skipped template entry %s/%s: not a regular file\n", tmpl,
				ent->d_name);
			continue;
		}
		if (prov_render_one(tmpl, dir, ent->d_name, tenant, domain, err, errlen) < 0)
			goto out;
		written++;
	}
	rc = written;
out:
	closedir(d);
	return rc;
}
