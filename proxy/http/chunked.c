/*
 * chunked.c - a strict, incremental decoder of HTTP/1.1 chunked bodies
 * (RFC 9112 7.1). One byte-driven state machine for the size lines,
 * extensions and trailers; chunk data is handed on in one callback per
 * input piece, pointing into the caller's buffer.
 *
 * Strictness choices, all from the grammar:
 *   - chunk-size is 1*HEXDIG; at most 16 significant digits (leading zeros
 *     are free), so the value always fits a uint64_t;
 *   - BWS is allowed only where chunk-ext puts it: before ';', around '=',
 *     after ';'. "1 \r\n" and "1 0\r\n" are errors;
 *   - extension names and token values are tokens, quoted values follow
 *     quoted-string; any control byte in an extension is an error (this
 *     is the smuggling vector http-parser 2.9.4 lets through);
 *   - every line ends in CRLF; a bare LF, a bare CR, or anything but CRLF
 *     after chunk data is an error;
 *   - trailer fields are token ":" value, with no whitespace before the
 *     colon, no obs-fold and no control byte but HTAB in the value.
 * A line (size line or trailer line) is at most CHUNKED_LINE_MAX bytes with
 * its CRLF; the trailer section at most CHUNKED_TRAILERS_MAX bytes.
 */
#include "proxy/http/chunked.h"

#include <string.h>

#define CHUNKED_LINE_MAX 4096u
#define CHUNKED_DIGITS_MAX 16u

/* States of struct chunked. The size-line states come first and the
 * trailer states together, so line accounting is a range test. */
enum chunked_state {
	/* chunk-size [ chunk-ext ] CRLF */
	CHUNKED_SIZE_FIRST = 0,  /* the first hex digit */
	CHUNKED_SIZE,            /* more hex digits, or what ends the size */
	CHUNKED_EXT_BWS,         /* BWS that must lead to ';' */
	CHUNKED_EXT_NAME_FIRST,  /* after ';': BWS, then a name */
	CHUNKED_EXT_NAME,        /* in a name */
	CHUNKED_EXT_NAME_BWS,    /* BWS after a name: '=' or ';' next */
	CHUNKED_EXT_VALUE_FIRST, /* after '=': BWS, then a token or a quote */
	CHUNKED_EXT_TOKEN,       /* in a token value */
	CHUNKED_EXT_QUOTED,      /* inside a quoted-string */
	CHUNKED_EXT_QUOTED_PAIR, /* after a backslash inside it */
	CHUNKED_EXT_QUOTED_END,  /* after the closing quote */
	CHUNKED_SIZE_LF,         /* the LF ending the size line */
	/* chunk-data CRLF */
	CHUNKED_DATA,
	CHUNKED_DATA_CR,
	CHUNKED_DATA_LF,
	/* trailer-section CRLF */
	CHUNKED_TRAILER_FIRST,   /* a field name, or CR ending the body */
	CHUNKED_TRAILER_NAME,
	CHUNKED_TRAILER_VALUE,
	CHUNKED_TRAILER_LF,
	CHUNKED_END_LF,          /* the LF of the final CRLF */
	CHUNKED_FAILED,          /* an earlier call returned -1 */
};

static bool chunked_is_bws(unsigned char ch)
{
	return ch == ' ' || ch == '\t';
}

static bool chunked_is_tchar(unsigned char ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
		return true;
	switch (ch) {
	case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
	case '-': case '.': case '^': case '_': case '`': case '|': case '~':
		return true;
	default:
		return false;
	}
}

/* chunked_is_ctl: a control byte (CTL, including DEL). */
static bool chunked_is_ctl(unsigned char ch)
{
	return ch < 0x20 || ch == 0x7f;
}

/* chunked_is_qdtext: qdtext of RFC 9110 5.6.4 (obs-text included). */
static bool chunked_is_qdtext(unsigned char ch)
{
	return ch == '\t' || ch == ' ' || ch == 0x21 || (ch >= 0x23 && ch <= 0x5b) ||
	       (ch >= 0x5d && ch <= 0x7e) || ch >= 0x80;
}

/* chunked_is_field_byte: a byte allowed in a trailer value (field-vchar,
 * SP, HTAB). */
static bool chunked_is_field_byte(unsigned char ch)
{
	return ch == '\t' || !chunked_is_ctl(ch);
}

/* chunked_hex: the value of hex digit ch, or -1. */
static int chunked_hex(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* chunked_ext_reason: why ch cannot go on a size line here. */
static const char *chunked_ext_reason(unsigned char ch)
{
	if (ch == '\n')
		return "bare LF";
	if (chunked_is_ctl(ch) && ch != '\r') /* CR: a line ending too soon */
		return "control byte in chunk extension";
	return "bad chunk extension";
}

/* chunked_ext_after: the byte after a size, a name or a value, where the
 * extension list may go on (BWS or ';') or the line end (CR). Returns the
 * next state, or CHUNKED_FAILED. */
static unsigned chunked_ext_after(unsigned char ch, unsigned on_bws)
{
	if (ch == ';')
		return CHUNKED_EXT_NAME_FIRST;
	if (ch == '\r')
		return CHUNKED_SIZE_LF;
	if (chunked_is_bws(ch))
		return on_bws;
	return CHUNKED_FAILED;
}

/* chunked_size_line: one byte of a size line in state c->state. Returns
 * NULL, or why the byte is refused. */
static const char *chunked_size_line(struct chunked *c, unsigned char ch)
{
	unsigned next;
	int v;

	switch (c->state) {
	case CHUNKED_SIZE_FIRST:
		v = chunked_hex(ch);
		if (v < 0)
			return ch == '\n' ? "bare LF" : "bad chunk size";
		c->remaining = (uint64_t)v;
		c->digits = v != 0;
		c->state = CHUNKED_SIZE;
		return NULL;
	case CHUNKED_SIZE:
		v = chunked_hex(ch);
		if (v >= 0) {
			if ((c->digits > 0 || v != 0) && ++c->digits > CHUNKED_DIGITS_MAX)
				return "chunk size too large";
			c->remaining = c->remaining << 4 | (uint64_t)v;
			return NULL;
		}
		next = chunked_ext_after(ch, CHUNKED_EXT_BWS);
		if (next == CHUNKED_FAILED)
			return ch == '\n' ? "bare LF" : "bad chunk size";
		c->state = next;
		return NULL;
	case CHUNKED_EXT_BWS:
		if (chunked_is_bws(ch))
			return NULL;
		if (ch == ';') {
			c->state = CHUNKED_EXT_NAME_FIRST;
			return NULL;
		}
		return chunked_ext_reason(ch);
	case CHUNKED_EXT_NAME_FIRST:
		if (chunked_is_bws(ch))
			return NULL;
		if (!chunked_is_tchar(ch))
			return chunked_ext_reason(ch);
		c->state = CHUNKED_EXT_NAME;
		return NULL;
	case CHUNKED_EXT_NAME:
		if (chunked_is_tchar(ch))
			return NULL;
		if (ch == '=') {
			c->state = CHUNKED_EXT_VALUE_FIRST;
			return NULL;
		}
		next = chunked_ext_after(ch, CHUNKED_EXT_NAME_BWS);
		if (next == CHUNKED_FAILED)
			return chunked_ext_reason(ch);
		c->state = next;
		return NULL;
	case CHUNKED_EXT_NAME_BWS:
		if (chunked_is_bws(ch))
			return NULL;
		if (ch == '=')
			c->state = CHUNKED_EXT_VALUE_FIRST;
		else if (ch == ';')
			c->state = CHUNKED_EXT_NAME_FIRST;
		else
			return chunked_ext_reason(ch);
		return NULL;
	case CHUNKED_EXT_VALUE_FIRST:
		if (chunked_is_bws(ch))
			return NULL;
		if (ch == '"')
			c->state = CHUNKED_EXT_QUOTED;
		else if (chunked_is_tchar(ch))
			c->state = CHUNKED_EXT_TOKEN;
		else
			return chunked_ext_reason(ch);
		return NULL;
	case CHUNKED_EXT_TOKEN:
		if (chunked_is_tchar(ch))
			return NULL;
		/* a value ends like a quoted-string does */
		c->state = CHUNKED_EXT_QUOTED_END;
		return chunked_size_line(c, ch);
	case CHUNKED_EXT_QUOTED:
		if (ch == '"')
			c->state = CHUNKED_EXT_QUOTED_END;
		else if (ch == '\\')
			c->state = CHUNKED_EXT_QUOTED_PAIR;
		else if (!chunked_is_qdtext(ch))
			return chunked_ext_reason(ch);
		return NULL;
	case CHUNKED_EXT_QUOTED_PAIR:
		/* HTAB / SP / VCHAR / obs-text: anything but other controls */
		if (chunked_is_ctl(ch) && ch != '\t')
			return chunked_ext_reason(ch);
		c->state = CHUNKED_EXT_QUOTED;
		return NULL;
	case CHUNKED_EXT_QUOTED_END:
		next = chunked_ext_after(ch, CHUNKED_EXT_BWS);
		if (next == CHUNKED_FAILED)
			return chunked_ext_reason(ch);
		c->state = next;
		return NULL;
	case CHUNKED_SIZE_LF:
		if (ch != '\n')
			return "bare CR";
		if (c->remaining > 0) {
			c->state = CHUNKED_DATA;
		} else {
			c->state = CHUNKED_TRAILER_FIRST;
			c->line_len = 0;
			c->trailer_len = 0;
		}
		return NULL;
	default:
		return "chunked decoder state"; /* not reached */
	}
}

/* chunked_trailer: one byte of the trailer section (state c->state).
 * Returns NULL, or why the byte is refused. Sets c->done at the end. */
static const char *chunked_trailer(struct chunked *c, unsigned char ch)
{
	switch (c->state) {
	case CHUNKED_TRAILER_FIRST:
		if (ch == '\r')
			c->state = CHUNKED_END_LF;
		else if (chunked_is_tchar(ch))
			c->state = CHUNKED_TRAILER_NAME;
		else if (ch == '\n')
			return "bare LF";
		else if (chunked_is_bws(ch))
			return "obs-fold in trailer";
		else
			return "bad trailer field";
		return NULL;
	case CHUNKED_TRAILER_NAME:
		if (ch == ':')
			c->state = CHUNKED_TRAILER_VALUE;
		else if (ch == '\n')
			return "bare LF";
		else if (!chunked_is_tchar(ch))
			return "bad trailer field";
		return NULL;
	case CHUNKED_TRAILER_VALUE:
		if (ch == '\r')
			c->state = CHUNKED_TRAILER_LF;
		else if (ch == '\n')
			return "bare LF";
		else if (!chunked_is_field_byte(ch))
			return "control byte in trailer";
		return NULL;
	case CHUNKED_TRAILER_LF:
		if (ch != '\n')
			return "bare CR";
		c->state = CHUNKED_TRAILER_FIRST;
		c->line_len = 0;
		return NULL;
	case CHUNKED_END_LF:
		if (ch != '\n')
			return "bare CR";
		c->done = true;
		return NULL;
	default:
		return "chunked decoder state"; /* not reached */
	}
}

void chunked_init(struct chunked *c)
{
	*c = (struct chunked){ .state = CHUNKED_SIZE_FIRST };
}

ptrdiff_t chunked_decode(struct chunked *c, const char *in, size_t len, chunked_data_cb data,
			 void *arg, const char **why)
{
	const char *err = NULL;
	size_t i = 0;

	if (c->done)
		return 0;
	if (c->state == CHUNKED_FAILED) {
		err = "chunked body already failed";
		goto fail;
	}
	if (len > (size_t)PTRDIFF_MAX)
		len = (size_t)PTRDIFF_MAX;

	while (i < len) {
		unsigned char ch;

		if (c->state == CHUNKED_DATA) {
			size_t n = len - i;
			if (n > c->remaining)
				n = (size_t)c->remaining;
			if (data)
				data(arg, in + i, n);
			i += n;
			c->remaining -= n;
			if (c->remaining == 0)
				c->state = CHUNKED_DATA_CR;
			continue;
		}

		ch = (unsigned char)in[i++];
		if (c->state <= CHUNKED_SIZE_LF) {
			if (++c->line_len > CHUNKED_LINE_MAX) {
				err = "chunk size line too long";
				goto fail;
			}
			err = chunked_size_line(c, ch);
		} else if (c->state == CHUNKED_DATA_CR) {
			if (ch != '\r')
				err = "missing CRLF after chunk data";
			c->state = CHUNKED_DATA_LF;
		} else if (c->state == CHUNKED_DATA_LF) {
			if (ch != '\n')
				err = "missing CRLF after chunk data";
			c->state = CHUNKED_SIZE_FIRST;
			c->line_len = 0;
		} else if (c->state <= CHUNKED_END_LF) {
			if (++c->line_len > CHUNKED_LINE_MAX) {
				err = "trailer line too long";
				goto fail;
			}
			if (++c->trailer_len > CHUNKED_TRAILERS_MAX) {
				err = "trailer too large";
				goto fail;
			}
			err = chunked_trailer(c, ch);
			if (c->trailers && !err)
				c->trailers[c->trailers_len++] = (char)ch; /* < CHUNKED_TRAILERS_MAX */
			if (c->done)
				return (ptrdiff_t)i;
		} else {
			err = "chunked decoder state"; /* not reached */
		}
		if (err)
			goto fail;
	}
	return (ptrdiff_t)i;

fail:
	c->state = CHUNKED_FAILED;
	if (why)
		*why = err;
	return -1;
}

size_t chunked_trailer_fields(const char *buf, size_t len, struct h1_header *out, size_t cap)
{
	size_t n = 0, i = 0;
	while (i < len && n < cap) {
		const char *eol = memchr(buf + i, '\r', len - i);
		if (!eol || eol == buf + i)
			break; /* the final CRLF */
		const char *line = buf + i, *colon = memchr(line, ':', (size_t)(eol - line));
		i = (size_t)(eol - buf) + 2;
		if (!colon)
			continue;
		const char *v = colon + 1, *ve = eol;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		out[n++] = (struct h1_header){.name = line, .name_len = (size_t)(colon - line),
					      .value = v, .value_len = (size_t)(ve - v)};
	}
	return n;
}
