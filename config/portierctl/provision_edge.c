/*
 * provision_edge.c - tenant put and delete for provision, deprovision and
 * import-traefik. The edge validates; this only carries its answer back.
 */
#include "config/portierctl/provision_edge.h"

#include <stdio.h>
#include <string.h>

/* prov_edge_call: one request on /v1/tenants/NAME, answer classified. */
static int prov_edge_call(const struct ctl *c, const char *method, const char *name,
			  json_t *body, struct prov_edge_answer *a)
{
	char path[128];
	char err[256] = "";
	json_t *g;

	memset(a, 0, sizeof(*a));
	a->generation = -1;
	snprintf(path, sizeof(path), "/v1/tenants/%s", name);
	a->status = ctl_call(c, method, path, body, &a->body, err, sizeof(err));
	if (a->status < 0) {
		snprintf(a->why, sizeof(a->why), "%s", err[0] ? err : "the edge cannot be reached");
		return CTL_UNREACHABLE;
	}
	if ((g = json_object_get(a->body, "generation")) && json_is_integer(g))
		a->generation = (long long)json_integer_value(g);
	if (a->status >= 200 && a->status < 300)
		return CTL_OK;
	if (a->status == 404 && strcmp(method, "DELETE") == 0)
		return CTL_OK;
	/* The edge's own message is printed first, by ctl_report_error. */
	snprintf(a->why, sizeof(a->why), "the edge refused it (HTTP %d)", a->status);
	return ctl_report_error(a->status, a->body);
}

int prov_edge_put(const struct ctl *c, const char *name, json_t *tenant,
		  struct prov_edge_answer *a)
{
	return prov_edge_call(c, "PUT", name, tenant, a);
}

int prov_edge_delete(const struct ctl *c, const char *name, struct prov_edge_answer *a)
{
	return prov_edge_call(c, "DELETE", name, NULL, a);
}

void prov_edge_clear(struct prov_edge_answer *a)
{
	json_decref(a->body);
	a->body = NULL;
}
