/*
 * tenant_load.h - tenants.json and single tenants: parse, expand the
 * shorthand, validate, compile rules.
 */
#pragma once

#include <jansson.h>

#include "config/model.h"

/* The most tenants a table holds; loaders and the control API both refuse more. */
#define CFG_TENANTS_MAX 100000

/* tenant_name_valid: [a-z0-9][a-z0-9-]{0,62} */
bool tenant_name_valid(const char *name);

/* cfg_tenant_from_json: one tenant object (full or shorthand form). Fields in
 * err are relative to the tenant ("routes[1].rule"). obj is retained in
 * out->json. Returns 0, or -1 with err set and *out cleared. */
int cfg_tenant_from_json(const char *name, json_t *obj, struct cfg_tenant *out,
			 struct cfg_err *err);
void cfg_tenant_clear(struct cfg_tenant *t);

/* cfg_tenants_from_json: {"tenants": {NAME: TENANT, ...}}. Fields in err are
 * absolute ("tenants.acme.routes[0].rule"). */
int cfg_tenants_from_json(json_t *root, struct cfg_tenants *out, struct cfg_err *err);

/* cfg_tenants_load_file: the same from a file; a missing file is an empty table. */
int cfg_tenants_load_file(const char *path, struct cfg_tenants *out, struct cfg_err *err);
void cfg_tenants_clear(struct cfg_tenants *ts);

/* cfg_tenants_to_json: the document {"tenants": {...}} from the tenants' json. New reference. */
json_t *cfg_tenants_to_json(const struct cfg_tenants *ts);
