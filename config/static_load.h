/*
 * static_load.h - portier.json: parse, fill defaults, validate.
 */
#pragma once

#include <jansson.h>

#include "config/model.h"
#include "config/values.h" /* cfg_parse_* for existing callers */

/* cfg_static_defaults: the embedded defaults of DESIGN.md section 3. */
void cfg_static_defaults(struct cfg_static *out);

/* cfg_static_from_json: validate root and fill *out (defaults first). Unknown
 * keys are errors naming the field. Returns 0, or -1 with err set and *out
 * cleared. */
int cfg_static_from_json(json_t *root, struct cfg_static *out, struct cfg_err *err);

/* cfg_static_load_file: the same from a file path; a missing or unreadable
 * file is an error naming the path. */
int cfg_static_load_file(const char *path, struct cfg_static *out, struct cfg_err *err);

/* cfg_static_clear: free what *c owns and zero it. NULL-safe. */
void cfg_static_clear(struct cfg_static *c);
