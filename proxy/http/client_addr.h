/*
 * client_addr.h - the client a per-client limit counts: the socket peer,
 * or, when the peer is a trusted proxy, the nearest address its forwarding
 * headers report that is not a trusted proxy itself. A peer outside
 * trusted_proxies cannot choose its key by sending X-Forwarded-For.
 */
#pragma once

#include <stdint.h>

#include "proxy/http/req.h"
#include "proxy/limit/client_key.h"

struct edge;

/* client_addr_key: the key for r, IPv6 cut to prefix bits. -1 when even the
 * peer's address has no key (not IP). */
int client_addr_key(const struct req *r, const struct edge *e, uint8_t prefix,
		    struct client_key *k);
