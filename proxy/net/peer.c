#include "proxy/net/peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/edge.h"

/* peer_format_ip: IPv4-mapped IPv6 as IPv4, "unknown" for other families. */
static void peer_format_ip(const struct sockaddr *sa, char *out, size_t cap)
{
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], out, (socklen_t)cap);
		else
			inet_ntop(AF_INET6, &s6->sin6_addr, out, (socklen_t)cap);
	} else if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
	} else {
		snprintf(out, cap, "unknown");
	}
}

static uint16_t peer_local_port(int fd)
{
	struct sockaddr_storage local;
	socklen_t len = sizeof local;
	if (getsockname(fd, (struct sockaddr *)&local, &len) != 0)
		return 0;
	return ntohs(local.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&local)->sin6_port
						 : ((struct sockaddr_in *)&local)->sin_port);
}

static char peer_no_sni[1]; /* "", shared, never freed */

void conn_peer_init(struct conn_peer *p, struct edge *e, int fd, const struct sockaddr *sa,
		    socklen_t len, SSL *ssl, const char *sni)
{
	memset(p, 0, sizeof *p);
	p->sni = peer_no_sni;
	memcpy(&p->addr, sa, len < sizeof p->addr ? len : sizeof p->addr);
	peer_format_ip(&p->addr.sa, p->ip, sizeof p->ip);
	p->trusted = edge_is_trusted_proxy(e, sa);
	p->local_port = peer_local_port(fd);
	if (ssl) {
		p->tls = true;
		p->tls_version = SSL_get_version(ssl);
		if (sni && *sni && !(p->sni = strdup(sni)))
			p->sni = peer_no_sni; /* out of memory: as if no SNI was sent */
	}
}

void conn_peer_clear(struct conn_peer *p)
{
	if (p->sni != peer_no_sni)
		free(p->sni);
	p->sni = peer_no_sni;
}
