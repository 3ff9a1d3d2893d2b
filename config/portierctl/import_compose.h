/*
 * import_compose.h - what import-traefik needs from a compose file: the
 * project name, and per service its container name, its labels and the
 * ports it exposes, all with compose's variables substituted.
 */
#pragma once

#include <stddef.h>

#include <jansson.h>

#include "config/portierctl/compose_env.h"

#define ICOMP_SERVICES_MAX 256          /* compose services */
#define ICOMP_LABELS_MAX 4096           /* labels per service */
#define ICOMP_LABELS_TOTAL_MAX 65536    /* labels in all */
#define ICOMP_NAME_MAX 63               /* project (tenant) names */

/* One compose service. */
struct icomp_service {
	const char *name; /* the service's key in the file (borrowed from the tree) */
	char *container;  /* container_name when set, else name; owned */
	json_t *labels;   /* label -> value, interpolated, in file order; owned */
	unsigned n_ports; /* distinct container ports from expose and ports, counted up to 2 */
	unsigned port;    /* the port when n_ports == 1 */
};

struct icomp_project {
	json_t *tree;                 /* the parsed file */
	struct cenv env;              /* environment + the .env beside the file */
	char name[ICOMP_NAME_MAX + 1]; /* the project name as a tenant name; "" if none */
	char dir[4096];               /* the file's directory, absolute */
	struct icomp_service *svcs;
	size_t n_svcs;
};

/* icomp_load: read the compose file at path (at most 4 MiB, nesting at most
 * 64) and the .env beside it. The project name is, as with docker compose,
 * COMPOSE_PROJECT_NAME, else the top-level "name", else the directory's
 * basename, lowercased with '_', '.' and blanks turned into '-' and other
 * characters dropped. Returns 0, or -1 with err (p is then cleared). */
int icomp_load(struct icomp_project *p, const char *path, char *err, size_t errlen);

/* icomp_clear: release p; NULL-safe and idempotent. */
void icomp_clear(struct icomp_project *p);
