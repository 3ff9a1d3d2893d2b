/*
 * peer.h - what a front knows about an accepted connection's ends: the
 * client's address (as text too), the local port it reached, whether the
 * address is a trusted proxy, and its TLS version and SNI. Both fronts keep
 * one and copy it into each request.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

struct edge;

struct conn_peer {
	struct sockaddr_storage addr;
	char ip[48];
	uint16_t local_port;
	bool trusted;            /* addr is in trusted_proxies */
	bool tls;
	const char *tls_version; /* "TLSv1.3", NULL on plain HTTP */
	char sni[256];           /* "" without TLS or SNI */
};

/* conn_peer_init: p for socket fd accepted from sa (the PROXY header's
 * source when there was one); ssl is the finished handshake, or NULL. */
void conn_peer_init(struct conn_peer *p, struct edge *e, int fd, const struct sockaddr *sa,
		    socklen_t len, SSL *ssl, const char *sni);
