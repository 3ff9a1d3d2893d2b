/*
 * rule.h - the routing rule language (Traefik v3 syntax) compiled to a
 * matcher. Host, HostRegexp, Path, PathPrefix, PathRegexp, Method, Header,
 * HeaderRegexp, ClientIP; &&, ||, !, parentheses; values in backticks or
 * double quotes. Regexes are PCRE2, JIT-compiled.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct rule;

/* rule_req: the view of a request a rule is matched against. */
struct rule_req {
	const char *host;   /* normalised: lowercase, no port, no trailing dot */
	size_t host_len;
	const char *path;   /* without the query string */
	size_t path_len;
	const char *method;
	size_t method_len;
	const struct sockaddr *client; /* may be NULL */
	/* header_get: the idx-th value of header `name` (case-insensitive), false past the last. */
	bool (*header_get)(const void *ud, const char *name, size_t name_len, size_t idx,
			   const char **val, size_t *val_len);
	const void *header_ud;
};

/* rule_compile: compile `text`. Returns NULL on error with a message in errbuf
 * naming the offset or the matcher ("at 14: expected ')'", "HostRegexp: PCRE2:
 * missing closing parenthesis at 3"). The result is immutable and may be used
 * by any number of threads at once. */
struct rule *rule_compile(const char *text, char *errbuf, size_t errlen);
void rule_free(struct rule *r);

/* rule_match: true if req satisfies r. Thread-safe. */
bool rule_match(const struct rule *r, const struct rule_req *req);

enum rule_host_kind { RULE_HOST_EXACT, RULE_HOST_WILDCARD, RULE_HOST_REGEX };

/* A host a rule claims. EXACT: "a.example.com"; WILDCARD: "*.example.com"
 * (one label); REGEX: the HostRegexp pattern. Values are lowercase. */
struct rule_host {
	enum rule_host_kind kind;
	const char *value;
};

/* rule_hosts: the hosts r can match, owned by r. Returns -1 with a message when
 * some alternative of r is not bound to a Host/HostRegexp (such a rule would
 * claim every host, which isolation between tenants forbids) or a host only
 * appears negated. */
int rule_hosts(const struct rule *r, const struct rule_host **out, size_t *n,
	       char *errbuf, size_t errlen);

/* rule_host_matches: whether normalised host matches claim h. */
bool rule_host_matches(const struct rule_host *h, const char *host, size_t len);
