/*
 * hostname.c - host names as they arrive from Host headers, :authority and
 * SNI, and as operators write them in Host(`...`) rules.
 *
 * Two strictness levels on purpose:
 *  - host_normalise takes what clients send. Names are labels of
 *    [a-z0-9_-] (docker container and compose service names carry
 *    underscores, and clients reach them by those names), not starting with
 *    '-', IPv4 dotted quads, or bracketed IPv6 literals, each with an
 *    optional ":port".
 *  - host_is_valid_name checks what a tenant may claim: LDH labels only
 *    ([a-z0-9-], no '-' at either end), as a certificate could be issued for.
 *
 * Both treat a name whose last label is numeric (digits or 0x-hex) as an IPv4
 * literal and require a canonical dotted quad: "1.2.3", "01.2.3.4" or
 * "example.123" are refused rather than guessed at (WHATWG's "ends in a
 * number" rule), so two spellings never reach one backend.
 */
#include "config/hostname.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#define HOST_NAME_MAX_LEN 253
#define HOST_LABEL_MAX_LEN 63
#define HOST_PORT_MAX_DIGITS 5

enum host_charset { HOST_CHARS_HEADER, HOST_CHARS_RULE };

static char host_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool host_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool host_is_hex(char c)
{
	return host_is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* host_label_char: whether lowercase c may appear in a label. */
static bool host_label_char(char c, enum host_charset cs)
{
	if ((c >= 'a' && c <= 'z') || host_is_digit(c) || c == '-')
		return true;
	return cs == HOST_CHARS_HEADER && c == '_';
}

/* host_label_numeric: whether a label reads as a number (decimal or 0x-hex),
 * which makes the whole name an IPv4 literal. */
static bool host_label_numeric(const char *l, size_t len)
{
	size_t i = 0;

	if (len >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X')) {
		for (i = 2; i < len; i++)
			if (!host_is_hex(l[i]))
				return false;
		return true;
	}
	for (i = 0; i < len; i++)
		if (!host_is_digit(l[i]))
			return false;
	return len > 0;
}

/* host_is_ipv4: whether s[0..len) is a canonical dotted quad. */
static bool host_is_ipv4(const char *s, size_t len)
{
	char buf[INET_ADDRSTRLEN];
	struct in_addr a;

	if (len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	/* glibc's inet_pton refuses leading zeros and short forms. */
	return inet_pton(AF_INET, buf, &a) == 1;
}

/* host_check_labels: whether lowercase s[0..len) is a dot-separated list of
 * valid labels for charset cs, numeric last label meaning IPv4. */
static bool host_check_labels(const char *s, size_t len, enum host_charset cs)
{
	size_t start = 0, i;

	if (len == 0 || len > HOST_NAME_MAX_LEN)
		return false;
	for (i = 0; i <= len; i++) {
		if (i < len && s[i] != '.') {
			if (!host_label_char(s[i], cs))
				return false;
			continue;
		}
		size_t l = i - start;
		if (l == 0 || l > HOST_LABEL_MAX_LEN || s[start] == '-')
			return false;
		if (cs == HOST_CHARS_RULE && s[i - 1] == '-')
			return false;
		if (i == len && host_label_numeric(s + start, l))
			return host_is_ipv4(s, len);
		start = i + 1;
	}
	return true;
}

/* host_port_valid: whether p[0..len) is a decimal port in 1..65535. */
static bool host_port_valid(const char *p, size_t len)
{
	uint32_t v = 0;

	if (len == 0 || len > HOST_PORT_MAX_DIGITS)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!host_is_digit(p[i]))
			return false;
		v = v * 10 + (uint32_t)(p[i] - '0');
	}
	return v >= 1 && v <= 65535;
}

/* host_normalise_v6: "[addr]" or "[addr]:port" to the canonical RFC 5952
 * text of addr, without brackets. Zone ids are refused: they mean nothing
 * to a peer. */
static int host_normalise_v6(const char *in, size_t len, char *out, size_t outcap)
{
	char buf[INET6_ADDRSTRLEN], text[INET6_ADDRSTRLEN];
	struct in6_addr a;
	const char *close = memchr(in, ']', len);
	size_t alen, tlen;

	if (!close)
		return -1;
	alen = (size_t)(close - in) - 1;
	if (alen == 0 || alen >= sizeof(buf))
		return -1;
	for (size_t i = 0; i < alen; i++) {
		char c = in[1 + i];
		if (!host_is_hex(c) && c != ':' && c != '.')
			return -1;
	}
	size_t rest = len - (size_t)(close - in) - 1;
	if (rest > 0 && (close[1] != ':' || !host_port_valid(close + 2, rest - 1)))
		return -1;
	memcpy(buf, in + 1, alen);
	buf[alen] = '\0';
	if (inet_pton(AF_INET6, buf, &a) != 1 || !inet_ntop(AF_INET6, &a, text, sizeof(text)))
		return -1;
	tlen = strlen(text);
	if (tlen + 1 > outcap)
		return -1;
	memcpy(out, text, tlen + 1);
	return (int)tlen;
}

int host_normalise(const char *in, size_t len, char *out, size_t outcap)
{
	const char *colon;
	size_t nlen;

	if (!in || !out || len == 0 || outcap == 0)
		return -1;
	if (in[0] == '[')
		return host_normalise_v6(in, len, out, outcap);

	/* A name holds no ':', so the first one starts the port; a bare IPv6
	 * literal ends up with an empty or invalid port and is refused. */
	colon = memchr(in, ':', len);
	nlen = colon ? (size_t)(colon - in) : len;
	if (colon && !host_port_valid(colon + 1, len - nlen - 1))
		return -1;
	if (nlen > 0 && in[nlen - 1] == '.')
		nlen--;
	if (nlen == 0 || nlen > HOST_NAME_MAX_LEN || nlen + 1 > outcap)
		return -1;
	for (size_t i = 0; i < nlen; i++)
		out[i] = host_lower(in[i]);
	out[nlen] = '\0';
	if (!host_check_labels(out, nlen, HOST_CHARS_HEADER)) {
		out[0] = '\0';
		return -1;
	}
	return (int)nlen;
}

bool host_is_valid_name(const char *s, size_t len, bool allow_wildcard)
{
	if (!s || len == 0 || len > HOST_NAME_MAX_LEN)
		return false;
	if (allow_wildcard && len > 2 && s[0] == '*' && s[1] == '.') {
		/* "*.1.2.3" would be a wildcard over an address: meaningless. */
		const char *last = s + len;
		while (last > s && last[-1] != '.')
			last--;
		if (host_label_numeric(last, (size_t)(s + len - last)))
			return false;
		s += 2;
		len -= 2;
	}
	return host_check_labels(s, len, HOST_CHARS_RULE);
}
