/*
 * h2_request.h - from an HTTP/2 header block to the protocol-neutral
 * request (see h2_request.c).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/http/req.h"

#define H2_WS_KEY_SIZE 32 /* a Sec-WebSocket-Key: base64 of 16 bytes, NUL */

struct h2_field {
	uint32_t name_off, name_len, value_off, value_len;
};

/* A header block under collection: names and values side by side in buf. */
struct h2_head {
	char *buf;
	size_t len, cap;
	struct h2_field *fields;
	size_t n_fields, cap_fields;
	size_t list_size; /* RFC 9113 6.5.2 accounting, kept by the caller */
};

/* h2_head_add: append one field; -1 when out of memory. */
int h2_head_add(struct h2_head *h, const char *name, size_t namelen, const char *value,
		size_t valuelen);
/* h2_head_reset: empty it for the next block (trailers), keeping memory. */
void h2_head_reset(struct h2_head *h);
void h2_head_clear(struct h2_head *h);

/* h2_request_build: fill r (method, path, query, authority, host, headers
 * with Host first, body framing) from the block h, whose strings move into
 * r->head_buf (h is left empty). end_stream: the block ended the stream.
 * An extended CONNECT for a WebSocket sets *ws, becomes a GET upgrade and
 * gets a fresh key in ws_key. Returns 0, 501 for a CONNECT portier does not
 * serve, or -1 with *why when malformed (a stream error). The connection's
 * facts (client, TLS) are the caller's to fill. */
int h2_request_build(struct h2_head *h, bool end_stream, struct req *r, bool *ws,
		     char ws_key[H2_WS_KEY_SIZE], const char **why);
