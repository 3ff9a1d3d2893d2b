/*
 * provision_edge.h - the two calls provisioning makes to the running edge:
 * put a whole tenant, delete a tenant (through ctl_call).
 */
#pragma once

#include <jansson.h>

#include "config/portierctl/ctl.h"

/* What the edge answered. */
struct prov_edge_answer {
	int status;           /* HTTP status, -1 when unreachable */
	long long generation; /* from the answer, -1 when absent */
	json_t *body;         /* the JSON answer or NULL; owned, freed by prov_edge_clear */
	char why[512];        /* failure: one sentence for the operator */
};

/* prov_edge_put: PUT /v1/tenants/NAME with tenant (not stolen). Returns
 * CTL_OK (200/201), CTL_REJECTED after printing the edge's error to stderr,
 * or CTL_UNREACHABLE; a.why says why in every failure. */
int prov_edge_put(const struct ctl *c, const char *name, json_t *tenant,
		  struct prov_edge_answer *a);

/* prov_edge_delete: DELETE /v1/tenants/NAME. CTL_OK for 200 and for 404
 * (a.status tells them apart; nothing printed for 404), else as above. */
int prov_edge_delete(const struct ctl *c, const char *name, struct prov_edge_answer *a);

/* prov_edge_clear: release a.body; safe to call twice. */
void prov_edge_clear(struct prov_edge_answer *a);
