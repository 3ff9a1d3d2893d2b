/*
 * rule_parse.c - the rule language's syntax: text to a tree of nodes.
 *
 *   or      := and ( "||" and )*
 *   and     := unary ( "&&" unary )*
 *   unary   := "!" unary | "(" or ")" | matcher
 *   matcher := NAME "(" value ( "," value )* ")"
 *   value   := "`" any byte but "`" "`"  |  '"' chars with \" and \\ escapes '"'
 *
 * Recursive descent; only '(' and '!' recurse, and they are counted against
 * RULE_MAX_DEPTH, so hostile text cannot exhaust the stack. "&&" and "||"
 * chains loop and build one n-ary node. Every error names the byte offset
 * (0-based) where the parser stopped.
 */
#include "config/rule_ast.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct rule_parser {
	const char *text;
	size_t len;
	size_t pos;
	unsigned depth;
	struct rule_ast *ast;
	char *errbuf;
	size_t errlen;
	bool failed;
};

struct rule_matcher_def {
	const char *name;
	enum rule_matcher_kind kind;
	size_t nargs;
};

static const struct rule_matcher_def rule_matchers[] = {
	{"Host", RULE_M_HOST, 1},
	{"HostRegexp", RULE_M_HOST_REGEXP, 1},
	{"Path", RULE_M_PATH, 1},
	{"PathPrefix", RULE_M_PATH_PREFIX, 1},
	{"PathRegexp", RULE_M_PATH_REGEXP, 1},
	{"Method", RULE_M_METHOD, 1},
	{"Header", RULE_M_HEADER, 2},
	{"HeaderRegexp", RULE_M_HEADER_REGEXP, 2},
	{"ClientIP", RULE_M_CLIENT_IP, 1},
};

#define RULE_NMATCHERS (sizeof(rule_matchers) / sizeof(rule_matchers[0]))

/* Names an operator may bring from Traefik that portier does not take, with
 * what to write instead. */
static const struct { const char *name, *hint; } rule_foreign[] = {
	{"Query", "not supported by portier"},
	{"QueryRegexp", "not supported by portier"},
	{"HostSNI", "a TCP router matcher; use Host"},
	{"HostSNIRegexp", "a TCP router matcher; use HostRegexp"},
	{"Headers", "Traefik v2 syntax; use Header"},
	{"HeadersRegexp", "Traefik v2 syntax; use HeaderRegexp"},
	{"HostHeader", "Traefik v2 syntax; use Host"},
};

void rule_errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!errbuf || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

const char *rule_quote(const char *v, size_t len, char *buf, size_t cap)
{
	const size_t max = 48;
	size_t o = 0;

	for (size_t i = 0; i < len && i < max && o + 1 < cap; i++) {
		unsigned char c = (unsigned char)v[i];
		buf[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	if (len > max && o + 4 < cap) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

const char *rule_matcher_name(enum rule_matcher_kind m)
{
	for (size_t i = 0; i < RULE_NMATCHERS; i++)
		if (rule_matchers[i].kind == m)
			return rule_matchers[i].name;
	return "?";
}

/* rule_fail: record the first error at offset off; returns -1. */
__attribute__((format(printf, 3, 4)))
static int rule_fail(struct rule_parser *p, size_t off, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (p->failed)
		return -1;
	p->failed = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	rule_errf(p->errbuf, p->errlen, "at %zu: %s", off, msg);
	return -1;
}

/* rule_found: what sits at the current position, for "expected X, found Y". */
static const char *rule_found(const struct rule_parser *p, char *buf, size_t cap)
{
	unsigned char c;

	if (p->pos >= p->len)
		return "end of rule";
	c = (unsigned char)p->text[p->pos];
	if (c > 0x20 && c < 0x7f)
		snprintf(buf, cap, "'%c'", c);
	else
		snprintf(buf, cap, "byte 0x%02x", c);
	return buf;
}

static int rule_expected(struct rule_parser *p, const char *what)
{
	char buf[16];

	return rule_fail(p, p->pos, "expected %s, found %s", what, rule_found(p, buf, sizeof(buf)));
}

static void rule_skip_ws(struct rule_parser *p)
{
	while (p->pos < p->len) {
		char c = p->text[p->pos];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		p->pos++;
	}
}

static bool rule_peek(struct rule_parser *p, char c)
{
	rule_skip_ws(p);
	return p->pos < p->len && p->text[p->pos] == c;
}

/* rule_node_new: append a node; returns its index or -1 (out of memory). */
static int32_t rule_node_new(struct rule_parser *p, enum rule_node_kind kind, size_t off)
{
	struct rule_ast *a = p->ast;

	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;
		struct rule_node *nodes = realloc(a->nodes, cap * sizeof(*nodes));
		if (!nodes)
			return rule_fail(p, off, "out of memory");
		a->nodes = nodes;
		a->cap = cap;
	}
	memset(&a->nodes[a->n], 0, sizeof(a->nodes[0]));
	a->nodes[a->n].kind = kind;
	a->nodes[a->n].child = -1;
	a->nodes[a->n].next = -1;
	a->nodes[a->n].off = off;
	return (int32_t)a->n++;
}

/* rule_enter: count one level of '(' or '!' nesting. */
static int rule_enter(struct rule_parser *p)
{
	if (++p->depth > RULE_MAX_DEPTH)
		return rule_fail(p, p->pos, "rule nested deeper than %d levels", RULE_MAX_DEPTH);
	return 0;
}

static bool rule_is_alpha(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool rule_is_alnum(char c)
{
	return rule_is_alpha(c) || (c >= '0' && c <= '9') || c == '_';
}

/* rule_value_backtick: a raw value; nothing is special but the backtick. */
static int rule_value_backtick(struct rule_parser *p, char **out, size_t *outlen)
{
	size_t start = p->pos + 1;
	const char *end = memchr(p->text + start, '`', p->len - start);
	size_t n;

	if (!end)
		return rule_fail(p, p->pos, "unterminated value: missing closing '`'");
	n = (size_t)(end - (p->text + start));
	*out = malloc(n + 1);
	if (!*out)
		return rule_fail(p, p->pos, "out of memory");
	memcpy(*out, p->text + start, n);
	(*out)[n] = '\0';
	*outlen = n;
	p->pos = start + n + 1;
	return 0;
}

/* rule_value_quoted: a double-quoted value with \" and \\ escapes (the only
 * ones; Traefik's other Go escapes have no use in a rule). */
static int rule_value_quoted(struct rule_parser *p, char **out, size_t *outlen)
{
	size_t open = p->pos, i = p->pos + 1, n = 0;
	char *v = malloc(p->len - open);

	if (!v)
		return rule_fail(p, open, "out of memory");
	for (; i < p->len && p->text[i] != '"'; i++) {
		char c = p->text[i];
		if (c == '\\') {
			char e = i + 1 < p->len ? p->text[i + 1] : '\0';
			if (e != '"' && e != '\\') {
				free(v);
				return rule_fail(p, i, "unsupported escape in double-quoted value "
						 "(only \\\" and \\\\)");
			}
			c = e;
			i++;
		}
		v[n++] = c;
	}
	if (i >= p->len) {
		free(v);
		return rule_fail(p, open, "unterminated value: missing closing '\"'");
	}
	v[n] = '\0';
	*out = v;
	*outlen = n;
	p->pos = i + 1;
	return 0;
}

static int rule_parse_value(struct rule_parser *p, char **out, size_t *outlen)
{
	rule_skip_ws(p);
	if (p->pos < p->len && p->text[p->pos] == '`')
		return rule_value_backtick(p, out, outlen);
	if (p->pos < p->len && p->text[p->pos] == '"')
		return rule_value_quoted(p, out, outlen);
	if (p->pos < p->len && p->text[p->pos] == '\'')
		return rule_fail(p, p->pos, "single quotes are not accepted; "
				 "put the value in backticks or double quotes");
	return rule_expected(p, "a value in backticks or double quotes");
}

/* rule_lookup: the matcher called name[0..len), or a message saying why not. */
static const struct rule_matcher_def *rule_lookup(struct rule_parser *p, size_t off,
						   const char *name, size_t len)
{
	for (size_t i = 0; i < RULE_NMATCHERS; i++)
		if (strlen(rule_matchers[i].name) == len && memcmp(rule_matchers[i].name, name, len) == 0)
			return &rule_matchers[i];
	for (size_t i = 0; i < sizeof(rule_foreign) / sizeof(rule_foreign[0]); i++)
		if (strlen(rule_foreign[i].name) == len && memcmp(rule_foreign[i].name, name, len) == 0) {
			rule_fail(p, off, "unknown matcher '%.*s' (%s)", (int)len, name, rule_foreign[i].hint);
			return NULL;
		}
	for (size_t i = 0; i < RULE_NMATCHERS; i++)
		if (strlen(rule_matchers[i].name) == len && strncasecmp(rule_matchers[i].name, name, len) == 0) {
			rule_fail(p, off, "unknown matcher '%.*s' (did you mean '%s'?)", (int)len, name,
				  rule_matchers[i].name);
			return NULL;
		}
	rule_fail(p, off, "unknown matcher '%.*s'", (int)len, name);
	return NULL;
}

/* rule_parse_args: "( value, ... )" into matcher node n. */
static int rule_parse_args(struct rule_parser *p, int32_t n, const struct rule_matcher_def *def)
{
	size_t count = 0, open;

	if (!rule_peek(p, '('))
		return rule_expected(p, "'(' after the matcher name");
	open = p->pos++;
	if (rule_peek(p, ')')) {
		p->pos++;
		return rule_fail(p, open, "%s takes %zu value%s, got none", def->name, def->nargs,
				 def->nargs == 1 ? "" : "s");
	}
	for (;;) {
		char *v = NULL;
		size_t vlen = 0, voff;

		rule_skip_ws(p);
		voff = p->pos;
		if (rule_parse_value(p, &v, &vlen) < 0)
			return -1;
		if (vlen == 0) {
			free(v);
			return rule_fail(p, voff, "%s: empty value", def->name);
		}
		if (count < RULE_MAX_ARGS) {
			struct rule_node *node = &p->ast->nodes[n];
			node->arg[count] = v;
			node->arg_len[count] = vlen;
			node->arg_off[count] = voff;
			node->nargs = count + 1;
		} else {
			free(v);
		}
		count++;
		if (rule_peek(p, ',')) {
			p->pos++;
			continue;
		}
		if (rule_peek(p, ')'))
			break;
		return rule_expected(p, "',' or ')'");
	}
	p->pos++;
	if (count != def->nargs)
		return rule_fail(p, open, "%s takes %zu value%s, got %zu", def->name, def->nargs,
				 def->nargs == 1 ? "" : "s", count);
	return 0;
}

static int32_t rule_parse_matcher(struct rule_parser *p)
{
	size_t start = p->pos;
	const struct rule_matcher_def *def;
	int32_t n;

	while (p->pos < p->len && rule_is_alnum(p->text[p->pos]))
		p->pos++;
	def = rule_lookup(p, start, p->text + start, p->pos - start);
	if (!def)
		return -1;
	n = rule_node_new(p, RULE_NODE_MATCHER, start);
	if (n < 0)
		return -1;
	p->ast->nodes[n].m = def->kind;
	if (rule_parse_args(p, n, def) < 0)
		return -1;
	return n;
}

static int32_t rule_parse_or(struct rule_parser *p);

static int32_t rule_parse_unary(struct rule_parser *p)
{
	int32_t n, c;
	size_t off;

	rule_skip_ws(p);
	off = p->pos;
	if (p->pos < p->len && p->text[p->pos] == '!') {
		if (rule_enter(p) < 0)
			return -1;
		p->pos++;
		c = rule_parse_unary(p);
		if (c < 0)
			return -1;
		p->depth--;
		n = rule_node_new(p, RULE_NODE_NOT, off);
		if (n < 0)
			return -1;
		p->ast->nodes[n].child = c;
		return n;
	}
	if (p->pos < p->len && p->text[p->pos] == '(') {
		if (rule_enter(p) < 0)
			return -1;
		p->pos++;
		n = rule_parse_or(p);
		if (n < 0)
			return -1;
		if (!rule_peek(p, ')'))
			return rule_expected(p, "')'");
		p->pos++;
		p->depth--;
		return n;
	}
	if (p->pos < p->len && rule_is_alpha(p->text[p->pos]))
		return rule_parse_matcher(p);
	return rule_expected(p, "a matcher, '!' or '('");
}

/* rule_operator: consume the two-character operator op ("&&" or "||") if it
 * comes next; a lone '&' or '|' is an error rather than a silent stop. */
static int rule_operator(struct rule_parser *p, char op)
{
	rule_skip_ws(p);
	if (p->pos >= p->len || p->text[p->pos] != op)
		return 0;
	if (p->pos + 1 >= p->len || p->text[p->pos + 1] != op)
		return rule_fail(p, p->pos, "expected '%c%c'", op, op);
	p->pos += 2;
	return 1;
}

/* rule_parse_list: operand (op operand)*, one n-ary node when op appears. */
static int32_t rule_parse_list(struct rule_parser *p, enum rule_node_kind kind, char op,
			       int32_t (*operand)(struct rule_parser *))
{
	size_t off;
	int32_t first, n, tail, c;
	int r;

	rule_skip_ws(p);
	off = p->pos;
	first = operand(p);
	if (first < 0)
		return -1;
	r = rule_operator(p, op);
	if (r <= 0)
		return r < 0 ? -1 : first;
	n = rule_node_new(p, kind, off);
	if (n < 0)
		return -1;
	p->ast->nodes[n].child = first;
	tail = first;
	do {
		c = operand(p);
		if (c < 0)
			return -1;
		p->ast->nodes[tail].next = c;
		tail = c;
	} while ((r = rule_operator(p, op)) > 0);
	return r < 0 ? -1 : n;
}

static int32_t rule_parse_and(struct rule_parser *p)
{
	return rule_parse_list(p, RULE_NODE_AND, '&', rule_parse_unary);
}

static int32_t rule_parse_or(struct rule_parser *p)
{
	return rule_parse_list(p, RULE_NODE_OR, '|', rule_parse_and);
}

void rule_ast_free(struct rule_ast *ast)
{
	if (!ast)
		return;
	for (size_t i = 0; i < ast->n; i++) {
		struct rule_node *n = &ast->nodes[i];
		for (size_t a = 0; a < RULE_MAX_ARGS; a++)
			free(n->arg[a]);
		pcre2_code_free(n->re);
	}
	free(ast->nodes);
	memset(ast, 0, sizeof(*ast));
	ast->root = -1;
}

int rule_parse(const char *text, size_t len, struct rule_ast *ast, char *errbuf, size_t errlen)
{
	struct rule_parser p = {
		.text = text, .len = len, .ast = ast, .errbuf = errbuf, .errlen = errlen,
	};

	memset(ast, 0, sizeof(*ast));
	ast->root = -1;
	rule_skip_ws(&p);
	if (p.pos == p.len) {
		rule_fail(&p, p.pos, "empty rule");
		goto fail;
	}
	ast->root = rule_parse_or(&p);
	if (ast->root < 0)
		goto fail;
	rule_skip_ws(&p);
	if (p.pos < p.len) {
		rule_expected(&p, "'&&', '||' or the end of the rule");
		goto fail;
	}
	return 0;
fail:
	rule_ast_free(ast);
	return -1;
}
