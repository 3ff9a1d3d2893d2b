/*
 * rule.h - the routing rule language (Traefik v3 syntax) compiled to a
 * matcher. Host, HostRegexp, Path, PathPrefix, PathRegexp, Method, Header,
 * HeaderRegexp, ClientIP; &&, ||, !, parentheses (! binds tighter than &&,
 * && tighter than ||); values in backticks (raw) or double quotes (with \"
 * and \\ escapes). Each matcher takes one value, Header and HeaderRegexp two.
 *
 * Regexes are PCRE2, JIT-compiled, and search like Traefik v3's Go regexes:
 * not implicitly anchored (write ^...$). HostRegexp is case-insensitive;
 * PathRegexp and HeaderRegexp are not. A regex that hits its match limit
 * is "unknown": it can never make a rule match, not even under '!', though
 * the rest of the rule may still decide it (true || unknown matches).
 *
 * Rule text is at most 4096 bytes, nested at most 64 '(' or '!' deep.
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

/* rule_compile: compile NUL-terminated `text`. Returns NULL on error with a
 * message in errbuf (may be NULL) naming the 0-based byte offset and the
 * matcher ("at 14: expected ')', found end of rule", "at 11: HostRegexp:
 * PCRE2: missing closing parenthesis at offset 4", the last offset being in
 * the pattern). The result is immutable and may be used by any number of
 * threads at once. */
struct rule *rule_compile(const char *text, char *errbuf, size_t errlen);
void rule_free(struct rule *r);

/* rule_match: true if req satisfies r. Thread-safe: regex match data is per
 * thread, created on first use and freed when the thread exits. */
bool rule_match(const struct rule *r, const struct rule_req *req);

enum rule_host_kind { RULE_HOST_EXACT, RULE_HOST_WILDCARD, RULE_HOST_REGEX };

/* A host a rule claims. EXACT: "a.example.com"; WILDCARD: "*.example.com"
 * (one label); REGEX: the HostRegexp pattern as written (it may hold escapes
 * that lowercasing would change; it is matched case-insensitively). EXACT
 * and WILDCARD values are lowercase, without a trailing dot. */
struct rule_host {
	enum rule_host_kind kind;
	const char *value;
};

/* rule_hosts: the hosts r can match, owned by r (valid until rule_free), in
 * text order without duplicates: every Host/HostRegexp under an even number
 * of '!'. Returns 0, or -1 with a message when some alternative of r (in
 * disjunctive normal form, negations pushed inward) has no positive
 * Host/HostRegexp: such a rule would claim every host, which isolation
 * between tenants forbids. A host that only appears negated binds nothing.
 * On failure *out and *n are left untouched. */
int rule_hosts(const struct rule *r, const struct rule_host **out, size_t *n,
	       char *errbuf, size_t errlen);

/* rule_host_matches: whether normalised host[0..len) matches claim h, by the
 * same rules as Host/HostRegexp. h need not come from rule_hosts: a REGEX
 * value is compiled from its text (kept in a small per-thread cache); an
 * invalid pattern matches nothing. */
bool rule_host_matches(const struct rule_host *h, const char *host, size_t len);
