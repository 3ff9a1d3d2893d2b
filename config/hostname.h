/*
 * hostname.h - host names as they arrive from Host headers, :authority and
 * SNI: validation and normalisation (lowercase, no port, no trailing dot).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* host_normalise: copy the host part of `in` (a Host header value: name,
 * IPv4, or [IPv6], optionally ":port") lowercased, without port and trailing
 * dot, into out (NUL-terminated). Returns the length, or -1 if `in` is not a
 * valid host or does not fit in outcap. */
int host_normalise(const char *in, size_t len, char *out, size_t outcap);

/* host_is_valid_name: whether s is a DNS name usable in Host(`...`) (labels
 * of [a-z0-9-], 1..63 chars, total <= 253, lowercase expected); a leading
 * "*." label is allowed when allow_wildcard. */
bool host_is_valid_name(const char *s, size_t len, bool allow_wildcard);
