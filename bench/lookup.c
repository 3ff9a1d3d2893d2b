/*
 * lookup.c - bench_lookup: the cost of one routing decision (snapshot_match)
 * against the size of the routing table.
 *
 *   bench_lookup [-n LOOKUPS] N...
 *
 * For each N: a tenants document of N shorthand tenants ("t00000" with host
 * "t00000.example.test", backend 127.0.0.1:9) is built with jansson, loaded
 * with cfg_tenants_from_json and compiled with snapshot_build, exactly as
 * portier does at start-up. Then LOOKUPS (default 2,000,000) calls of
 * snapshot_match are timed with CLOCK_MONOTONIC for
 *   hit   random existing hosts (each must match)
 *   miss  random hosts no tenant routes ("u00000.example.test", same length)
 *   loop  the same loop without snapshot_match (PRNG, array index, sink)
 * over pre-generated host arrays indexed by a xorshift PRNG; request path "/",
 * method GET, no headers. Each is run 3 times after a warm-up; the table shows
 * the median round in ns per lookup. Before timing, every host is looked up
 * once and must land on its own tenant (misses on none). Single thread, no I/O.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "config/model.h"
#include "config/rule.h"
#include "config/snapshot.h"
#include "config/tenant_load.h"

#define ROUNDS 3
#define HOST_CAP 48

struct host_set {
	char (*name)[HOST_CAP];
	size_t *len;
	size_t n;
};

static volatile uintptr_t sink;

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static bool no_header(const void *ud, const char *name, size_t name_len, size_t idx,
		      const char **val, size_t *val_len)
{
	return false;
}

static int hosts_make(struct host_set *hs, size_t n, char prefix)
{
	hs->n = n;
	hs->name = calloc(n, sizeof *hs->name);
	hs->len = calloc(n, sizeof *hs->len);
	if (!hs->name || !hs->len)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int w = snprintf(hs->name[i], HOST_CAP, "%c%05zu.example.test", prefix, i);
		if (w < 0 || w >= HOST_CAP)
			return -1;
		hs->len[i] = (size_t)w;
	}
	return 0;
}

static void hosts_free(struct host_set *hs)
{
	free(hs->name);
	free(hs->len);
}

static json_t *tenants_doc(size_t n)
{
	json_t *tenants = json_object();
	json_t *root = json_pack("{s:o}", "tenants", tenants);
	char name[24], host[HOST_CAP];

	if (!root)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		snprintf(name, sizeof name, "t%05zu", i);
		snprintf(host, sizeof host, "t%05zu.example.test", i);
		json_t *t = json_pack("{s:[s],s:[s]}", "hosts", host, "backends", "127.0.0.1:9");
		if (!t || json_object_set_new(tenants, name, t) < 0) {
			json_decref(root);
			return NULL;
		}
	}
	return root;
}

enum mode { MODE_LOOP, MODE_HIT, MODE_MISS };

/* run: ns per lookup of one round; *bad counts lookups with the wrong outcome. */
static double run(const struct route_snapshot *snap, const struct host_set *hs, enum mode mode,
		  size_t lookups, uint64_t seed, size_t *bad)
{
	struct rule_req req = {
		.path = "/", .path_len = 1, .method = "GET", .method_len = 3,
		.client = NULL, .header_get = no_header, .header_ud = NULL,
	};
	struct route_match m;
	uintptr_t acc = 0;
	size_t wrong = 0;
	double t0 = now_ns();

	for (size_t k = 0; k < lookups; k++) {
		size_t i = (size_t)(xorshift64(&seed) % hs->n);
		req.host = hs->name[i];
		req.host_len = hs->len[i];
		if (mode == MODE_LOOP) {
			acc += (uintptr_t)req.host[req.host_len - 6];
			continue;
		}
		bool hit = snapshot_match(snap, &req, &m);
		/* Only the outcome is checked here (no dereference of the result,
		 * which would add a cache miss); verify() checks the tenants. */
		if (hit != (mode == MODE_HIT))
			wrong++;
		else if (hit)
			acc += (uintptr_t)m.route;
	}
	double dt = now_ns() - t0;
	sink = acc;
	*bad += wrong;
	return dt / (double)lookups;
}

/* verify: untimed, every host once: hits must land on the tenant named by the
 * host's first label, misses must not match. Returns the number of wrong answers. */
static size_t verify(const struct route_snapshot *snap, const struct host_set *hit,
		     const struct host_set *miss)
{
	struct rule_req req = {
		.path = "/", .path_len = 1, .method = "GET", .method_len = 3,
		.client = NULL, .header_get = no_header, .header_ud = NULL,
	};
	struct route_match m;
	size_t wrong = 0;

	for (size_t i = 0; i < hit->n; i++) {
		req.host = hit->name[i];
		req.host_len = hit->len[i];
		const char *dot = strchr(req.host, '.');
		if (!snapshot_match(snap, &req, &m) || !dot ||
		    strlen(m.tenant->name) != (size_t)(dot - req.host) ||
		    memcmp(m.tenant->name, req.host, (size_t)(dot - req.host)) != 0)
			wrong++;
	}
	for (size_t i = 0; i < miss->n; i++) {
		req.host = miss->name[i];
		req.host_len = miss->len[i];
		if (snapshot_match(snap, &req, &m))
			wrong++;
	}
	return wrong;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median_round(const struct route_snapshot *snap, const struct host_set *hs,
			   enum mode mode, size_t lookups, size_t *bad)
{
	double r[ROUNDS];

	run(snap, hs, mode, lookups / 10 + 1, 0x9e3779b97f4a7c15ULL, bad); /* warm-up */
	for (int i = 0; i < ROUNDS; i++)
		r[i] = run(snap, hs, mode, lookups, 0x2545f4914f6cdd1dULL + (uint64_t)i * 7919, bad);
	qsort(r, ROUNDS, sizeof r[0], cmp_double);
	return r[ROUNDS / 2];
}

static int bench_one(size_t n, size_t lookups)
{
	struct host_set hit = {0}, miss = {0};
	struct cfg_tenants ts = {0};
	struct cfg_err err = {0};
	struct route_snapshot *snap = NULL;
	json_t *doc = NULL;
	size_t bad = 0;
	int rc = -1;

	if (hosts_make(&hit, n, 't') < 0 || hosts_make(&miss, n, 'u') < 0) {
		fprintf(stderr, "bench_lookup: out of memory\n");
		goto out;
	}
	long rss0 = rss_kib();
	if (!(doc = tenants_doc(n))) {
		fprintf(stderr, "bench_lookup: cannot build the JSON document\n");
		goto out;
	}
	double t1 = now_ns();
	if (cfg_tenants_from_json(doc, &ts, &err) < 0) {
		fprintf(stderr, "bench_lookup: N=%zu: %s: %s\n", n, err.field, err.message);
		goto out;
	}
	double t2 = now_ns();
	if (!(snap = snapshot_build(&ts, 1, NULL, &err))) {
		fprintf(stderr, "bench_lookup: N=%zu: snapshot_build: %s: %s\n", n, err.field,
			err.message);
		goto out;
	}
	double t3 = now_ns();
	json_decref(doc); /* the tenants keep their own references */
	doc = NULL;
	long rss1 = rss_kib();

	bad = verify(snap, &hit, &miss);
	double loop = median_round(snap, &hit, MODE_LOOP, lookups, &bad);
	double h = median_round(snap, &hit, MODE_HIT, lookups, &bad);
	double ms = median_round(snap, &miss, MODE_MISS, lookups, &bad);
	if (bad) {
		fprintf(stderr, "bench_lookup: N=%zu: %zu lookups gave the wrong answer\n", n, bad);
		goto out;
	}
	printf("| %zu | %zu | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n", n, lookups, h, ms,
	       loop, (t2 - t1) / 1e6, (t3 - t2) / 1e6,
	       rss0 >= 0 && rss1 >= 0 ? (double)(rss1 - rss0) / 1024.0 : -1.0);
	fflush(stdout);
	rc = 0;
out:
	snapshot_release(snap);
	cfg_tenants_clear(&ts);
	json_decref(doc);
	hosts_free(&hit);
	hosts_free(&miss);
	return rc;
}

static int parse_size(const char *s, size_t max, size_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > max)
		return -1;
	*out = (size_t)v;
	return 0;
}

int main(int argc, char **argv)
{
	size_t lookups = 2000000;
	int i = 1;

	if (argc > 2 && strcmp(argv[1], "-n") == 0) {
		if (parse_size(argv[2], 1000000000, &lookups) < 0) {
			fprintf(stderr, "bench_lookup: -n: a count from 1 to 1e9\n");
			return 2;
		}
		i = 3;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: bench_lookup [-n LOOKUPS] N...   (N from 1 to 100000)\n");
		return 2;
	}
	printf("| tenants | lookups | hit ns/lookup | miss ns/lookup | loop only ns | "
	       "cfg_tenants_from_json ms | snapshot_build ms | RSS growth (load+build) MiB |\n");
	printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
	for (; i < argc; i++) {
		size_t n;
		if (parse_size(argv[i], 100000, &n) < 0) {
			fprintf(stderr, "bench_lookup: %s: N from 1 to 100000\n", argv[i]);
			return 2;
		}
		if (bench_one(n, lookups) < 0)
			return 1;
	}
	return 0;
}
