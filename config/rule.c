/*
 * rule.c - a routing rule from text to an immutable matcher: compilation,
 * evaluation, and the hosts a rule claims.
 *
 * The syntax lives in rule_parse.c, each matcher in rule_matcher.c, PCRE2
 * policy in rule_regex.c. This file combines them:
 *
 *  - Evaluation uses three values. A matcher answers "unknown" when a regex
 *    hits its resource limit; && and || combine unknowns as Kleene logic
 *    does (false && unknown = false, true || unknown = true), ! keeps them,
 *    and a rule that ends up unknown does not match. So a limit can never
 *    turn "!PathRegexp(...)" into a match.
 *
 *  - Host claims: the rule is put in negation normal form (De Morgan) and
 *    every alternative of its disjunctive normal form must contain a positive
 *    Host or HostRegexp. That is decided without expanding the DNF, which
 *    may be exponential: an OR is bound when all its operands are, an AND
 *    when one of its operands is. The claims are all positive Host and
 *    HostRegexp values.
 */
#include "config/rule.h"

#include <stdlib.h>
#include <string.h>

#include "config/rule_ast.h"

struct rule {
	struct rule_ast ast;
	struct rule_host *hosts;  /* values point into ast's nodes */
	size_t n_hosts;
	bool bound;               /* every alternative has a positive Host/HostRegexp */
};

static const struct rule_node *rule_node_at(const struct rule_ast *a, int32_t i)
{
	return &a->nodes[i];
}

static bool rule_is_host_matcher(const struct rule_node *n)
{
	return n->kind == RULE_NODE_MATCHER && (n->m == RULE_M_HOST || n->m == RULE_M_HOST_REGEXP);
}

/* rule_bound: whether every DNF alternative of node i, negated when neg,
 * holds a positive host matcher. Under negation AND acts as OR and back. */
static bool rule_bound(const struct rule_ast *a, int32_t i, bool neg)
{
	const struct rule_node *n = rule_node_at(a, i);
	bool any;

	switch (n->kind) {
	case RULE_NODE_MATCHER:
		return !neg && rule_is_host_matcher(n);
	case RULE_NODE_NOT:
		return rule_bound(a, n->child, !neg);
	case RULE_NODE_AND:
	case RULE_NODE_OR:
		/* A conjunction is bound when one operand is; a disjunction when all are. */
		any = (n->kind == RULE_NODE_AND) != neg;
		for (int32_t c = n->child; c >= 0; c = rule_node_at(a, c)->next) {
			bool b = rule_bound(a, c, neg);
			if (any && b)
				return true;
			if (!any && !b)
				return false;
		}
		return !any;
	}
	return false;
}

static void rule_add_host(struct rule *r, const struct rule_node *n)
{
	enum rule_host_kind kind = n->m == RULE_M_HOST_REGEXP ? RULE_HOST_REGEX
				 : n->wildcard ? RULE_HOST_WILDCARD : RULE_HOST_EXACT;

	for (size_t i = 0; i < r->n_hosts; i++)
		if (r->hosts[i].kind == kind && strcmp(r->hosts[i].value, n->arg[0]) == 0)
			return;
	r->hosts[r->n_hosts].kind = kind;
	r->hosts[r->n_hosts].value = n->arg[0];
	r->n_hosts++;
}

/* rule_collect_hosts: add every host matcher under an even number of '!'. */
static void rule_collect_hosts(struct rule *r, int32_t i, bool neg)
{
	const struct rule_node *n = rule_node_at(&r->ast, i);

	if (n->kind == RULE_NODE_MATCHER) {
		if (!neg && rule_is_host_matcher(n))
			rule_add_host(r, n);
		return;
	}
	if (n->kind == RULE_NODE_NOT) {
		rule_collect_hosts(r, n->child, !neg);
		return;
	}
	for (int32_t c = n->child; c >= 0; c = rule_node_at(&r->ast, c)->next)
		rule_collect_hosts(r, c, neg);
}

struct rule *rule_compile(const char *text, char *errbuf, size_t errlen)
{
	struct rule *r = NULL;
	size_t len;

	if (errbuf && errlen)
		errbuf[0] = '\0';
	if (!text) {
		rule_errf(errbuf, errlen, "no rule");
		return NULL;
	}
	len = strnlen(text, RULE_MAX_TEXT + 1);
	if (len > RULE_MAX_TEXT) {
		rule_errf(errbuf, errlen, "rule longer than %d bytes", RULE_MAX_TEXT);
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		rule_errf(errbuf, errlen, "out of memory");
		return NULL;
	}
	if (rule_parse(text, len, &r->ast, errbuf, errlen) < 0)
		goto fail;
	/* Nodes were created in text order, so the first error reported is the
	 * leftmost one. */
	for (size_t i = 0; i < r->ast.n; i++)
		if (r->ast.nodes[i].kind == RULE_NODE_MATCHER &&
		    rule_matcher_prepare(&r->ast.nodes[i], errbuf, errlen) < 0)
			goto fail;
	r->hosts = calloc(r->ast.n, sizeof(*r->hosts));
	if (!r->hosts) {
		rule_errf(errbuf, errlen, "out of memory");
		goto fail;
	}
	rule_collect_hosts(r, r->ast.root, false);
	r->bound = rule_bound(&r->ast, r->ast.root, false);
	return r;
fail:
	rule_free(r);
	return NULL;
}

void rule_free(struct rule *r)
{
	if (!r)
		return;
	rule_ast_free(&r->ast);
	free(r->hosts);
	free(r);
}

/* rule_eval: 1, 0, or -1 for unknown (see the top of this file). */
static int rule_eval(const struct rule_ast *a, int32_t i, const struct rule_req *req)
{
	const struct rule_node *n = rule_node_at(a, i);
	int res, v, decisive;

	switch (n->kind) {
	case RULE_NODE_MATCHER:
		return rule_matcher_eval(n, req);
	case RULE_NODE_NOT:
		v = rule_eval(a, n->child, req);
		return v < 0 ? v : !v;
	case RULE_NODE_AND:
	case RULE_NODE_OR:
		/* decisive: the operand value that settles the result at once. */
		decisive = n->kind == RULE_NODE_AND ? 0 : 1;
		res = !decisive;
		for (int32_t c = n->child; c >= 0; c = rule_node_at(a, c)->next) {
			v = rule_eval(a, c, req);
			if (v == decisive)
				return v;
			if (v < 0)
				res = -1;
		}
		return res;
	}
	return -1;
}

bool rule_match(const struct rule *r, const struct rule_req *req)
{
	if (!r || !req || r->ast.root < 0)
		return false;
	return rule_eval(&r->ast, r->ast.root, req) == 1;
}

int rule_hosts(const struct rule *r, const struct rule_host **out, size_t *n,
	       char *errbuf, size_t errlen)
{
	if (!r || !out || !n) {
		rule_errf(errbuf, errlen, "no rule");
		return -1;
	}
	if (!r->bound) {
		rule_errf(errbuf, errlen, "rule must match a Host or HostRegexp in every alternative, "
			  "so it cannot claim other tenants' hosts");
		return -1;
	}
	*out = r->hosts;
	*n = r->n_hosts;
	return 0;
}

bool rule_host_matches(const struct rule_host *h, const char *host, size_t len)
{
	size_t vlen;

	if (!h || !h->value || !host)
		return false;
	vlen = strlen(h->value);
	switch (h->kind) {
	case RULE_HOST_EXACT:
		return rule_exact_match(h->value, vlen, host, len);
	case RULE_HOST_WILDCARD:
		return vlen > 2 && h->value[0] == '*' && h->value[1] == '.' &&
		       rule_wildcard_match(h->value, vlen, host, len);
	case RULE_HOST_REGEX:
		return rule_regex_match_text(h->value, host, len) == 1;
	}
	return false;
}
