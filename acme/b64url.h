/*
 * b64url.h - base64url without padding (RFC 4648 section 5, as JOSE and
 * ACME use it): encoding, and a strict decoder that accepts only the one
 * canonical spelling of each byte string.
 */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* b64url_encoded_len: characters needed for len bytes, without the NUL. */
size_t b64url_encoded_len(size_t len);

/* b64url_encode: the encoding of in[0..len) and a NUL into out. Returns the
 * number of characters written (without the NUL), or -1 when cap is smaller
 * than b64url_encoded_len(len) + 1; out is then untouched. */
ssize_t b64url_encode(const void *in, size_t len, char *out, size_t cap);

/* b64url_encode_alloc: the same into a new NUL-terminated string the caller
 * frees. NULL when out of memory. */
char *b64url_encode_alloc(const void *in, size_t len);

/* b64url_is_alphabet: whether s[0..len) uses only A-Z a-z 0-9 - _ (for
 * values such as ACME tokens that are base64url text but need not decode
 * to whole bytes). */
int b64url_is_alphabet(const char *s, size_t len);

/* b64url_decoded_len: bytes that a valid encoding of len characters decodes
 * to, or -1 when no valid encoding has that length (len % 4 == 1). */
ssize_t b64url_decoded_len(size_t len);

/* b64url_decode: decode in[0..len) into out. Strict: only A-Z a-z 0-9 - _,
 * no padding, no whitespace, no impossible length, and the unused low bits
 * of the last character must be zero. Returns the number of bytes, or -1
 * when the input is invalid or cap too small; out is then untouched. */
ssize_t b64url_decode(const char *in, size_t len, void *out, size_t cap);

/* b64url_decode_alloc: the same into a new buffer (with one spare NUL byte
 * after the data, so text can be used as a string) and its length in *outlen.
 * NULL when invalid or out of memory; *outlen is then untouched. The caller
 * wipes the buffer first if it holds a secret. */
unsigned char *b64url_decode_alloc(const char *in, size_t len, size_t *outlen);
