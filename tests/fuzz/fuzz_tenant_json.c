/*
 * fuzz_tenant_json.c - libFuzzer: bytes -> tenants document -> validation ->
 * routing snapshot -> a few lookups -> release. Everything the control socket
 * accepts goes through this path, so it must never crash, hang or leak.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config/snapshot.h"
#include "config/tenant_load.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool fuzz_no_header(const void *ud, const char *name, size_t name_len, size_t idx,
			   const char **val, size_t *val_len)
{
	return false;
}

/* fuzz_lookup: route one host through the snapshot, as a request would. */
static void fuzz_lookup(const struct route_snapshot *s, const char *host)
{
	struct rule_req req = {
		.host = host, .host_len = strlen(host), .path = "/api/x", .path_len = 6,
		.method = "GET", .method_len = 3, .header_get = fuzz_no_header,
	};
	struct route_match m;

	snapshot_tenant_for_host(s, host, strlen(host));
	snapshot_match(s, &req, &m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfg_tenants ts;
	struct cfg_err err;
	struct route_snapshot *s, *s2;
	json_t *root;

	root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (!root)
		return 0;
	if (cfg_tenants_from_json(root, &ts, &err) == 0) {
		s = snapshot_build(&ts, 1, NULL, &err);
		cfg_tenants_clear(&ts);
		if (s) {
			const struct cfg_tenants *built = snapshot_tenants(s);

			/* Every first claimed host, then a rebuild carrying state over. */
			for (size_t i = 0; i < built->n && i < 8; i++) {
				const struct rule_host *hosts;
				size_t n;
				char msg[64];

				if (built->v[i].n_routes &&
				    rule_hosts(built->v[i].routes[0].rule, &hosts, &n, msg, sizeof(msg)) == 0 &&
				    n > 0)
					fuzz_lookup(s, hosts[0].value);
			}
			fuzz_lookup(s, "a.example.com");
			fuzz_lookup(s, "x.example.com");
			if (cfg_tenants_from_json(root, &ts, &err) == 0) {
				s2 = snapshot_build(&ts, 2, s, &err);
				cfg_tenants_clear(&ts);
				snapshot_release(s2);
			}
			snapshot_release(s);
		}
	}
	/* A single tenant, as PUT /v1/tenants/NAME gives it. */
	if (json_is_object(root)) {
		struct cfg_tenant t;
		if (cfg_tenant_from_json("fuzz", root, &t, &err) == 0)
			cfg_tenant_clear(&t);
	}
	json_decref(root);
	return 0;
}
