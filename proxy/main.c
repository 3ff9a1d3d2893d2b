/*
 * main.c - the portier command: run the edge, or check a configuration.
 */
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/snapshot.h"
#include "config/static_load.h"
#include "config/tenant_load.h"
#include "proxy/core/log.h"
#include "proxy/edge.h"

/* Without -c: a development edge in ./portier-state on 127.0.0.1:8080 and
 * :8443, internal CA, and a demo tenant on first start. */
static const char main_default_config[] =
	"{\"listen\": {\"http\": \"127.0.0.1:8080\", \"https\": \"127.0.0.1:8443\"},"
	" \"state_dir\": \"portier-state\","
	" \"control\": {\"socket\": \"portier-state/control.sock\"},"
	" \"tls\": {\"default\": \"internal\"}}";

static const char main_demo_tenants[] =
	"{\n"
	"  \"tenants\": {\n"
	"    \"demo\": {\n"
	"      \"routes\": [{\"rule\": \"Host(`demo.localhost`)\", \"service\": \"hello\"}],\n"
	"      \"services\": {\"hello\": {\"respond\": {\"status\": 200,\n"
	"        \"body\": \"hello from portier: the demo tenant answers\\n\"}}}\n"
	"    }\n"
	"  }\n"
	"}\n";

static void main_usage(FILE *f)
{
	fprintf(f, "usage: portier [-c portier.json] [--check] [--verbose]\n"
		   "       portier --version\n"
		   "Without -c, runs a development edge from ./portier-state with a demo tenant\n"
		   "on https://demo.localhost:8443 (certificates from the internal CA).\n");
}

static void main_report(const char *what, const struct cfg_err *err)
{
	fprintf(stderr, "portier: %s: %s%s%s\n", what, err->field, err->field[0] ? ": " : "",
		err->message);
}

/* main_check: validate the static config and the tenants it points to. */
static int main_check(struct cfg_static *cfg, const char *path)
{
	struct cfg_err err = {0};
	struct cfg_tenants ts = {0};
	if (cfg_tenants_load_file(cfg->tenants_file, &ts, &err) < 0) {
		main_report(cfg->tenants_file, &err);
		return 1;
	}
	struct route_snapshot *snap = snapshot_build(&ts, 1, NULL, &err);
	cfg_tenants_clear(&ts);
	if (!snap) {
		main_report(cfg->tenants_file, &err);
		return 1;
	}
	printf("%s: ok (%zu tenants)\n", path, snapshot_tenants(snap)->n);
	snapshot_release(snap);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'k'},
		{"version", no_argument, NULL, 'V'},      {"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
	};
	const char *path = NULL;
	bool check = false;
	int opt;
	/* A fixed trim threshold: glibc's dynamic one, moved by the large blocks
	 * of start-up (creating the internal CA), then trims the heap after
	 * requests: 37,000 page faults in 3 s and ~1.8x CPU per request, measured
	 * by bench/ratelimit; 4 MiB kept free per arena is cheap beside that. */
	mallopt(M_TRIM_THRESHOLD, 4 << 20);
	/* And a top pad: trimming keeps 4 MiB at the top of each arena. Without
	 * it, a worker streaming 64 KiB answers to 50 clients (3 MiB in flight)
	 * gave its heap top back and faulted it in again: 1.9 minor faults per
	 * answer (nginx: 0.02) and 140-157 against 114-119 us of CPU each. */
	mallopt(M_TOP_PAD, 4 << 20);
	while ((opt = getopt_long(argc, argv, "c:hvV", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 'k': check = true; break;
		case 'v': log_set_level(LOG_DEBUG); break;
		case 'V': printf("portier %s\n", PORTIER_VERSION); return 0;
		case 'h': main_usage(stdout); return 0;
		default: main_usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		main_usage(stderr);
		return 2;
	}
	struct cfg_static cfg;
	struct cfg_err err = {0};
	int rc;
	if (path) {
		rc = cfg_static_load_file(path, &cfg, &err);
	} else {
		json_error_t jerr;
		json_t *root = json_loads(main_default_config, 0, &jerr);
		rc = root ? cfg_static_from_json(root, &cfg, &err) : -1;
		json_decref(root);
	}
	if (rc < 0) {
		main_report(path ? path : "embedded default", &err);
		return 1;
	}
	if (check) {
		rc = main_check(&cfg, path ? path : "embedded default");
		cfg_static_clear(&cfg);
		return rc;
	}
	return edge_run(&cfg, path ? NULL : main_demo_tenants);
}
