/*
 * hostname.h - host names as they arrive from Host headers, :authority and
 * SNI: validation and normalisation (lowercase, no port, no trailing dot).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* host_normalise: copy the host part of `in` (a Host header value: name,
 * IPv4, or [IPv6], optionally ":port" of 1..65535) lowercased, without port
 * and one trailing dot, into out (NUL-terminated). Names are labels of
 * [a-z0-9_-] (underscores for docker container names), 1..63 bytes, not
 * starting with '-', 253 bytes at most; a name ending in a numeric label must
 * be a canonical dotted-quad IPv4. IPv6 comes out without brackets in
 * canonical RFC 5952 form ("[2001:DB8:0::1]" -> "2001:db8::1"); zone ids are
 * refused. Returns the length, or -1 if `in` is not a valid host or does not
 * fit in outcap (out is then unspecified). */
int host_normalise(const char *in, size_t len, char *out, size_t outcap);

/* host_is_valid_name: whether s is a DNS name usable in Host(`...`) (labels
 * of [a-z0-9-], 1..63 chars, no '-' at either end, total <= 253, lowercase
 * expected, no trailing dot; no underscores) or a dotted-quad IPv4; a leading
 * "*." label is allowed when allow_wildcard (not before an IPv4). */
bool host_is_valid_name(const char *s, size_t len, bool allow_wildcard);
