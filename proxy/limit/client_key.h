/*
 * client_key.h - what a client is, for per-client rate limits: an IPv4
 * address, or an IPv6 address cut to a prefix (one host usually holds a whole
 * /64, so counting single v6 addresses would let it multiply its quota).
 * IPv4-mapped IPv6 addresses (a dual-stack socket's view of a v4 peer) are
 * the same key as the IPv4 address.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The longest text client_key_parse looks at: "[" v6 "]:" port, v6 with an
 * embedded dotted quad. */
#define CLIENT_KEY_TEXT_MAX 53

struct client_key {
	uint8_t family; /* 4 or 6 */
	uint8_t prefix; /* 32 for IPv4; the bits of addr kept for IPv6 */
	uint8_t addr[16]; /* IPv4 in the first 4 bytes; bits past prefix are 0 */
};

/* client_key_from_sockaddr: IPv4 (and v4-mapped IPv6) as the /32 address,
 * IPv6 masked to ipv6_prefix bits (1..128). -1 for other families, a NULL
 * sa or a prefix out of range; *k is then zeroed. */
int client_key_from_sockaddr(struct client_key *k, const struct sockaddr *sa, uint8_t ipv6_prefix);

/* client_key_parse: the len bytes at s (not NUL-terminated) as an address
 * carried by X-Forwarded-For or Forwarded "for=": "1.2.3.4", "1.2.3.4:5678",
 * "2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:443", masked as above.
 * Strict: no surrounding spaces or quotes (the caller trims and unquotes),
 * ports decimal 0..65535, at most CLIENT_KEY_TEXT_MAX bytes. -1 for anything
 * else, obfuscated identifiers ("_hidden", "unknown") and obfuscated ports
 * included: the caller then falls back to the peer address. */
int client_key_parse(struct client_key *k, const char *s, size_t len, uint8_t ipv6_prefix);

/* client_key_hash: SipHash-1-3 of the key under seed (per table, secret, so
 * that nobody can choose colliding addresses). */
uint64_t client_key_hash(const struct client_key *k, uint64_t seed);

bool client_key_equal(const struct client_key *a, const struct client_key *b);
