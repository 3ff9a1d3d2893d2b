/*
 * client_key.c - client addresses from sockets and from forwarding headers,
 * and their keyed hash.
 *
 * The text forms are split by hand (brackets, one colon for IPv4 with a
 * port, several for bare IPv6) and the address itself is left to inet_pton,
 * whose IPv4 form is the strict dotted quad (no "1.2.3", no leading zeros,
 * no octal) and whose IPv6 form takes no zone ids.
 */
#include "proxy/limit/client_key.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* client_key_v4: k as the IPv4 address at a. */
static void client_key_v4(struct client_key *k, const uint8_t a[4])
{
	memset(k, 0, sizeof *k);
	k->family = 4;
	k->prefix = 32;
	memcpy(k->addr, a, 4);
}

/* client_key_v6: k as the IPv6 address at a cut to prefix bits, or the
 * IPv4 address when a is v4-mapped. */
static void client_key_v6(struct client_key *k, const uint8_t a[16], uint8_t prefix)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (memcmp(a, mapped, sizeof mapped) == 0) {
		client_key_v4(k, a + 12);
		return;
	}
	memset(k, 0, sizeof *k);
	k->family = 6;
	k->prefix = prefix;
	memcpy(k->addr, a, prefix / 8);
	if (prefix % 8)
		k->addr[prefix / 8] = (uint8_t)(a[prefix / 8] & (0xff00 >> (prefix % 8)));
}

static bool client_key_prefix_ok(uint8_t prefix)
{
	return prefix >= 1 && prefix <= 128;
}

int client_key_from_sockaddr(struct client_key *k, const struct sockaddr *sa, uint8_t ipv6_prefix)
{
	memset(k, 0, sizeof *k);
	if (!sa || !client_key_prefix_ok(ipv6_prefix))
		return -1;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		client_key_v4(k, (const uint8_t *)&in->sin_addr);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		client_key_v6(k, in6->sin6_addr.s6_addr, ipv6_prefix);
		return 0;
	}
	return -1;
}

/* client_key_port_ok: s (NUL-terminated) is a decimal port, 0..65535. */
static bool client_key_port_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 5 || strspn(s, "0123456789") != n)
		return false;
	unsigned long v = 0;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (unsigned long)(s[i] - '0');
	return v <= 65535;
}

/* client_key_text6: s (NUL-terminated) as a bare IPv6 address. */
static int client_key_text6(struct client_key *k, const char *s, uint8_t prefix)
{
	uint8_t a[16];
	if (inet_pton(AF_INET6, s, a) != 1)
		return -1;
	client_key_v6(k, a, prefix);
	return 0;
}

/* client_key_bracketed: buf is "[v6]" or "[v6]:port"; cut in place. */
static int client_key_bracketed(struct client_key *k, char *buf, uint8_t prefix)
{
	char *end = strchr(buf, ']');
	if (!end || (end[1] != '\0' && (end[1] != ':' || !client_key_port_ok(end + 2))))
		return -1;
	*end = '\0';
	return client_key_text6(k, buf + 1, prefix);
}

/* client_key_text4: buf is "a.b.c.d" or "a.b.c.d:port"; cut in place. */
static int client_key_text4(struct client_key *k, char *buf)
{
	uint8_t a[4];
	char *colon = strchr(buf, ':');
	if (colon) {
		if (!client_key_port_ok(colon + 1))
			return -1;
		*colon = '\0';
	}
	if (inet_pton(AF_INET, buf, a) != 1)
		return -1;
	client_key_v4(k, a);
	return 0;
}

int client_key_parse(struct client_key *k, const char *s, size_t len, uint8_t ipv6_prefix)
{
	char buf[CLIENT_KEY_TEXT_MAX + 1];
	memset(k, 0, sizeof *k);
	if (!s || len == 0 || len > CLIENT_KEY_TEXT_MAX || memchr(s, '\0', len) ||
	    !client_key_prefix_ok(ipv6_prefix))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	int rc;
	if (buf[0] == '[')
		rc = client_key_bracketed(k, buf, ipv6_prefix);
	else if (strchr(buf, ':') != strrchr(buf, ':'))
		rc = client_key_text6(k, buf, ipv6_prefix); /* two colons or more: bare IPv6 */
	else
		rc = client_key_text4(k, buf);
	if (rc < 0)
		memset(k, 0, sizeof *k);
	return rc;
}

/* ---- SipHash-1-3 (Aumasson, Bernstein), over the key's 18 bytes ---- */

#define SIP_ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

static void sip_round(uint64_t v[4])
{
	v[0] += v[1]; v[1] = SIP_ROTL(v[1], 13); v[1] ^= v[0]; v[0] = SIP_ROTL(v[0], 32);
	v[2] += v[3]; v[3] = SIP_ROTL(v[3], 16); v[3] ^= v[2];
	v[0] += v[3]; v[3] = SIP_ROTL(v[3], 21); v[3] ^= v[0];
	v[2] += v[1]; v[1] = SIP_ROTL(v[1], 17); v[1] ^= v[2]; v[2] = SIP_ROTL(v[2], 32);
}

static uint64_t sip_le64(const uint8_t *p)
{
	uint64_t x = 0;
	for (int i = 7; i >= 0; i--)
		x = x << 8 | p[i];
	return x;
}

/* sip13: SipHash-1-3 of len bytes at m (len < 256) under the key k0, k1. */
static uint64_t sip13(uint64_t k0, uint64_t k1, const uint8_t *m, size_t len)
{
	uint64_t v[4] = {k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL,
			 k0 ^ 0x6c7967656e657261ULL, k1 ^ 0x7465646279746573ULL};
	size_t whole = len - len % 8;
	for (size_t i = 0; i < whole; i += 8) {
		uint64_t w = sip_le64(m + i);
		v[3] ^= w;
		sip_round(v);
		v[0] ^= w;
	}
	uint8_t tail[8] = {0};
	memcpy(tail, m + whole, len % 8);
	uint64_t w = sip_le64(tail) | (uint64_t)len << 56;
	v[3] ^= w;
	sip_round(v);
	v[0] ^= w;
	v[2] ^= 0xff;
	sip_round(v);
	sip_round(v);
	sip_round(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

uint64_t client_key_hash(const struct client_key *k, uint64_t seed)
{
	uint8_t m[2 + sizeof k->addr];
	m[0] = k->family;
	m[1] = k->prefix;
	memcpy(m + 2, k->addr, sizeof k->addr);
	/* the second half of SipHash's key derived from the first: 64 secret
	 * bits are plenty for a table that lives as long as a config */
	return sip13(seed, seed * 0x9e3779b97f4a7c15ULL ^ 0xd1b54a32d192ed03ULL, m, sizeof m);
}

bool client_key_equal(const struct client_key *a, const struct client_key *b)
{
	return a->family == b->family && a->prefix == b->prefix &&
	       memcmp(a->addr, b->addr, sizeof a->addr) == 0;
}
