/*
 * chunked.h - a strict decoder for HTTP/1.1 chunked bodies (RFC 9112 7.1),
 * used in both directions. http-parser 2.9.4 accepts control bytes (NUL
 * included) inside chunk extensions, which a backend may read differently:
 * a request smuggling vector. This decoder accepts only the grammar.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/http/h1_head.h"

#define CHUNKED_TRAILERS_MAX 16384u /* bytes of a trailer section, final CRLF included */

struct chunked {
	/* The caller may point this at CHUNKED_TRAILERS_MAX bytes after
	 * chunked_init to keep the trailer section (raw, final CRLF included). */
	char *trailers;
	unsigned trailers_len;
	/* Private state; zero it (chunked_init) before the first call. */
	unsigned state;
	uint64_t remaining;   /* data bytes left in the current chunk */
	unsigned line_len;    /* bytes of the current size or trailer line */
	unsigned trailer_len; /* bytes of trailers so far */
	unsigned digits;
	bool done;
};

/* chunked_data_cb: a piece of decoded body (within the input buffer). */
typedef void (*chunked_data_cb)(void *arg, const char *p, size_t n);

void chunked_init(struct chunked *c);

/* chunked_decode: consume in[0..len), calling data for body bytes. Returns
 * the bytes consumed (less than len only when the body ended: the rest
 * belongs to the next message), or -1 on malformed input (*why set to a
 * static reason). After the final CRLF, c->done is true. Size lines and
 * trailers are capped at 4 KiB each (-1 beyond); trailers are checked and
 * dropped. */
/* chunked_trailer_fields: the fields of a kept trailer section (checked by
 * the decoder already) into out (capacity cap), pointing into buf, values
 * trimmed. Returns the count; fields beyond cap are dropped. */
size_t chunked_trailer_fields(const char *buf, size_t len, struct h1_header *out, size_t cap);

ptrdiff_t chunked_decode(struct chunked *c, const char *in, size_t len, chunked_data_cb data,
			 void *arg, const char **why);
