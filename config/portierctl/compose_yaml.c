/*
 * compose_yaml.c - YAML to jansson with libyaml's event API. A stack of
 * open collections (bounded by CYAML_DEPTH_MAX) receives each finished node;
 * anchors are registered when their node is complete, so an alias can never
 * refer to an unfinished (recursive) node and the tree stays acyclic.
 */
#include "config/portierctl/compose_yaml.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#define CYAML_MERGED_MAX 100000 /* keys copied by merge keys, in all */

/* One open mapping or sequence. */
struct cyaml_frame {
	json_t *node;
	char *anchor;  /* registered when the node ends; owned */
	char *key;     /* mapping: the key waiting for its value; owned */
	json_t *merges; /* mapping: the "<<" sources, applied at the end */
};

struct cyaml {
	struct cyaml_frame stack[CYAML_DEPTH_MAX];
	unsigned depth;
	json_t *root;
	json_t *anchors; /* name -> node */
	size_t merged;
	char *err;
	size_t errlen;
};

static int cyaml_fail(struct cyaml *y, const yaml_mark_t *m, const char *msg)
{
	if (m)
		snprintf(y->err, y->errlen, "line %zu column %zu: %s", m->line + 1, m->column + 1,
			 msg);
	else
		snprintf(y->err, y->errlen, "%s", msg);
	return -1;
}

static void cyaml_frame_clear(struct cyaml_frame *f)
{
	json_decref(f->node);
	json_decref(f->merges);
	free(f->anchor);
	free(f->key);
	memset(f, 0, sizeof(*f));
}

/* cyaml_merge: copy the keys of the "<<" sources the mapping lacks. */
static int cyaml_merge(struct cyaml *y, struct cyaml_frame *f, const yaml_mark_t *m)
{
	size_t i;
	json_t *src;

	json_array_foreach(f->merges, i, src) {
		const char *k;
		json_t *v;

		json_object_foreach(src, k, v) {
			if (json_object_get(f->node, k))
				continue;
			if (++y->merged > CYAML_MERGED_MAX)
				return cyaml_fail(y, m, "too many keys copied by merge keys (\"<<\")");
			if (json_object_set(f->node, k, v) < 0)
				return cyaml_fail(y, m, "out of memory");
		}
	}
	return 0;
}

/* cyaml_add_merge: record a "<<" value (a mapping or a list of mappings). */
static int cyaml_add_merge(struct cyaml *y, struct cyaml_frame *f, json_t *v,
			   const yaml_mark_t *m)
{
	size_t i;
	json_t *item;

	if (!f->merges && !(f->merges = json_array()))
		return cyaml_fail(y, m, "out of memory");
	if (json_is_object(v))
		return json_array_append(f->merges, v) < 0 ? cyaml_fail(y, m, "out of memory") : 0;
	if (!json_is_array(v))
		return cyaml_fail(y, m, "a merge key (\"<<\") needs a mapping or a list of mappings");
	json_array_foreach(v, i, item) {
		if (!json_is_object(item))
			return cyaml_fail(y, m, "a merge key (\"<<\") needs a mapping or a list of mappings");
		if (json_array_append(f->merges, item) < 0)
			return cyaml_fail(y, m, "out of memory");
	}
	return 0;
}

/* cyaml_attach: give a finished node (reference stolen) to the open
 * collection, or make it the root. key_text: the scalar's text when the
 * node may serve as a mapping key. */
static int cyaml_attach(struct cyaml *y, json_t *node, const char *key_text,
			const yaml_mark_t *m)
{
	struct cyaml_frame *f;
	int rc = -1;

	if (y->depth == 0) {
		if (y->root) {
			json_decref(node);
			return cyaml_fail(y, m, "more than one root node");
		}
		y->root = node;
		return 0;
	}
	f = &y->stack[y->depth - 1];
	if (json_is_array(f->node))
		return json_array_append_new(f->node, node) < 0 ? cyaml_fail(y, m, "out of memory")
								 : 0;
	if (!f->key) {
		if (!key_text) {
			rc = cyaml_fail(y, m, "only scalars are supported as mapping keys");
		} else if (!(f->key = strdup(key_text))) {
			rc = cyaml_fail(y, m, "out of memory");
		} else {
			rc = 0;
		}
		json_decref(node);
		return rc;
	}
	if (strcmp(f->key, "<<") == 0) {
		rc = cyaml_add_merge(y, f, node, m);
	} else if (json_object_get(f->node, f->key)) {
		char msg[160];

		snprintf(msg, sizeof(msg), "duplicate key \"%.100s\"", f->key);
		rc = cyaml_fail(y, m, msg);
	} else if (json_object_set(f->node, f->key, node) < 0) {
		rc = cyaml_fail(y, m, "key or value is not valid UTF-8");
	} else {
		rc = 0;
	}
	json_decref(node);
	free(f->key);
	f->key = NULL;
	return rc;
}

static int cyaml_anchor(struct cyaml *y, const yaml_char_t *anchor, json_t *node,
			const yaml_mark_t *m)
{
	if (!anchor)
		return 0;
	if (json_object_set(y->anchors, (const char *)anchor, node) < 0)
		return cyaml_fail(y, m, "out of memory");
	return 0;
}

static int cyaml_open(struct cyaml *y, json_t *node, const yaml_char_t *anchor,
		      const yaml_mark_t *m)
{
	struct cyaml_frame *f;

	if (!node)
		return cyaml_fail(y, m, "out of memory");
	if (y->depth >= CYAML_DEPTH_MAX) {
		json_decref(node);
		return cyaml_fail(y, m, "nested deeper than 64 levels");
	}
	f = &y->stack[y->depth++];
	f->node = node;
	if (anchor && !(f->anchor = strdup((const char *)anchor)))
		return cyaml_fail(y, m, "out of memory");
	return 0;
}

static int cyaml_close(struct cyaml *y, const yaml_mark_t *m)
{
	struct cyaml_frame *f = &y->stack[y->depth - 1];
	json_t *node;
	int rc;

	if (f->merges && cyaml_merge(y, f, m) < 0)
		return -1;
	if (f->anchor && cyaml_anchor(y, (const yaml_char_t *)f->anchor, f->node, m) < 0)
		return -1;
	node = f->node;
	f->node = NULL;
	cyaml_frame_clear(f);
	y->depth--;
	rc = cyaml_attach(y, node, NULL, m);
	return rc;
}

static int cyaml_scalar(struct cyaml *y, const yaml_event_t *ev)
{
	const char *text = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	json_t *node;

	if (strlen(text) != len)
		return cyaml_fail(y, &ev->start_mark, "NUL byte in a scalar");
	if (plain && (len == 0 || strcmp(text, "~") == 0 || strcmp(text, "null") == 0 ||
		      strcmp(text, "Null") == 0 || strcmp(text, "NULL") == 0))
		node = json_null();
	else
		node = json_stringn(text, len);
	if (!node)
		return cyaml_fail(y, &ev->start_mark, "scalar is not valid UTF-8");
	if (cyaml_anchor(y, ev->data.scalar.anchor, node, &ev->start_mark) < 0) {
		json_decref(node);
		return -1;
	}
	return cyaml_attach(y, node, text, &ev->start_mark);
}

static int cyaml_alias(struct cyaml *y, const yaml_event_t *ev)
{
	json_t *node = json_object_get(y->anchors, (const char *)ev->data.alias.anchor);

	if (!node) {
		char msg[160];

		snprintf(msg, sizeof(msg), "unknown anchor \"%.100s\"",
			 (const char *)ev->data.alias.anchor);
		return cyaml_fail(y, &ev->start_mark, msg);
	}
	return cyaml_attach(y, json_incref(node), json_string_value(node), &ev->start_mark);
}

/* cyaml_event: apply one parser event; 1 at the end of the stream. */
static int cyaml_event(struct cyaml *y, const yaml_event_t *ev, unsigned *docs)
{
	const yaml_mark_t *m = &ev->start_mark;

	switch (ev->type) {
	case YAML_STREAM_END_EVENT:
		return 1;
	case YAML_DOCUMENT_START_EVENT:
		if (++*docs > 1)
			return cyaml_fail(y, m, "more than one YAML document");
		return 0;
	case YAML_MAPPING_START_EVENT:
		return cyaml_open(y, json_object(), ev->data.mapping_start.anchor, m);
	case YAML_SEQUENCE_START_EVENT:
		return cyaml_open(y, json_array(), ev->data.sequence_start.anchor, m);
	case YAML_MAPPING_END_EVENT:
	case YAML_SEQUENCE_END_EVENT:
		if (y->depth == 0)
			return cyaml_fail(y, m, "unbalanced collection end");
		return cyaml_close(y, m);
	case YAML_SCALAR_EVENT:
		return cyaml_scalar(y, ev);
	case YAML_ALIAS_EVENT:
		return cyaml_alias(y, ev);
	default:
		return 0;
	}
}

json_t *cyaml_load(const char *text, size_t len, char *err, size_t errlen)
{
	struct cyaml y = {.err = err, .errlen = errlen};
	yaml_parser_t parser;
	unsigned docs = 0;
	json_t *out = NULL;

	if (len > CYAML_FILE_MAX) {
		snprintf(err, errlen, "larger than %u bytes", CYAML_FILE_MAX);
		return NULL;
	}
	if (!yaml_parser_initialize(&parser)) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (!(y.anchors = json_object())) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	for (;;) {
		yaml_event_t ev;
		int rc;

		if (!yaml_parser_parse(&parser, &ev)) {
			char msg[256];

			snprintf(msg, sizeof(msg), "%s%s%s", parser.problem ? parser.problem : "syntax error",
				 parser.context ? " " : "", parser.context ? parser.context : "");
			cyaml_fail(&y, &parser.problem_mark, msg);
			goto out;
		}
		rc = cyaml_event(&y, &ev, &docs);
		yaml_event_delete(&ev);
		if (rc < 0)
			goto out;
		if (rc == 1)
			break;
	}
	if (!y.root) {
		snprintf(err, errlen, "empty document");
		goto out;
	}
	out = y.root;
	y.root = NULL;
out:
	while (y.depth > 0)
		cyaml_frame_clear(&y.stack[--y.depth]);
	json_decref(y.root);
	json_decref(y.anchors);
	yaml_parser_delete(&parser);
	return out;
}
