/*
 * json_field.h - private helpers shared by the config loaders: a JSON path
 * that follows the walk ("tenants.acme.routes[1].rule") so every error names
 * its field, strict typed getters, unknown-key checks and bounded file reads.
 * Not part of the config contract; only static_load.c and tenant_load.c use it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config/model.h"

/* jf_path: the field being looked at; sized like cfg_err.field, truncated
 * (never overflowed) when deeper. */
struct jf_path {
	char buf[sizeof(((struct cfg_err *)0)->field)];
	size_t len;
};

void jf_path_init(struct jf_path *p, const char *prefix);
/* jf_path_key / jf_path_index: descend; return the mark jf_path_pop restores. */
size_t jf_path_key(struct jf_path *p, const char *key);
size_t jf_path_index(struct jf_path *p, size_t i);
void jf_path_pop(struct jf_path *p, size_t mark);

/* jf_fail: set err for the current path; always returns -1 so callers can
 * `return jf_fail(...)`. */
int jf_fail(struct cfg_err *err, int status, const struct jf_path *p, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* jf_check_keys: every key of obj must be in the NULL-terminated `allowed`,
 * else an error naming path.key. obj must be an object. */
int jf_check_keys(json_t *obj, const char *const *allowed, struct jf_path *p,
		  struct cfg_err *err);

/* jf_expect_object: obj is a JSON object, else "expected an object". */
int jf_expect_object(const json_t *v, const struct jf_path *p, struct cfg_err *err);

/*
 * Getters for the value at the current path (the caller has pushed it). All
 * return 0 and store the value, or -1 with err set. Strings are borrowed from
 * v, never contain NUL or control bytes and are at most maxlen bytes.
 */
int jf_string(const json_t *v, size_t maxlen, const struct jf_path *p, struct cfg_err *err,
	      const char **out);
int jf_bool(const json_t *v, const struct jf_path *p, struct cfg_err *err, bool *out);
int jf_uint(const json_t *v, uint64_t min, uint64_t max, const struct jf_path *p,
	    struct cfg_err *err, uint64_t *out);
int jf_int(const json_t *v, int64_t min, int64_t max, const struct jf_path *p,
	   struct cfg_err *err, int64_t *out);
/* jf_duration: a duration string ("30s") of at least min_ms. */
int jf_duration(const json_t *v, uint64_t min_ms, const struct jf_path *p, struct cfg_err *err,
		uint64_t *out);
/* jf_size: a size string ("16k") or a non-negative integer, at most max. */
int jf_size(const json_t *v, uint64_t max, const struct jf_path *p, struct cfg_err *err,
	    uint64_t *out);

/* jf_strdup: replace *dst by a copy of s (NULL allowed). Returns -1 on ENOMEM. */
int jf_strdup(char **dst, const char *s);

/* jf_load_file: read at most max_bytes of path and parse it (duplicate keys
 * rejected). Returns 1 with *out set, 0 when missing_ok and the file does not
 * exist, -1 with err naming the path (and line/column for syntax errors). */
int jf_load_file(const char *path, size_t max_bytes, bool missing_ok, json_t **out,
		 struct cfg_err *err);
