/*
 * rule_matcher.c - the matchers: what each accepts at compile time and how
 * each tests a request.
 *
 *   Host(`a.example.com`)      host equals, case-insensitively; a trailing dot
 *                              in the value is dropped; Host(`*.example.com`)
 *                              matches exactly one more label.
 *   HostRegexp(`re`)           re searches the normalised host, caselessly.
 *   Path(`/p`), PathPrefix     exact / prefix, case-sensitive; must start '/'.
 *   PathRegexp(`re`)           re searches the path (case-sensitive).
 *   Method(`GET`)              exact; the value is uppercased as Traefik does.
 *   Header(`k`, `v`)           some value of header k equals v exactly.
 *   HeaderRegexp(`k`, `re`)    re finds a match in some value of header k.
 *   ClientIP(`10.0.0.0/8`)     the peer address is inside the network; an
 *                              IPv4-mapped IPv6 peer counts as IPv4.
 * Regex semantics (search, not anchored) are described in rule_regex.c.
 */
#include "config/rule_ast.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/hostname.h"

static char rule_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool rule_has_non_ascii(const char *v, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)v[i] >= 0x80)
			return true;
	return false;
}

/* rule_has_ctl: control bytes (HTAB allowed when tab_ok) or, when space_bad,
 * a space: values that no valid request could ever carry. */
static bool rule_has_ctl(const char *v, size_t len, bool tab_ok, bool space_bad)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c == '\t' && tab_ok)
			continue;
		if (c < 0x20 || c == 0x7f || (c == ' ' && space_bad))
			return true;
	}
	return false;
}

/* rule_is_token: RFC 9110 token (method and header names). */
static bool rule_is_token(const char *v, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = v[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
			continue;
		if (!strchr("!#$%&'*+-.^_`|~", c))
			return false;
	}
	return len > 0;
}

/* rule_is_name_char: a v2 placeholder name's character ([A-Za-z_][A-Za-z0-9_]*). */
static bool rule_is_name_char(char c, bool first)
{
	char l = rule_lower(c);

	return (l >= 'a' && l <= 'z') || c == '_' || (!first && c >= '0' && c <= '9');
}

/* rule_v2_placeholder: whether pat holds Traefik v2's "{name:re}" outside an
 * escape or a class; v3 (and PCRE2) would take it literally, silently
 * changing what an imported label matches. */
static bool rule_v2_placeholder(const char *pat, size_t len)
{
	bool in_class = false;

	for (size_t i = 0; i < len; i++) {
		char c = pat[i];
		if (c == '\\') {
			i++;
		} else if (in_class) {
			in_class = c != ']';
		} else if (c == '[') {
			in_class = true;
		} else if (c == '{') {
			size_t j = i + 1;
			while (j < len && rule_is_name_char(pat[j], j == i + 1))
				j++;
			if (j > i + 1 && j < len && pat[j] == ':')
				return true;
		}
	}
	return false;
}

static int rule_prep_host(struct rule_node *n, char *errbuf, size_t errlen)
{
	char *v = n->arg[0], q[64];
	size_t len = n->arg_len[0];
	const char *hint = "";

	if (rule_has_non_ascii(v, len)) {
		rule_errf(errbuf, errlen, "at %zu: Host: non-ASCII host name '%s' "
			  "(write internationalised names as xn-- punycode)", n->arg_off[0],
			  rule_quote(v, len, q, sizeof(q)));
		return -1;
	}
	for (size_t i = 0; i < len; i++)
		v[i] = rule_lower(v[i]);
	if (len > 1 && v[len - 1] == '.')
		v[--len] = '\0';
	n->arg_len[0] = len;
	if (host_is_valid_name(v, len, true)) {
		n->wildcard = v[0] == '*';
		return 0;
	}
	if (memchr(v, ':', len))
		hint = " (no port or IPv6 literal: Host ignores the port; use HostRegexp for IPv6)";
	else if (memchr(v, '*', len))
		hint = " (a wildcard is a single leading '*.' label)";
	else if (memchr(v, '_', len))
		hint = " (underscores are not valid in host names)";
	rule_errf(errbuf, errlen, "at %zu: Host: invalid host name '%s'%s", n->arg_off[0],
		  rule_quote(v, len, q, sizeof(q)), hint);
	return -1;
}

/* rule_prep_regex: compile arg[ai] of a *Regexp matcher. */
static int rule_prep_regex(struct rule_node *n, size_t ai, bool caseless, char *errbuf, size_t errlen)
{
	const char *name = rule_matcher_name(n->m);
	char msg[200];

	if (n->m == RULE_M_HOST_REGEXP && rule_has_non_ascii(n->arg[ai], n->arg_len[ai])) {
		rule_errf(errbuf, errlen, "at %zu: %s: non-ASCII pattern (hosts are ASCII; "
			  "write internationalised names as xn-- punycode)", n->arg_off[ai], name);
		return -1;
	}
	if (rule_v2_placeholder(n->arg[ai], n->arg_len[ai])) {
		rule_errf(errbuf, errlen, "at %zu: %s: Traefik v2 '{name:regexp}' placeholders are "
			  "not supported; write the regexp alone", n->arg_off[ai], name);
		return -1;
	}
	n->re = rule_regex_compile(n->arg[ai], n->arg_len[ai], caseless, msg, sizeof(msg));
	if (!n->re) {
		rule_errf(errbuf, errlen, "at %zu: %s: %s", n->arg_off[ai], name, msg);
		return -1;
	}
	return 0;
}

static int rule_prep_path(struct rule_node *n, char *errbuf, size_t errlen)
{
	const char *name = rule_matcher_name(n->m);
	char q[64];

	if (n->arg[0][0] != '/') {
		rule_errf(errbuf, errlen, "at %zu: %s: '%s' does not start with '/'", n->arg_off[0],
			  name, rule_quote(n->arg[0], n->arg_len[0], q, sizeof(q)));
		return -1;
	}
	if (rule_has_ctl(n->arg[0], n->arg_len[0], false, true)) {
		rule_errf(errbuf, errlen, "at %zu: %s: space or control character in '%s'",
			  n->arg_off[0], name, rule_quote(n->arg[0], n->arg_len[0], q, sizeof(q)));
		return -1;
	}
	return 0;
}

static int rule_prep_method(struct rule_node *n, char *errbuf, size_t errlen)
{
	char q[64];

	if (!rule_is_token(n->arg[0], n->arg_len[0])) {
		rule_errf(errbuf, errlen, "at %zu: Method: invalid method '%s'", n->arg_off[0],
			  rule_quote(n->arg[0], n->arg_len[0], q, sizeof(q)));
		return -1;
	}
	for (size_t i = 0; i < n->arg_len[0]; i++)
		if (n->arg[0][i] >= 'a' && n->arg[0][i] <= 'z')
			n->arg[0][i] = (char)(n->arg[0][i] - 'a' + 'A');
	return 0;
}

static int rule_prep_header(struct rule_node *n, char *errbuf, size_t errlen)
{
	const char *name = rule_matcher_name(n->m);
	char q[64];

	if (!rule_is_token(n->arg[0], n->arg_len[0])) {
		rule_errf(errbuf, errlen, "at %zu: %s: invalid header name '%s'", n->arg_off[0], name,
			  rule_quote(n->arg[0], n->arg_len[0], q, sizeof(q)));
		return -1;
	}
	if (n->m == RULE_M_HEADER_REGEXP)
		return rule_prep_regex(n, 1, false, errbuf, errlen);
	if (rule_has_ctl(n->arg[1], n->arg_len[1], true, false)) {
		rule_errf(errbuf, errlen, "at %zu: Header: control character in value", n->arg_off[1]);
		return -1;
	}
	return 0;
}

/* rule_parse_prefix: "/N" with N in 0..max, digits only. */
static bool rule_parse_prefix(const char *s, unsigned max, unsigned *out)
{
	unsigned v = 0;
	size_t i = 0;

	for (; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 3)
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (i == 0 || v > max)
		return false;
	*out = v;
	return true;
}

/* rule_cidr_parse: "ADDR" or "ADDR/N" (IPv4 or IPv6; v4-mapped IPv6 becomes
 * IPv4, its prefix less 96). Host bits past the prefix are ignored. */
static bool rule_cidr_parse(const char *text, struct rule_cidr *c)
{
	char buf[INET6_ADDRSTRLEN + 5];
	const char *slash = strchr(text, '/');
	size_t alen = slash ? (size_t)(slash - text) : strlen(text);
	struct in6_addr a6;

	if (alen == 0 || alen >= INET6_ADDRSTRLEN)
		return false;
	memcpy(buf, text, alen);
	buf[alen] = '\0';
	memset(c, 0, sizeof(*c));
	if (inet_pton(AF_INET, buf, c->addr) == 1) {
		c->family = AF_INET;
		c->prefix = 32;
		return !slash || rule_parse_prefix(slash + 1, 32, &c->prefix);
	}
	if (inet_pton(AF_INET6, buf, &a6) != 1)
		return false;
	c->family = AF_INET6;
	c->prefix = 128;
	memcpy(c->addr, &a6, 16);
	if (slash && !rule_parse_prefix(slash + 1, 128, &c->prefix))
		return false;
	if (IN6_IS_ADDR_V4MAPPED(&a6) && c->prefix >= 96) {
		c->family = AF_INET;
		c->prefix -= 96;
		memmove(c->addr, c->addr + 12, 4);
		memset(c->addr + 4, 0, 12);
	}
	return true;
}

static int rule_prep_client_ip(struct rule_node *n, char *errbuf, size_t errlen)
{
	char q[64];

	if (!rule_cidr_parse(n->arg[0], &n->cidr)) {
		rule_errf(errbuf, errlen, "at %zu: ClientIP: invalid IP address or CIDR '%s'",
			  n->arg_off[0], rule_quote(n->arg[0], n->arg_len[0], q, sizeof(q)));
		return -1;
	}
	return 0;
}

int rule_matcher_prepare(struct rule_node *n, char *errbuf, size_t errlen)
{
	switch (n->m) {
	case RULE_M_HOST:
		return rule_prep_host(n, errbuf, errlen);
	case RULE_M_HOST_REGEXP:
		return rule_prep_regex(n, 0, true, errbuf, errlen);
	case RULE_M_PATH:
	case RULE_M_PATH_PREFIX:
		return rule_prep_path(n, errbuf, errlen);
	case RULE_M_PATH_REGEXP:
		return rule_prep_regex(n, 0, false, errbuf, errlen);
	case RULE_M_METHOD:
		return rule_prep_method(n, errbuf, errlen);
	case RULE_M_HEADER:
	case RULE_M_HEADER_REGEXP:
		return rule_prep_header(n, errbuf, errlen);
	case RULE_M_CLIENT_IP:
		return rule_prep_client_ip(n, errbuf, errlen);
	}
	return -1;
}

bool rule_exact_match(const char *value, size_t vlen, const char *host, size_t hlen)
{
	if (!host || vlen != hlen)
		return false;
	for (size_t i = 0; i < hlen; i++)
		if (value[i] != rule_lower(host[i]))
			return false;
	return true;
}

bool rule_wildcard_match(const char *pattern, size_t plen, const char *host, size_t hlen)
{
	const char *suffix = pattern + 1; /* ".example.com" */
	size_t slen = plen - 1, label;

	if (!host || plen < 3 || hlen <= slen)
		return false;
	label = hlen - slen;
	if (memchr(host, '.', label))
		return false;
	return rule_exact_match(suffix, slen, host + label, slen);
}

static bool rule_bytes_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* rule_eval_header: over every value of the header: 1 if one matches; -1 if
 * none matched but a regex could not tell; else 0. */
static int rule_eval_header(const struct rule_node *n, const struct rule_req *req)
{
	const char *val;
	size_t vlen;
	int res = 0;

	if (!req->header_get)
		return 0;
	for (size_t i = 0; req->header_get(req->header_ud, n->arg[0], n->arg_len[0], i, &val, &vlen); i++) {
		int m = n->m == RULE_M_HEADER ? rule_bytes_eq(n->arg[1], n->arg_len[1], val, vlen)
					      : rule_regex_match(n->re, val, vlen);
		if (m == 1)
			return 1;
		if (m < 0)
			res = -1;
	}
	return res;
}

/* rule_client_cidr: a peer address in rule_cidr form (prefix unused). */
static bool rule_client_cidr(const struct sockaddr *sa, struct rule_cidr *c)
{
	memset(c, 0, sizeof(*c));
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in sin;
		memcpy(&sin, sa, sizeof(sin));
		c->family = AF_INET;
		memcpy(c->addr, &sin.sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 sin6;
		memcpy(&sin6, sa, sizeof(sin6));
		if (IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr)) {
			c->family = AF_INET;
			memcpy(c->addr, sin6.sin6_addr.s6_addr + 12, 4);
		} else {
			c->family = AF_INET6;
			memcpy(c->addr, &sin6.sin6_addr, 16);
		}
		return true;
	}
	return false;
}

static bool rule_eval_client_ip(const struct rule_cidr *net, const struct sockaddr *sa)
{
	struct rule_cidr peer;
	unsigned full, rest;

	if (!sa || !rule_client_cidr(sa, &peer) || peer.family != net->family)
		return false;
	full = net->prefix / 8;
	rest = net->prefix % 8;
	if (memcmp(peer.addr, net->addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xffu << (8 - rest));
	return (peer.addr[full] & mask) == (net->addr[full] & mask);
}

int rule_matcher_eval(const struct rule_node *n, const struct rule_req *req)
{
	const char *path = req->path ? req->path : "";
	size_t path_len = req->path ? req->path_len : 0;

	switch (n->m) {
	case RULE_M_HOST:
		return n->wildcard ? rule_wildcard_match(n->arg[0], n->arg_len[0], req->host, req->host_len)
				   : rule_exact_match(n->arg[0], n->arg_len[0], req->host, req->host_len);
	case RULE_M_HOST_REGEXP:
		return req->host ? rule_regex_match(n->re, req->host, req->host_len) : 0;
	case RULE_M_PATH:
		return rule_bytes_eq(n->arg[0], n->arg_len[0], path, path_len);
	case RULE_M_PATH_PREFIX:
		return path_len >= n->arg_len[0] && memcmp(path, n->arg[0], n->arg_len[0]) == 0;
	case RULE_M_PATH_REGEXP:
		return rule_regex_match(n->re, path, path_len);
	case RULE_M_METHOD:
		return req->method && rule_bytes_eq(n->arg[0], n->arg_len[0], req->method, req->method_len);
	case RULE_M_HEADER:
	case RULE_M_HEADER_REGEXP:
		return rule_eval_header(n, req);
	case RULE_M_CLIENT_IP:
		return rule_eval_client_ip(&n->cidr, req->client);
	}
	return 0;
}
