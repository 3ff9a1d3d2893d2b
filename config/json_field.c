/*
 * json_field.c - field paths, strict getters and bounded file reads for the
 * config loaders. Every error carries the path of the value it is about.
 */
#include "config/json_field.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/static_load.h"

void jf_path_init(struct jf_path *p, const char *prefix)
{
	p->len = 0;
	p->buf[0] = '\0';
	if (prefix && *prefix) {
		snprintf(p->buf, sizeof(p->buf), "%s", prefix);
		p->len = strlen(p->buf);
	}
}

/* jf_path_append: add bytes, truncating at the buffer's end. Bytes that would
 * garble a terminal (a hostile key) are shown as '?'. */
static void jf_path_append(struct jf_path *p, const char *s, size_t n)
{
	for (size_t i = 0; i < n && p->len + 1 < sizeof(p->buf); i++) {
		unsigned char c = (unsigned char)s[i];
		p->buf[p->len++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	p->buf[p->len] = '\0';
}

size_t jf_path_key(struct jf_path *p, const char *key)
{
	size_t mark = p->len;

	if (p->len > 0)
		jf_path_append(p, ".", 1);
	jf_path_append(p, key, strlen(key));
	return mark;
}

size_t jf_path_index(struct jf_path *p, size_t i)
{
	size_t mark = p->len;
	char tmp[32];
	int n = snprintf(tmp, sizeof(tmp), "[%zu]", i);

	jf_path_append(p, tmp, (size_t)n);
	return mark;
}

void jf_path_pop(struct jf_path *p, size_t mark)
{
	if (mark < p->len) {
		p->len = mark;
		p->buf[mark] = '\0';
	}
}

int jf_fail(struct cfg_err *err, int status, const struct jf_path *p, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return -1;
	err->status = status;
	snprintf(err->field, sizeof(err->field), "%s", p ? p->buf : "");
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -1;
}

static bool jf_key_allowed(const char *key, const char *const *allowed)
{
	for (; *allowed; allowed++)
		if (strcmp(key, *allowed) == 0)
			return true;
	return false;
}

int jf_check_keys(json_t *obj, const char *const *allowed, struct jf_path *p,
		  struct cfg_err *err)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		char list[400];
		size_t used = 0;

		if (jf_key_allowed(key, allowed))
			continue;
		list[0] = '\0';
		for (const char *const *a = allowed; *a && used < sizeof(list); a++) {
			int n = snprintf(list + used, sizeof(list) - used, "%s%s",
					 a == allowed ? "" : ", ", *a);
			if (n < 0)
				break;
			used += (size_t)n;
		}
		jf_path_key(p, key);
		return jf_fail(err, 400, p, "unknown key (expected one of: %s)", list);
	}
	return 0;
}

int jf_expect_object(const json_t *v, const struct jf_path *p, struct cfg_err *err)
{
	if (!json_is_object(v))
		return jf_fail(err, 400, p, "expected an object");
	return 0;
}

int jf_string(const json_t *v, size_t maxlen, const struct jf_path *p, struct cfg_err *err,
	      const char **out)
{
	const char *s;
	size_t len;

	if (!json_is_string(v))
		return jf_fail(err, 400, p, "expected a string");
	s = json_string_value(v);
	len = json_string_length(v);
	if (len > maxlen)
		return jf_fail(err, 400, p, "too long (at most %zu bytes)", maxlen);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return jf_fail(err, 400, p, "control characters are not allowed");
	}
	*out = s;
	return 0;
}

int jf_bool(const json_t *v, const struct jf_path *p, struct cfg_err *err, bool *out)
{
	if (!json_is_boolean(v))
		return jf_fail(err, 400, p, "expected true or false");
	*out = json_is_true(v);
	return 0;
}

int jf_uint(const json_t *v, uint64_t min, uint64_t max, const struct jf_path *p,
	    struct cfg_err *err, uint64_t *out)
{
	json_int_t x;

	if (!json_is_integer(v))
		return jf_fail(err, 400, p, "expected an integer");
	x = json_integer_value(v);
	if (x < 0 || (uint64_t)x < min || (uint64_t)x > max)
		return jf_fail(err, 400, p, "must be between %" PRIu64 " and %" PRIu64, min, max);
	*out = (uint64_t)x;
	return 0;
}

int jf_int(const json_t *v, int64_t min, int64_t max, const struct jf_path *p,
	   struct cfg_err *err, int64_t *out)
{
	json_int_t x;

	if (!json_is_integer(v))
		return jf_fail(err, 400, p, "expected an integer");
	x = json_integer_value(v);
	if (x < min || x > max)
		return jf_fail(err, 400, p, "must be between %" PRId64 " and %" PRId64, min, max);
	*out = (int64_t)x;
	return 0;
}

int jf_duration(const json_t *v, uint64_t min_ms, const struct jf_path *p, struct cfg_err *err,
		uint64_t *out)
{
	uint64_t ms;

	if (!json_is_string(v) || cfg_parse_duration(json_string_value(v), &ms) < 0 ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return jf_fail(err, 400, p,
			       "expected a duration such as \"250ms\", \"30s\", \"5m\", \"24h\" or \"7d\"");
	if (ms < min_ms && min_ms == 1)
		return jf_fail(err, 400, p, "must be greater than zero");
	if (ms < min_ms)
		return jf_fail(err, 400, p, "must be at least %" PRIu64 "ms", min_ms);
	*out = ms;
	return 0;
}

int jf_size(const json_t *v, uint64_t max, const struct jf_path *p, struct cfg_err *err,
	    uint64_t *out)
{
	uint64_t n;

	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		n = (uint64_t)json_integer_value(v);
	} else if (!json_is_string(v) || cfg_parse_size(json_string_value(v), &n) < 0 ||
		   strlen(json_string_value(v)) != json_string_length(v)) {
		return jf_fail(err, 400, p,
			       "expected a size such as 512, \"16k\", \"1m\" or \"2g\"");
	}
	if (n > max)
		return jf_fail(err, 400, p, "must be at most %" PRIu64 " bytes", max);
	*out = n;
	return 0;
}

int jf_strdup(char **dst, const char *s)
{
	char *copy = NULL;

	if (s && !(copy = strdup(s)))
		return -1;
	free(*dst);
	*dst = copy;
	return 0;
}

/* jf_read_all: read fd until EOF or cap bytes. */
static ssize_t jf_read_all(int fd, char *buf, size_t cap)
{
	size_t got = 0;

	while (got < cap) {
		ssize_t n = read(fd, buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int jf_load_file(const char *path, size_t max_bytes, bool missing_ok, json_t **out,
		 struct cfg_err *err)
{
	json_error_t jerr;
	struct stat st;
	char *buf = NULL;
	size_t size;
	ssize_t n;
	int fd, rc = -1;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT && missing_ok)
			return 0;
		cfg_err_set(err, errno == ENOENT ? 400 : 500, "", "cannot open %s: %s", path,
			    strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		cfg_err_set(err, 400, "", "%s is not a regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > max_bytes) {
		cfg_err_set(err, 400, "", "%s is larger than %zu bytes", path, max_bytes);
		goto out;
	}
	/* One byte more than fstat said, so a file growing under us is noticed
	 * instead of being parsed truncated. */
	size = (size_t)st.st_size;
	if (!(buf = malloc(size + 1))) {
		cfg_err_set(err, 500, "", "out of memory reading %s", path);
		goto out;
	}
	n = jf_read_all(fd, buf, size + 1);
	if (n < 0) {
		cfg_err_set(err, 500, "", "cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	if ((size_t)n > size) {
		cfg_err_set(err, 500, "", "%s changed while being read; try again", path);
		goto out;
	}
	*out = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
	if (!*out) {
		cfg_err_set(err, 400, "", "%s: line %d, column %d: %s", path, jerr.line,
			    jerr.column, jerr.text);
		goto out;
	}
	rc = 1;
out:
	free(buf);
	close(fd);
	return rc;
}
