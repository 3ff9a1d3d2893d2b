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

static char peer_no_sni[1]; /* "", shared, never freed */

void conn_origin_set(struct conn_origin *o, const struct sockaddr *sa, socklen_t len,
		     uint16_t local_port)
{
	memset(o, 0, sizeof *o);
	o->len = len < sizeof o->addr ? len : sizeof o->addr;
	memcpy(&o->addr, sa, o->len);
	o->local_port = local_port;
}

void conn_peer_init(struct conn_peer *p, struct edge *e, const struct conn_origin *o, SSL *ssl,
		    const char *sni)
{
	memset(p, 0, sizeof *p);
	p->sni = peer_no_sni;
	memcpy(&p->addr, &o->addr, o->len < sizeof p->addr ? o->len : sizeof p->addr);
	peer_format_ip(&p->addr.sa, p->ip, sizeof p->ip);
	p->trusted = edge_is_trusted_proxy(e, (const struct sockaddr *)&o->addr);
	p->local_port = o->local_port;
	if (ssl) {
		p->tls = true;
		p->tls_version = SSL_get_version(ssl);
		if (sni && *sni && !(p->sni = strdup(sni)))
			p->sni = peer_no_sni; /* out of memory: as if no SNI was sent */
	}
}

void conn_peer_origin(const struct conn_peer *p, struct conn_origin *o)
{
	conn_origin_set(o, &p->addr.sa, sizeof p->addr, p->local_port);
}

void conn_peer_clear(struct conn_peer *p)
{
	if (p->sni != peer_no_sni)
		free(p->sni);
	p->sni = peer_no_sni;
}
