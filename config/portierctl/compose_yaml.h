/*
 * compose_yaml.h - a compose file's YAML as a jansson tree, read with
 * libyaml's event parser under fixed bounds.
 */
#pragma once

#include <stddef.h>

#include <jansson.h>

#define CYAML_FILE_MAX (4u << 20) /* compose files larger than this are refused */
#define CYAML_DEPTH_MAX 64        /* mappings and sequences nested deeper are refused */

/* cyaml_load: the single document of a YAML text as a new json tree. Every
 * scalar is a string except the plain empty, "~" and "null" ones (JSON null);
 * an alias shares its anchor's node (no copy, so no expansion blow-up);
 * merge keys ("<<: *anchor") are applied as YAML 1.1 says. Refuses nesting
 * over CYAML_DEPTH_MAX, duplicate keys, non-scalar keys and more than one
 * document. Returns NULL with err ("LINE:COL: ...") on failure. */
json_t *cyaml_load(const char *text, size_t len, char *err, size_t errlen);
