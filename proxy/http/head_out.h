/*
 * head_out.h - compose a message head in a stack buffer, then add it to an
 * evbuffer in one piece.
 *
 * A head is a few dozen short pieces. Each evbuffer_add is a call through
 * the chain bookkeeping, and evbuffer_add_printf a vsnprintf: together they
 * were 8,600 instructions of the 78,500 a proxied HTTP/1.1 request cost
 * (callgrind, h2load --h1 over TLS). Here a piece is a memcpy; the buffer
 * goes out when full and at head_out_end.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <event2/buffer.h>

#define HEAD_OUT_BUF 4096

struct head_out {
	struct evbuffer *out;
	size_t len;
	int failed; /* an evbuffer_add failed (out of memory); the head is cut */
	char buf[HEAD_OUT_BUF];
};

static inline void head_out_begin(struct head_out *h, struct evbuffer *out)
{
	h->out = out;
	h->len = 0;
	h->failed = 0;
}

static inline void head_out_flush(struct head_out *h)
{
	if (h->len && evbuffer_add(h->out, h->buf, h->len) != 0)
		h->failed = 1;
	h->len = 0;
}

static inline void head_out_add(struct head_out *h, const void *p, size_t n)
{
	/* h->len never passes the buffer; said twice so the compiler sees it. */
	if (h->len <= sizeof h->buf && n <= sizeof h->buf - h->len) {
		memcpy(h->buf + h->len, p, n);
		h->len += n;
		return;
	}
	head_out_flush(h);
	if (n <= sizeof h->buf) {
		memcpy(h->buf, p, n);
		h->len = n;
	} else if (evbuffer_add(h->out, p, n) != 0) {
		h->failed = 1;
	}
}

/* HEAD_OUT_LIT: a string literal, its length known at compile time. */
#define HEAD_OUT_LIT(h, lit) head_out_add((h), (lit), sizeof(lit) - 1)

static inline void head_out_str(struct head_out *h, const char *s)
{
	head_out_add(h, s, strlen(s));
}

#define HEAD_UINT_MAX 24 /* room for any uint64_t in base 10 or 16, and a NUL */

/* head_uint_text: v in decimal (base 10) or lowercase hex (base 16) at the
 * start of out, NUL-terminated; its length. No snprintf: a field's digits
 * are a few instructions, a snprintf over a thousand. */
static inline size_t head_uint_text(char out[HEAD_UINT_MAX], uint64_t v, unsigned base)
{
	char digits[HEAD_UINT_MAX];
	size_t i = sizeof digits;
	do {
		digits[--i] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	size_t n = sizeof digits - i;
	memcpy(out, digits + i, n);
	out[n] = '\0';
	return n;
}

/* head_out_uint: v in decimal (base 10) or lowercase hex (base 16). */
static inline void head_out_uint(struct head_out *h, uint64_t v, unsigned base)
{
	char digits[HEAD_UINT_MAX];
	head_out_add(h, digits, head_uint_text(digits, v, base));
}

/* head_out_field: "name: value\r\n". */
static inline void head_out_field(struct head_out *h, const char *name, size_t name_len,
				  const char *value, size_t value_len)
{
	head_out_add(h, name, name_len);
	HEAD_OUT_LIT(h, ": ");
	head_out_add(h, value, value_len);
	HEAD_OUT_LIT(h, "\r\n");
}

/* head_out_end: what is left goes out; 0, or -1 if any add failed. */
static inline int head_out_end(struct head_out *h)
{
	head_out_flush(h);
	return h->failed ? -1 : 0;
}
