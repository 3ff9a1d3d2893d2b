/*
 * problem.c - RFC 7807 / RFC 8555 problem documents to a classification and
 * a bounded, single-line message. The text comes from the CA and ends up in
 * logs and terminals, so control characters (C0, DEL, C1, bidi overrides)
 * never get through, and truncation never splits a UTF-8 sequence.
 */
#include "acme/problem.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#define PROBLEM_ACME_PREFIX "urn:ietf:params:acme:error:"
#define PROBLEM_ELLIPSIS "..."

static const struct {
	const char *name;
	enum problem_kind kind;
} problem_kinds[] = {
	{"badNonce", PROBLEM_BAD_NONCE},       {"rateLimited", PROBLEM_RATE_LIMITED},
	{"unauthorized", PROBLEM_UNAUTHORIZED}, {"connection", PROBLEM_CONNECTION},
	{"dns", PROBLEM_DNS},                   {"malformed", PROBLEM_MALFORMED},
	{"serverInternal", PROBLEM_SERVER_INTERNAL},
	{"accountDoesNotExist", PROBLEM_ACCOUNT_MISSING},
};

/* A message being written: at most cap - 1 bytes; once text had to be cut
 * nothing more is added and problem_text_end appends the ellipsis. */
struct problem_text {
	char *s;
	size_t cap, len;
	int cut;
};

const char *problem_kind_name(enum problem_kind kind)
{
	for (size_t i = 0; i < sizeof problem_kinds / sizeof problem_kinds[0]; i++)
		if (problem_kinds[i].kind == kind)
			return problem_kinds[i].name;
	return "other";
}

/* problem_classify: the kind of a type URI (NULL allowed). */
static enum problem_kind problem_classify(const char *type)
{
	size_t plen = strlen(PROBLEM_ACME_PREFIX);
	if (!type || strncmp(type, PROBLEM_ACME_PREFIX, plen) != 0)
		return PROBLEM_OTHER;
	for (size_t i = 0; i < sizeof problem_kinds / sizeof problem_kinds[0]; i++)
		if (!strcmp(type + plen, problem_kinds[i].name))
			return problem_kinds[i].kind;
	return PROBLEM_OTHER;
}

/* problem_seq_len: length of the UTF-8 sequence at s, 0 if s does not start
 * a complete, well-formed one. */
static size_t problem_seq_len(const unsigned char *s)
{
	size_t n = s[0] < 0x80 ? 1 : s[0] >= 0xc2 && s[0] <= 0xdf ? 2
				   : s[0] >= 0xe0 && s[0] <= 0xef ? 3
				   : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4
								  : 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* problem_filter: what to do with the sequence s of n bytes: 1 copy it,
 * 0 drop it, 2 write a space instead (line breaks and tabs). */
static int problem_filter(const unsigned char *s, size_t n)
{
	if (n == 1 && (s[0] == '\t' || s[0] == '\n' || s[0] == '\r'))
		return 2;
	if (n == 1 && (s[0] < 0x20 || s[0] == 0x7f))
		return 0;
	if (n == 2 && s[0] == 0xc2 && s[1] < 0xa0) /* C1 controls U+0080..U+009F */
		return 0;
	if (n == 3 && s[0] == 0xe2 && s[1] == 0x80 && (s[2] == 0xa8 || s[2] == 0xa9))
		return 2; /* U+2028, U+2029 line and paragraph separators */
	if (n == 3 && s[0] == 0xe2 &&
	    ((s[1] == 0x80 && s[2] >= 0xaa && s[2] <= 0xae) ||
	     (s[1] == 0x81 && s[2] >= 0xa6 && s[2] <= 0xa9)))
		return 0; /* bidi embeddings, overrides and isolates */
	return 1;
}

/* problem_text_add: append text, filtered; stop for good at the first
 * sequence that does not fit with room left for the ellipsis. */
static void problem_text_add(struct problem_text *t, const char *text)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t room = t->cap - 1 - strlen(PROBLEM_ELLIPSIS);
	while (!t->cut && *s) {
		size_t n = problem_seq_len(s);
		if (n == 0) { /* not UTF-8: skip the byte */
			s++;
			continue;
		}
		int what = problem_filter(s, n);
		if (what == 2 && t->len > 0 && t->s[t->len - 1] == ' ')
			what = 0; /* collapse runs of blanks */
		if (what && t->len + (what == 2 ? 1 : n) > room) {
			t->cut = 1;
			break;
		}
		if (what == 1) {
			memcpy(t->s + t->len, s, n);
			t->len += n;
		} else if (what == 2) {
			t->s[t->len++] = ' ';
		}
		s += n;
	}
	t->s[t->len] = '\0';
}

/* problem_text_end: the ellipsis when something was cut. */
static void problem_text_end(struct problem_text *t)
{
	if (t->cut) {
		memcpy(t->s + t->len, PROBLEM_ELLIPSIS, sizeof PROBLEM_ELLIPSIS);
		t->len += strlen(PROBLEM_ELLIPSIS);
	}
}

/* problem_string: member key of obj if it is a non-empty string, else NULL. */
static const char *problem_string(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s && *s ? s : NULL;
}

/* problem_message: "TYPE: DETAIL" and, when identifier is given, " (ID)". */
static void problem_message(char *out, size_t cap, const json_t *doc)
{
	struct problem_text t = {out, cap, 0, 0};
	const char *type = problem_string(doc, "type");
	const char *detail = problem_string(doc, "detail");
	const char *id = problem_string(json_object_get(doc, "identifier"), "value");
	size_t plen = strlen(PROBLEM_ACME_PREFIX);
	if (!type)
		type = "about:blank";
	else if (!strncmp(type, PROBLEM_ACME_PREFIX, plen) && type[plen])
		type += plen;
	problem_text_add(&t, type);
	if (detail) {
		problem_text_add(&t, ": ");
		problem_text_add(&t, detail);
	}
	if (id) {
		problem_text_add(&t, " (");
		problem_text_add(&t, id);
		problem_text_add(&t, ")");
	}
	problem_text_end(&t);
}

int problem_parse(const char *body, size_t len, int http_status, struct problem *p)
{
	memset(p, 0, sizeof *p);
	p->kind = PROBLEM_OTHER;
	p->status = http_status >= 100 && http_status <= 599 ? http_status : 0;
	json_t *doc = body ? json_loadb(body, len, 0, NULL) : NULL;
	if (!json_is_object(doc)) {
		snprintf(p->message, sizeof p->message,
			 "unreadable error response from the CA (HTTP %d)", p->status);
		json_decref(doc);
		return -1;
	}
	json_t *st = json_object_get(doc, "status");
	if (json_is_integer(st) && json_integer_value(st) >= 100 && json_integer_value(st) <= 599)
		p->status = (int)json_integer_value(st);
	const char *type = problem_string(doc, "type");
	p->kind = problem_classify(type);
	problem_message(p->message, sizeof p->message, doc);

	json_t *subs = json_object_get(doc, "subproblems");
	size_t i;
	json_t *sub;
	json_array_foreach(subs, i, sub) {
		if (!json_is_object(sub))
			continue;
		p->nsub_total++;
		if (p->nsub == PROBLEM_SUB_MAX)
			continue;
		struct problem_sub *ps = &p->sub[p->nsub++];
		ps->kind = problem_classify(problem_string(sub, "type"));
		problem_message(ps->message, sizeof ps->message, sub);
	}
	if (p->nsub > 0 && type && !strcmp(type, PROBLEM_ACME_PREFIX "compound"))
		p->kind = p->sub[0].kind;
	json_decref(doc);
	return 0;
}
