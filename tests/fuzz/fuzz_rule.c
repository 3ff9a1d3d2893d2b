/*
 * fuzz_rule.c - libFuzzer harness for the rule language: arbitrary bytes are
 * compiled as a rule; a rule that compiles is asked for its host claims,
 * matched against fixed requests, and each claim is tested against hosts.
 * Rule text comes from the control socket and tenant files, so compiling it
 * must never crash, leak, or run away whatever it holds.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/rule.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_hdr {
	const char *name, *value;
};

static const struct fuzz_hdr fuzz_hdrs[] = {
	{"Accept", "text/html"}, {"X-Env", "prod"}, {"accept", "application/json"},
	{"Cookie", "a=b; c=d"},
};

static bool fuzz_header_get(const void *ud, const char *name, size_t name_len, size_t idx,
			    const char **val, size_t *val_len)
{
	size_t seen = 0;

	(void)ud;
	for (size_t i = 0; i < sizeof(fuzz_hdrs) / sizeof(fuzz_hdrs[0]); i++) {
		if (strlen(fuzz_hdrs[i].name) != name_len ||
		    strncasecmp(fuzz_hdrs[i].name, name, name_len) != 0)
			continue;
		if (seen++ == idx) {
			*val = fuzz_hdrs[i].value;
			*val_len = strlen(fuzz_hdrs[i].value);
			return true;
		}
	}
	return false;
}

static void fuzz_match(const struct rule *r, const char *host, const char *path,
		       const struct sockaddr *client)
{
	struct rule_req req = {
		.host = host, .host_len = host ? strlen(host) : 0,
		.path = path, .path_len = path ? strlen(path) : 0,
		.method = "GET", .method_len = 3,
		.client = client,
		.header_get = fuzz_header_get, .header_ud = NULL,
	};

	(void)rule_match(r, &req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const hosts[] = {"a.example.com", "example.com", "x.y.example.com", "::1"};
	char err[256];
	char *text = malloc(size + 1);
	struct rule *r;
	const struct rule_host *claims = NULL;
	size_t n = 0;
	struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_addr = {htonl(0x0a010203)}};
	struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	r = rule_compile(text, err, sizeof(err));
	if (!r) {
		/* a refusal always says why */
		if (err[0] == '\0')
			abort();
		free(text);
		return 0;
	}
	if (rule_hosts(r, &claims, &n, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < n; i++)
			for (size_t h = 0; h < sizeof(hosts) / sizeof(hosts[0]); h++)
				(void)rule_host_matches(&claims[i], hosts[h], strlen(hosts[h]));
	}
	fuzz_match(r, "a.example.com", "/api/v1/items", (const struct sockaddr *)&v4);
	fuzz_match(r, "example.com", "/", (const struct sockaddr *)&v6);
	fuzz_match(r, NULL, NULL, NULL);
	rule_free(r);
	free(text);
	return 0;
}
