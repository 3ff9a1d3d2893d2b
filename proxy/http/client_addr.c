/*
 * client_addr.c - walking X-Forwarded-For (or Forwarded "for=") from the
 * nearest hop outwards, past trusted proxies, to the client.
 */
#include "proxy/http/client_addr.h"

#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#include "proxy/edge.h"

/* Hops looked at; a longer chain is cut (its far end is unverifiable anyway). */
#define CLIENT_ADDR_HOPS 32

struct hop {
	const char *s;
	size_t len;
};

static void client_addr_trim(const char **s, size_t *len)
{
	while (*len && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*len)--;
	}
	while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
		(*len)--;
}

/* client_addr_split: the comma-separated items of v, appended to hops
 * (oldest hop first); when forwarded, the value of each element's "for"
 * parameter, unquoted. Items past the bound push the oldest out. */
static void client_addr_split(const char *v, size_t len, bool forwarded, struct hop *hops,
			      size_t *n)
{
	while (len) {
		const char *comma = memchr(v, ',', len);
		size_t item = comma ? (size_t)(comma - v) : len;
		const char *s = v;
		size_t sl = item;
		if (forwarded) {
			/* element: pair *( ";" pair ); find for= case-insensitively */
			const char *found = NULL;
			size_t flen = 0;
			while (sl) {
				const char *semi = memchr(s, ';', sl);
				size_t pl = semi ? (size_t)(semi - s) : sl;
				const char *pp = s;
				size_t pn = pl;
				client_addr_trim(&pp, &pn);
				if (pn > 4 && strncasecmp(pp, "for=", 4) == 0) {
					found = pp + 4;
					flen = pn - 4;
				}
				s += pl + (semi ? 1 : 0);
				sl -= pl + (semi ? 1 : 0);
			}
			s = found;
			sl = flen;
			if (s && sl >= 2 && s[0] == '"' && s[sl - 1] == '"') {
				s++;
				sl -= 2;
			}
		}
		if (forwarded && !s) {
			/* An element without for=: an unknown hop, where the walk stops. */
			s = v;
			sl = 0;
		}
		if (s) {
			client_addr_trim(&s, &sl);
			if (*n == CLIENT_ADDR_HOPS) {
				memmove(hops, hops + 1, (CLIENT_ADDR_HOPS - 1) * sizeof *hops);
				(*n)--;
			}
			hops[(*n)++] = (struct hop){s, sl};
		}
		if (!comma)
			break;
		len -= item + 1;
		v = comma + 1;
	}
}

/* client_addr_sockaddr: the full address of k as a socket address. */
static void client_addr_sockaddr(const struct client_key *k, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	if (k->family == 4) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;
		in->sin_family = AF_INET;
		memcpy(&in->sin_addr, k->addr, 4);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
		in6->sin6_family = AF_INET6;
		memcpy(&in6->sin6_addr, k->addr, 16);
	}
}

int client_addr_key(const struct req *r, const struct edge *e, uint8_t prefix,
		    struct client_key *k)
{
	if (client_key_from_sockaddr(k, (const struct sockaddr *)&r->client, prefix) < 0)
		return -1;
	if (!r->client_trusted)
		return 0;
	struct hop hops[CLIENT_ADDR_HOPS];
	size_t n = 0;
	const char *v;
	size_t len;
	bool forwarded = false;
	for (size_t i = 0; req_header(r, "x-forwarded-for", i, &v, &len); i++)
		client_addr_split(v, len, false, hops, &n);
	if (n == 0) {
		forwarded = true;
		for (size_t i = 0; req_header(r, "forwarded", i, &v, &len); i++)
			client_addr_split(v, len, forwarded, hops, &n);
	}
	/* From the nearest hop out: each trusted proxy vouches for the next. */
	while (n > 0) {
		struct client_key full;
		struct sockaddr_storage ss;
		const struct hop *h = &hops[--n];
		if (client_key_parse(&full, h->s, h->len, 128) < 0)
			return 0; /* unknown or obfuscated: the last trusted hop is all we know */
		client_addr_sockaddr(&full, &ss);
		client_key_from_sockaddr(k, (const struct sockaddr *)&ss, prefix);
		if (!edge_is_trusted_proxy(e, (const struct sockaddr *)&ss))
			return 0;
	}
	return 0;
}
