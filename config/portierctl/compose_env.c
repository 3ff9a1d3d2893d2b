/*
 * compose_env.c - the .env file and ${VAR} interpolation, following docker
 * compose v2: the environment wins over .env; "$$" is a literal '$'; a '$'
 * that starts no variable is kept as it is (compose would refuse the file).
 * Defaults and alternatives may nest (${A:-${B}}), to a bounded depth.
 */
#include "config/portierctl/compose_env.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/fileio.h"

#define CENV_NEST_MAX 8   /* ${A:-${B:-...}} levels */
#define CENV_NAME_MAX 256 /* variable names */

/* A growing string bounded by CENV_VALUE_MAX. */
struct cenv_buf {
	char *p;
	size_t len, cap;
};

static int cenv_buf_put(struct cenv_buf *b, const char *s, size_t n)
{
	if (n > CENV_VALUE_MAX - b->len)
		return -1;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		char *np;

		while (cap < b->len + n + 1)
			cap *= 2;
		if (!(np = realloc(b->p, cap)))
			return -1;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static bool cenv_name_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool cenv_name_char(char c)
{
	return cenv_name_start(c) || (c >= '0' && c <= '9');
}

int cenv_init(struct cenv *e)
{
	e->dotenv = json_object();
	e->warned = json_object();
	if (!e->dotenv || !e->warned) {
		cenv_clear(e);
		return -1;
	}
	return 0;
}

void cenv_clear(struct cenv *e)
{
	json_decref(e->dotenv);
	json_decref(e->warned);
	e->dotenv = NULL;
	e->warned = NULL;
}

const char *cenv_lookup(const struct cenv *e, const char *name)
{
	const char *v = getenv(name);

	if (v)
		return v;
	return json_string_value(json_object_get(e->dotenv, name));
}

/* cenv_lookup_n: cenv_lookup for a name given by pointer and length. */
static const char *cenv_lookup_n(struct cenv *e, const char *name, size_t n, bool warn)
{
	char key[CENV_NAME_MAX + 1];
	const char *v;

	if (n > CENV_NAME_MAX)
		return NULL;
	memcpy(key, name, n);
	key[n] = '\0';
	v = cenv_lookup(e, key);
	if (!v && warn && !json_object_get(e->warned, key)) {
		json_object_set_new(e->warned, key, json_true());
		fprintf(stderr, "warning: the \"%s\" variable is not set; using a blank string\n",
			key);
	}
	return v;
}

/* cenv_brace_end: the index of the '}' closing a ${...} whose body starts at
 * i, skipping nested ${...} and "$$"; n when there is none. */
static size_t cenv_brace_end(const char *s, size_t i, size_t n)
{
	unsigned depth = 0;

	while (i < n) {
		if (s[i] == '$' && i + 1 < n && (s[i + 1] == '$' || s[i + 1] == '{')) {
			depth += s[i + 1] == '{';
			i += 2;
			continue;
		}
		if (s[i] == '}') {
			if (depth == 0)
				return i;
			depth--;
		}
		i++;
	}
	return n;
}

static int cenv_expand(struct cenv *e, const char *s, size_t n, unsigned nest,
		       struct cenv_buf *out, char *err, size_t errlen);

/* cenv_braced: one ${...} whose body is s[0..n) (without the braces). */
static int cenv_braced(struct cenv *e, const char *s, size_t n, unsigned nest,
		       struct cenv_buf *out, char *err, size_t errlen)
{
	size_t name_len = 0, k;
	bool colon = false, cond;
	const char *v;
	char op;

	if (n > 0 && cenv_name_start(s[0]))
		while (name_len < n && cenv_name_char(s[name_len]))
			name_len++;
	if (name_len == 0 || name_len > CENV_NAME_MAX) {
		snprintf(err, errlen, "invalid interpolation format in \"${%.*s}\"",
			 (int)(n > 80 ? 80 : n), s);
		return -1;
	}
	if (name_len == n) {
		v = cenv_lookup_n(e, s, name_len, true);
		return v ? cenv_buf_put(out, v, strlen(v)) : 0;
	}
	k = name_len;
	if (s[k] == ':') {
		colon = true;
		k++;
	}
	op = k < n ? s[k] : '\0';
	if (op != '-' && op != '?' && op != '+') {
		snprintf(err, errlen, "invalid interpolation format in \"${%.*s}\"",
			 (int)(n > 80 ? 80 : n), s);
		return -1;
	}
	k++;
	v = cenv_lookup_n(e, s, name_len, false);
	cond = colon ? (v && *v) : v != NULL;
	switch (op) {
	case '-':
		if (cond)
			return cenv_buf_put(out, v, strlen(v));
		return cenv_expand(e, s + k, n - k, nest + 1, out, err, errlen);
	case '+':
		if (!cond)
			return 0;
		return cenv_expand(e, s + k, n - k, nest + 1, out, err, errlen);
	default: { /* '?' */
		struct cenv_buf msg = {0};
		int rc;

		if (cond)
			return cenv_buf_put(out, v, strlen(v));
		rc = cenv_expand(e, s + k, n - k, nest + 1, &msg, err, errlen);
		if (rc == 0)
			snprintf(err, errlen, "required variable %.*s is missing a value%s%.200s",
				 (int)name_len, s, msg.len ? ": " : "", msg.len ? msg.p : "");
		free(msg.p);
		return -1;
	}
	}
}

/* cenv_expand: append s[0..n) to out with its variables substituted. */
static int cenv_expand(struct cenv *e, const char *s, size_t n, unsigned nest,
		       struct cenv_buf *out, char *err, size_t errlen)
{
	size_t i = 0;

	if (nest > CENV_NEST_MAX) {
		snprintf(err, errlen, "variables nested deeper than %d levels", CENV_NEST_MAX);
		return -1;
	}
	while (i < n) {
		size_t j = i;
		const char *v;

		while (j < n && s[j] != '$')
			j++;
		if (cenv_buf_put(out, s + i, j - i) < 0)
			goto oom;
		if (j >= n)
			break;
		i = j + 1; /* past the '$' */
		if (i < n && s[i] == '$') {
			if (cenv_buf_put(out, "$", 1) < 0)
				goto oom;
			i++;
		} else if (i < n && s[i] == '{') {
			size_t end = cenv_brace_end(s, i + 1, n);

			if (end >= n) {
				snprintf(err, errlen, "unterminated \"${\" in \"%.80s\"", s + j);
				return -1;
			}
			if (cenv_braced(e, s + i + 1, end - i - 1, nest, out, err, errlen) < 0) {
				if (!*err)
					goto oom;
				return -1;
			}
			i = end + 1;
		} else if (i < n && cenv_name_start(s[i])) {
			size_t start = i;

			while (i < n && cenv_name_char(s[i]))
				i++;
			v = cenv_lookup_n(e, s + start, i - start, true);
			if (v && cenv_buf_put(out, v, strlen(v)) < 0)
				goto oom;
		} else if (cenv_buf_put(out, "$", 1) < 0) {
			goto oom;
		}
	}
	return 0;
oom:
	snprintf(err, errlen, "value too long (over %u bytes) or out of memory", CENV_VALUE_MAX);
	return -1;
}

char *cenv_interpolate(struct cenv *e, const char *s, char *err, size_t errlen)
{
	struct cenv_buf out = {0};

	if (errlen)
		err[0] = '\0';
	if (cenv_expand(e, s, strlen(s), 0, &out, err, errlen) < 0 ||
	    (!out.p && cenv_buf_put(&out, "", 0) < 0)) {
		if (!*err)
			snprintf(err, errlen, "out of memory");
		free(out.p);
		return NULL;
	}
	return out.p;
}

/* ---- the .env file --------------------------------------------------- */

/* A cursor over the .env text that counts lines for messages. */
struct cenv_scan {
	const char *s;
	size_t n, i;
	unsigned line;
};

static void cenv_skip_blanks(struct cenv_scan *sc)
{
	while (sc->i < sc->n && (sc->s[sc->i] == ' ' || sc->s[sc->i] == '\t'))
		sc->i++;
}

/* cenv_skip_line: past the end of the current line. */
static void cenv_skip_line(struct cenv_scan *sc)
{
	while (sc->i < sc->n && sc->s[sc->i] != '\n')
		sc->i++;
	if (sc->i < sc->n) {
		sc->i++;
		sc->line++;
	}
}

/* cenv_quoted: a value in quotes starting at sc->i (on the quote), into raw:
 * single quotes literally (with '$' doubled so interpolation keeps it),
 * double quotes with their escapes ("\$" becomes "$$"). */
static int cenv_quoted(struct cenv_scan *sc, struct cenv_buf *raw)
{
	char q = sc->s[sc->i++];

	while (sc->i < sc->n && sc->s[sc->i] != q) {
		char c = sc->s[sc->i++];
		const char *put = &c;
		size_t len = 1;

		if (c == '\n')
			sc->line++;
		if (c == '$') {
			put = q == '\'' ? "$$" : "$";
			len = q == '\'' ? 2 : 1;
		} else if (q == '"' && c == '\\' && sc->i < sc->n) {
			char x = sc->s[sc->i++];

			switch (x) {
			case 'n': put = "\n"; break;
			case 't': put = "\t"; break;
			case 'r': put = "\r"; break;
			case '\\': put = "\\"; break;
			case '"': put = "\""; break;
			case '$': put = "$$"; len = 2; break;
			default: /* an unknown escape is kept as written */
				if (cenv_buf_put(raw, "\\", 1) < 0)
					return -1;
				if (x == '\n')
					sc->line++;
				put = &x;
				break;
			}
			if (cenv_buf_put(raw, put, len) < 0)
				return -1;
			continue;
		}
		if (cenv_buf_put(raw, put, len) < 0)
			return -1;
	}
	if (sc->i >= sc->n)
		return -2; /* unterminated */
	sc->i++;
	return 0;
}

/* cenv_unquoted: the rest of the line, without a " #comment" and trailing blanks. */
static int cenv_unquoted(struct cenv_scan *sc, struct cenv_buf *raw)
{
	size_t start = sc->i, end;

	while (sc->i < sc->n && sc->s[sc->i] != '\n') {
		if (sc->s[sc->i] == '#' && sc->i > start &&
		    (sc->s[sc->i - 1] == ' ' || sc->s[sc->i - 1] == '\t'))
			break;
		sc->i++;
	}
	end = sc->i;
	while (end > start && (sc->s[end - 1] == ' ' || sc->s[end - 1] == '\t' ||
			       sc->s[end - 1] == '\r'))
		end--;
	return cenv_buf_put(raw, sc->s + start, end - start);
}

/* cenv_dotenv_line: one KEY=VALUE entry at sc->i (blanks already skipped). */
static int cenv_dotenv_line(struct cenv *e, struct cenv_scan *sc, const char *path,
			    char *err, size_t errlen)
{
	struct cenv_buf raw = {0};
	char key[CENV_NAME_MAX + 1], *value = NULL;
	size_t k0, klen;
	int rc = -1, q;

	if (sc->n - sc->i > 7 && strncmp(sc->s + sc->i, "export", 6) == 0 &&
	    (sc->s[sc->i + 6] == ' ' || sc->s[sc->i + 6] == '\t')) {
		sc->i += 7;
		cenv_skip_blanks(sc);
	}
	k0 = sc->i;
	while (sc->i < sc->n && (cenv_name_char(sc->s[sc->i]) || sc->s[sc->i] == '.' ||
				 sc->s[sc->i] == '-'))
		sc->i++;
	klen = sc->i - k0;
	cenv_skip_blanks(sc);
	if (klen == 0 || klen > CENV_NAME_MAX || sc->i >= sc->n || sc->s[sc->i] != '=') {
		snprintf(err, errlen, "%s:%u: expected KEY=VALUE", path, sc->line);
		goto out;
	}
	memcpy(key, sc->s + k0, klen);
	key[klen] = '\0';
	sc->i++;
	cenv_skip_blanks(sc);
	if (sc->i < sc->n && (sc->s[sc->i] == '\'' || sc->s[sc->i] == '"')) {
		unsigned first = sc->line;

		q = cenv_quoted(sc, &raw);
		if (q == -2) {
			snprintf(err, errlen, "%s:%u: unterminated quoted value", path, first);
			goto out;
		}
		cenv_skip_blanks(sc);
		if (sc->i < sc->n && sc->s[sc->i] != '\n' && sc->s[sc->i] != '#' &&
		    sc->s[sc->i] != '\r') {
			snprintf(err, errlen, "%s:%u: unexpected text after the quoted value",
				 path, sc->line);
			goto out;
		}
	} else {
		q = cenv_unquoted(sc, &raw);
	}
	if (q < 0 || (!raw.p && cenv_buf_put(&raw, "", 0) < 0)) {
		snprintf(err, errlen, "%s:%u: value too long or out of memory", path, sc->line);
		goto out;
	}
	if (!(value = cenv_interpolate(e, raw.p, err, errlen))) {
		char why[256];

		snprintf(why, sizeof(why), "%s", err);
		snprintf(err, errlen, "%s:%u: %s", path, sc->line, why);
		goto out;
	}
	if (json_object_set_new(e->dotenv, key, json_string(value)) < 0) {
		snprintf(err, errlen, "%s:%u: %s is not valid UTF-8", path, sc->line, key);
		goto out;
	}
	cenv_skip_line(sc);
	rc = 0;
out:
	free(raw.p);
	free(value);
	return rc;
}

int cenv_load_dotenv(struct cenv *e, const char *path, char *err, size_t errlen)
{
	struct cenv_scan sc = {.line = 1};
	size_t len = 0;
	char *text = fileio_read(path, CENV_FILE_MAX, &len, err, errlen);
	int rc = -1;

	if (!text)
		return errno == ENOENT ? 0 : -1;
	sc.s = text;
	sc.n = len;
	while (sc.i < sc.n) {
		cenv_skip_blanks(&sc);
		if (sc.i >= sc.n)
			break;
		if (sc.s[sc.i] == '\n' || sc.s[sc.i] == '\r' || sc.s[sc.i] == '#') {
			cenv_skip_line(&sc);
			continue;
		}
		if (cenv_dotenv_line(e, &sc, path, err, errlen) < 0)
			goto out;
	}
	rc = 0;
out:
	free(text);
	return rc;
}
