/*
 * values.c - the value syntaxes shared by portier.json and tenants.json:
 * durations, sizes (powers of 1024), "HOST:PORT" / "[V6]:PORT" addresses
 * and CIDRs. Each parser takes a C string and returns 0 or -1; the JSON
 * walkers name the field in their error messages.
 */
#include "config/values.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VALUES_DURATION_MAX_MS ((uint64_t)INT64_MAX)

/* values_parse_digits: a non-empty run of decimal digits without overflow;
 * *end points past it. */
static int values_parse_digits(const char *s, const char **end, uint64_t *out)
{
	uint64_t v = 0;
	const char *q = s;

	for (; *q >= '0' && *q <= '9'; q++) {
		uint64_t d = (uint64_t)(*q - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (q == s)
		return -1;
	*end = q;
	*out = v;
	return 0;
}

int cfg_parse_duration(const char *s, uint64_t *ms)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {
		{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
	};
	const char *end;
	uint64_t n;

	if (!s || values_parse_digits(s, &end, &n) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].unit) != 0)
			continue;
		/* Results are used as signed milliseconds elsewhere. */
		if (n > VALUES_DURATION_MAX_MS / units[i].ms)
			return -1;
		*ms = n * units[i].ms;
		return 0;
	}
	return -1;
}

int cfg_parse_size(const char *s, uint64_t *bytes)
{
	const char *end;
	uint64_t n, mult = 1;

	if (!s || values_parse_digits(s, &end, &n) < 0)
		return -1;
	switch (*end) {
	case '\0':
		break;
	case 'k': case 'K':
		mult = 1024;
		break;
	case 'm': case 'M':
		mult = 1024 * 1024;
		break;
	case 'g': case 'G':
		mult = 1024 * 1024 * 1024;
		break;
	default:
		return -1;
	}
	if (*end && end[1] != '\0')
		return -1;
	if (n > (uint64_t)INT64_MAX / mult)
		return -1;
	*bytes = n * mult;
	return 0;
}

/* values_host_valid: an IPv4 literal or a name of labels [A-Za-z0-9_-]
 * (container names may hold underscores and capitals); no trailing dot. */
static bool values_host_valid(const char *h, size_t len)
{
	bool numeric = true;
	size_t label = 0;

	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)h[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!isalnum(c) && c != '-' && c != '_')
			return false;
		if (!isdigit(c))
			numeric = false;
		if (++label > 63)
			return false;
	}
	if (label == 0)
		return false;
	if (numeric) {
		/* All digits and dots: it must be a real IPv4 address, not a
		 * name that getaddrinfo would read some other way. */
		struct in_addr a4;
		char tmp[16];
		if (len >= sizeof(tmp))
			return false;
		memcpy(tmp, h, len);
		tmp[len] = '\0';
		return inet_pton(AF_INET, tmp, &a4) == 1;
	}
	return true;
}

static int values_parse_port(const char *s, uint16_t *port)
{
	const char *end;
	uint64_t v;

	if (strlen(s) > 5 || values_parse_digits(s, &end, &v) < 0 || *end || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

int cfg_parse_addr(const char *s, struct cfg_addr *out)
{
	const char *host, *colon;
	size_t hlen;
	uint16_t port;

	if (!s || !out)
		return -1;
	if (s[0] == '[') {
		struct in6_addr a6;
		char tmp[INET6_ADDRSTRLEN];
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return -1;
		host = s + 1;
		hlen = (size_t)(close - host);
		if (hlen == 0 || hlen >= sizeof(tmp))
			return -1;
		memcpy(tmp, host, hlen);
		tmp[hlen] = '\0';
		if (inet_pton(AF_INET6, tmp, &a6) != 1)
			return -1;
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		/* A second colon means an unbracketed IPv6 literal: ambiguous. */
		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			return -1;
		host = s;
		hlen = (size_t)(colon - s);
		if (!values_host_valid(host, hlen))
			return -1;
	}
	if (values_parse_port(colon + 1, &port) < 0)
		return -1;
	if (!(out->host = strndup(host, hlen)))
		return -1;
	out->port = port;
	/* Made once here: the data plane needs it for every request. */
	char buf[INET6_ADDRSTRLEN + 256];
	out->text = NULL;
	if (!(out->text = strdup(cfg_addr_text(out, buf, sizeof buf)))) {
		cfg_addr_clear(out);
		return -1;
	}
	return 0;
}

const char *cfg_addr_text(const struct cfg_addr *a, char *buf, size_t len)
{
	if (a->text)
		return a->text;
	const char *host = a->host ? a->host : "?";
	snprintf(buf, len, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, (unsigned)a->port);
	return buf;
}

void cfg_addr_clear(struct cfg_addr *a)
{
	if (!a)
		return;
	free(a->host);
	free(a->text);
	a->host = NULL;
	a->text = NULL;
	a->port = 0;
}

/* cfg_parse_cidr: "10.0.0.0/8", "fd00::/8" or a bare address (a /32 or
 * /128). Host bits are cleared so matching can compare whole bytes. */
int cfg_parse_cidr(const char *s, struct cfg_cidr *out)
{
	char tmp[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	uint64_t prefix;
	unsigned max;

	memset(out, 0, sizeof(*out));
	if (alen == 0 || alen >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, alen);
	tmp[alen] = '\0';
	if (inet_pton(AF_INET, tmp, out->addr) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, tmp, out->addr) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else {
		return -1;
	}
	prefix = max;
	if (slash) {
		const char *end;
		if (strlen(slash + 1) > 3 || values_parse_digits(slash + 1, &end, &prefix) < 0 ||
		    *end || prefix > max)
			return -1;
	}
	out->prefix = (uint8_t)prefix;
	for (unsigned bit = (unsigned)prefix; bit < 128; bit++)
		out->addr[bit / 8] &= (uint8_t)~(0x80u >> (bit % 8));
	return 0;
}
