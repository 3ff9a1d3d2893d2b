/*
 * peer.h - what a front knows about an accepted connection's ends: the
 * client's address (as text too), the local port it reached, whether the
 * address is a trusted proxy, and its TLS version and SNI. Both fronts keep
 * one and copy it into each request.
 */
#pragma once

#include <stdbool.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

struct edge;

/* Every idle connection keeps its peer, so it is kept small: an address
 * union of 28 bytes where a sockaddr_storage takes 128, and the SNI as
 * long as it is rather than in 256 bytes. */
union peer_addr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

/* conn_origin: what the accept knows of a connection: the client's address
 * (the PROXY header's source when there was one) and the port it reached,
 * the listener's (an accepted socket has its listener's port, so no
 * getsockname per connection). */
struct conn_origin {
	struct sockaddr_storage addr;
	socklen_t len;
	uint16_t local_port;
};

/* conn_origin_set: o for address sa (len bytes, cut to addr's size). */
void conn_origin_set(struct conn_origin *o, const struct sockaddr *sa, socklen_t len,
		     uint16_t local_port);

struct conn_peer {
	union peer_addr addr;    /* other families (none expected) are cut */
	char ip[48];
	uint16_t local_port;
	bool trusted;            /* addr is in trusted_proxies */
	bool tls;
	const char *tls_version; /* "TLSv1.3", NULL on plain HTTP */
	char *sni;               /* "" without TLS or SNI; else owned (conn_peer_clear) */
};

/* conn_peer_init: p for a connection from o; ssl is the finished
 * handshake, or NULL. */
void conn_peer_init(struct conn_peer *p, struct edge *e, const struct conn_origin *o, SSL *ssl,
		    const char *sni);
/* conn_peer_origin: the origin p was made from (its address as kept). */
void conn_peer_origin(const struct conn_peer *p, struct conn_origin *o);
/* conn_peer_clear: free what p owns. */
void conn_peer_clear(struct conn_peer *p);
