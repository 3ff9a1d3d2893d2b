/*
 * rule_ast.h - private to the rule module (rule.c, rule_parse.c,
 * rule_matcher.c, rule_regex.c): the syntax tree a rule compiles to, and the
 * functions the files offer each other. Other modules use config/rule.h.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

#include "config/rule.h"

/* Bounds that keep hostile rule text from costing more than it is worth. */
#define RULE_MAX_TEXT 4096   /* bytes of rule text */
#define RULE_MAX_DEPTH 64    /* nesting of '(' and '!' */
#define RULE_MAX_ARGS 2      /* values a matcher takes (Header takes two) */

enum rule_node_kind { RULE_NODE_OR, RULE_NODE_AND, RULE_NODE_NOT, RULE_NODE_MATCHER };

enum rule_matcher_kind {
	RULE_M_HOST, RULE_M_HOST_REGEXP, RULE_M_PATH, RULE_M_PATH_PREFIX, RULE_M_PATH_REGEXP,
	RULE_M_METHOD, RULE_M_HEADER, RULE_M_HEADER_REGEXP, RULE_M_CLIENT_IP,
};

/* rule_cidr: ClientIP's network; IPv4 (also written as v4-mapped IPv6) is
 * kept as AF_INET so either form of a client address compares the same. */
struct rule_cidr {
	sa_family_t family;
	uint8_t addr[16];
	unsigned prefix;
};

/* rule_node: OR/AND have children (child, then next...), NOT has one child,
 * MATCHER is a leaf. Nodes live in one array and refer to each other by
 * index, so a tree is freed in one pass whatever its shape. */
struct rule_node {
	enum rule_node_kind kind;
	int32_t child;               /* first operand, -1 for a leaf */
	int32_t next;                /* next operand of the parent, -1 for the last */
	size_t off;                  /* byte offset in the rule text */

	enum rule_matcher_kind m;    /* MATCHER only, from here on */
	size_t nargs;
	char *arg[RULE_MAX_ARGS];    /* decoded values, NUL-terminated, owned */
	size_t arg_len[RULE_MAX_ARGS];
	size_t arg_off[RULE_MAX_ARGS];
	bool wildcard;               /* Host(`*.x`): arg[0] is "*.x" */
	pcre2_code *re;              /* *Regexp matchers */
	struct rule_cidr cidr;       /* ClientIP */
};

struct rule_ast {
	struct rule_node *nodes;
	size_t n, cap;
	int32_t root;
};

/* rule_errf: format an operator's message into errbuf (never NULL-unsafe). */
void rule_errf(char *errbuf, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* rule_quote: value v as a short printable excerpt for a message, in buf. */
const char *rule_quote(const char *v, size_t len, char *buf, size_t cap);

/* rule_parse: text[0..len) to ast. Returns 0, or -1 with "at N: ..." in
 * errbuf and ast emptied. Checks syntax, matcher names and value counts. */
int rule_parse(const char *text, size_t len, struct rule_ast *ast, char *errbuf, size_t errlen);
void rule_ast_free(struct rule_ast *ast);
const char *rule_matcher_name(enum rule_matcher_kind m);

/* rule_matcher_prepare: validate and normalise a parsed matcher's values
 * (lowercase hosts, compile regexes, parse CIDRs). -1 with a message. */
int rule_matcher_prepare(struct rule_node *n, char *errbuf, size_t errlen);

/* rule_matcher_eval: 1 match, 0 no match, -1 could not tell (a regex hit a
 * resource limit); the caller decides how "unknown" combines. */
int rule_matcher_eval(const struct rule_node *n, const struct rule_req *req);

/* rule_wildcard_match: whether host is one label followed by the suffix of
 * pattern "*.suffix" (case-insensitive). */
bool rule_wildcard_match(const char *pattern, size_t plen, const char *host, size_t hlen);

/* rule_exact_match: case-insensitive equality of a lowercase value and a host. */
bool rule_exact_match(const char *value, size_t vlen, const char *host, size_t hlen);

/* rule_regex_compile: PCRE2 with portier's options and JIT when available.
 * NULL with "PCRE2: <message> at offset K" in errbuf on error. */
pcre2_code *rule_regex_compile(const char *pat, size_t len, bool caseless,
			       char *errbuf, size_t errlen);

/* rule_regex_match: unanchored search of s[0..len) under resource limits,
 * with per-thread match data. 1, 0, or -1 when a limit was hit. */
int rule_regex_match(const pcre2_code *re, const char *s, size_t len);

/* rule_regex_match_text: as rule_regex_match for a pattern given as text,
 * compiled caselessly once per thread and kept in a small per-thread cache. */
int rule_regex_match_text(const char *pat, const char *s, size_t len);
