/*
 * provision_render.h - the tenant template rendered into a tenant's
 * directory: ${TENANT} and ${DOMAIN} filled in, everything else verbatim.
 */
#pragma once

#include <stddef.h>

#define PROV_RENDER_FILES_MAX 256        /* template entries considered */
#define PROV_RENDER_FILE_MAX (1u << 20)  /* bytes per template file */

/* prov_render_text: text[0..len) with every ${TENANT} and ${DOMAIN} replaced;
 * "$$" (compose's escaped '$') and any other ${VAR} are copied as they are.
 * Returns a new NUL-terminated string (length in *outlen), NULL when out of memory. */
char *prov_render_text(const char *text, size_t len, const char *tenant, const char *domain,
		       size_t *outlen);

/* prov_render_compose_name: the name of the compose file in dir
 * (compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml, first
 * found) into out; -1 when there is none. */
int prov_render_compose_name(const char *dir, char *out, size_t outlen);

/* prov_render_dir: render each regular file of tmpl (not README.md, not
 * dot-files, not subdirectories: those are named on stderr) into the
 * existing directory dir, replacing files atomically (mode 0644). Returns
 * the number of files written, or -1 with err (files written before the
 * failure stay). */
int prov_render_dir(const char *tmpl, const char *dir, const char *tenant, const char *domain,
		    char *err, size_t errlen);
