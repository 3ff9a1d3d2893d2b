/*
 * compose_env.h - docker compose's variables: the .env file beside a compose
 * file and the interpolation of $VAR, ${VAR}, ${VAR:-default}, ${VAR-default},
 * ${VAR:?error}, ${VAR?error}, ${VAR:+alt}, ${VAR+alt} and $$ in its values.
 * The process environment wins over .env, as with docker compose.
 */
#pragma once

#include <stddef.h>

#include <jansson.h>

#define CENV_FILE_MAX (1u << 20)  /* .env files larger than this are refused */
#define CENV_VALUE_MAX (1u << 20) /* an interpolated value is at most this long */

struct cenv {
	json_t *dotenv; /* NAME -> value from the .env file, in file order */
	json_t *warned; /* names already reported as unset (one warning each) */
};

/* cenv_init: an empty set of variables (environment only). -1 when out of memory. */
int cenv_init(struct cenv *e);

/* cenv_load_dotenv: read KEY=VALUE lines from path ("export " prefix,
 * '#' comments, single quotes literal, double quotes with \n \t \" \\ \$
 * escapes, values interpolated with what is known so far). A missing file is
 * not an error (returns 0); anything else wrong is -1 with err naming the
 * path and line. */
int cenv_load_dotenv(struct cenv *e, const char *path, char *err, size_t errlen);

/* cenv_lookup: the value of name (environment first, then .env), or NULL. */
const char *cenv_lookup(const struct cenv *e, const char *name);

/* cenv_interpolate: s with its variables substituted (an unset variable is
 * "" with a warning on stderr, once per name). Returns a new string the
 * caller frees, or NULL with err ("required variable X is missing a value",
 * "invalid interpolation format", "out of memory"). */
char *cenv_interpolate(struct cenv *e, const char *s, char *err, size_t errlen);

/* cenv_clear: release e; NULL-safe and idempotent. */
void cenv_clear(struct cenv *e);
