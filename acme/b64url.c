/*
 * b64url.c - base64url without padding. Table driven; the decoder checks the
 * whole input before it writes a byte, so a failed decode leaves no partial
 * output behind.
 */
#include "acme/b64url.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char b64url_alphabet[64] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* b64url_value: the 6-bit value of c, or -1 when c is not in the alphabet. */
static int b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

size_t b64url_encoded_len(size_t len)
{
	return len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
}

ssize_t b64url_encode(const void *in, size_t len, char *out, size_t cap)
{
	const unsigned char *p = in;
	if (len > (SIZE_MAX - 4) / 4 * 3)
		return -1;
	size_t need = b64url_encoded_len(len);
	if (cap < need + 1 || need > (size_t)SSIZE_MAX)
		return -1;
	size_t o = 0, i = 0;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = b64url_alphabet[v >> 18];
		out[o++] = b64url_alphabet[(v >> 12) & 63];
		out[o++] = b64url_alphabet[(v >> 6) & 63];
		out[o++] = b64url_alphabet[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		out[o++] = b64url_alphabet[v >> 18];
		out[o++] = b64url_alphabet[(v >> 12) & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		out[o++] = b64url_alphabet[v >> 18];
		out[o++] = b64url_alphabet[(v >> 12) & 63];
		out[o++] = b64url_alphabet[(v >> 6) & 63];
	}
	out[o] = '\0';
	return (ssize_t)o;
}

char *b64url_encode_alloc(const void *in, size_t len)
{
	if (len > (SIZE_MAX - 4) / 4 * 3)
		return NULL;
	size_t cap = b64url_encoded_len(len) + 1;
	char *out = malloc(cap);
	if (out && b64url_encode(in, len, out, cap) < 0) {
		free(out);
		out = NULL;
	}
	return out;
}

ssize_t b64url_decoded_len(size_t len)
{
	if (len % 4 == 1 || len / 4 * 3 > (size_t)SSIZE_MAX - 2)
		return -1;
	return (ssize_t)(len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0));
}

int b64url_is_alphabet(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (b64url_value((unsigned char)s[i]) < 0)
			return 0;
	return 1;
}

/* b64url_valid: every character in the alphabet and, in a final group of 2
 * or 3 characters, the bits beyond the last whole byte zero. */
static int b64url_valid(const char *in, size_t len)
{
	if (!b64url_is_alphabet(in, len))
		return 0;
	int last = len ? b64url_value((unsigned char)in[len - 1]) : 0;
	if (len % 4 == 2)
		return (last & 0x0f) == 0;
	if (len % 4 == 3)
		return (last & 0x03) == 0;
	return 1;
}

ssize_t b64url_decode(const char *in, size_t len, void *out, size_t cap)
{
	ssize_t need = b64url_decoded_len(len);
	if (need < 0 || (size_t)need > cap || !b64url_valid(in, len))
		return -1;
	unsigned char *q = out;
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		acc = (acc << 6 | (uint32_t)b64url_value((unsigned char)in[i])) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			q[o++] = (unsigned char)(acc >> bits);
		}
	}
	return (ssize_t)o;
}

unsigned char *b64url_decode_alloc(const char *in, size_t len, size_t *outlen)
{
	ssize_t need = b64url_decoded_len(len);
	if (need < 0)
		return NULL;
	unsigned char *out = malloc((size_t)need + 1);
	if (!out)
		return NULL;
	ssize_t n = b64url_decode(in, len, out, (size_t)need);
	if (n < 0) {
		free(out);
		return NULL;
	}
	out[n] = '\0';
	*outlen = (size_t)n;
	return out;
}
