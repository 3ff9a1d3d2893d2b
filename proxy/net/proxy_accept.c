/*
 * proxy_accept.c - the wait for a PROXY header on a listener that asks for
 * one. The header is peeked, never over-read: a valid prefix is entirely
 * header (pp_parse), so it is taken off the socket at once (which keeps a
 * level-triggered read event from spinning), and when the header is whole
 * exactly its remaining bytes are taken. The client's first byte stays in
 * the socket for the TLS handshake or the HTTP front.
 */
#include "proxy/net/proxy_accept.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "proxy/core/log.h"
#include "proxy/edge.h"
#include "proxy/http/h1_front.h"
#include "proxy/net/proxy_proto.h"
#include "proxy/tls/tls_conn.h"

struct proxy_accept {
	struct proxy_accept *next, *prev; /* the worker's pp_waiting */
	struct worker *w;
	int fd;
	enum listener_kind kind;
	struct event *io;       /* fd readable */
	struct event *deadline; /* the header must be whole by client_header */
	struct conn_origin proxy; /* the proxy's address */
	size_t have;                  /* header bytes taken off the socket into buf */
	uint8_t buf[PP_HEADER_MAX];
};

/* proxy_accept_addr: sa's address as text, for logs. */
static const char *proxy_accept_addr(const struct sockaddr *sa, char *buf, size_t cap)
{
	const void *addr = sa->sa_family == AF_INET6
				   ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
				   : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
	if ((sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
	    !inet_ntop(sa->sa_family, addr, buf, (socklen_t)cap))
		snprintf(buf, cap, "unknown");
	return buf;
}

/* proxy_accept_release: unlink and free a; its fd is left alone. */
static void proxy_accept_release(struct proxy_accept *a)
{
	struct worker *w = a->w;
	if (a->prev)
		a->prev->next = a->next;
	else
		w->pp_waiting = a->next;
	if (a->next)
		a->next->prev = a->prev;
	if (a->io)
		event_free(a->io);
	if (a->deadline)
		event_free(a->deadline);
	free(a);
	worker_conn_removed(w);
}

/* proxy_accept_close: the one close path before the header is through. */
static void proxy_accept_close(struct proxy_accept *a, const char *why)
{
	char ip[INET6_ADDRSTRLEN];
	struct worker *w = a->w;
	log_debug("proxy protocol: peer %s closed: %s",
		  proxy_accept_addr((struct sockaddr *)&a->proxy.addr, ip, sizeof ip), why);
	close(a->fd);
	proxy_accept_release(a);
	worker_maybe_finish(w);
}

/* proxy_accept_take: move the next n bytes (already peeked) off the
 * socket into buf. */
static int proxy_accept_take(struct proxy_accept *a, size_t n)
{
	if (n == 0)
		return 0;
	if (n > sizeof a->buf - a->have ||
	    recv(a->fd, a->buf + a->have, n, 0) != (ssize_t)n)
		return -1;
	a->have += n;
	return 0;
}

/* proxy_accept_dst_port: the port the client reached on the proxy (so
 * X-Forwarded-Port names it, not ours), or keep when the header has none. */
static uint16_t proxy_accept_dst_port(const struct pp_header *h, uint16_t keep)
{
	if (h->dst.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&h->dst)->sin_port);
	if (h->dst.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&h->dst)->sin6_port);
	return keep;
}

/* proxy_accept_done: hand the connection on as the listener would have,
 * under the client's address (or the proxy's, for a local header). */
static void proxy_accept_done(struct proxy_accept *a, const struct pp_header *h)
{
	struct worker *w = a->w;
	int fd = a->fd;
	enum listener_kind kind = a->kind;
	struct conn_origin o = a->proxy;
	if (!h->local)
		conn_origin_set(&o, (const struct sockaddr *)&h->src, h->src_len,
				proxy_accept_dst_port(h, a->proxy.local_port));
	char from[INET6_ADDRSTRLEN], to[INET6_ADDRSTRLEN];

	log_debug("proxy protocol: peer %s speaks for %s",
		  proxy_accept_addr((struct sockaddr *)&a->proxy.addr, from, sizeof from),
		  h->local ? "itself" : proxy_accept_addr((struct sockaddr *)&o.addr, to, sizeof to));
	proxy_accept_release(a); /* the next stage counts the connection again */
	if (kind == LISTENER_HTTPS)
		tls_conn_accept(w, fd, &o);
	else
		h1_conn_new(w, fd, NULL, NULL, &o, LISTENER_HTTP);
}

static void proxy_accept_io(evutil_socket_t fd, short what, void *arg)
{
	struct proxy_accept *a = arg;
	struct pp_header h;
	const char *why = "malformed PROXY header";
	(void)what;

	ssize_t n = recv(fd, a->buf + a->have, sizeof a->buf - a->have, MSG_PEEK);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			proxy_accept_close(a, "receive failed");
		return;
	}
	if (n == 0) {
		proxy_accept_close(a, "closed before a PROXY header");
		return;
	}
	switch (pp_parse(a->buf, a->have + (size_t)n, &h, &why)) {
	case PP_NEED_MORE:
		if (proxy_accept_take(a, (size_t)n) < 0)
			proxy_accept_close(a, "receive failed");
		return;
	case PP_DONE:
		if (proxy_accept_take(a, h.consumed - a->have) < 0) {
			proxy_accept_close(a, "receive failed");
			return;
		}
		proxy_accept_done(a, &h);
		return;
	case PP_ERROR:
		proxy_accept_close(a, why);
		return;
	}
}

static void proxy_accept_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	proxy_accept_close(arg, "no PROXY header within timeouts.client_header");
}

void proxy_accept_start(struct worker *w, int fd, const struct conn_origin *o,
			enum listener_kind kind)
{
	char ip[INET6_ADDRSTRLEN];

	/* Anyone else could claim any address: not a byte is read from them. */
	const struct sockaddr *peer = (const struct sockaddr *)&o->addr;
	if (!edge_is_trusted_proxy(w->edge, peer)) {
		log_debug("proxy protocol: peer %s closed: not in trusted_proxies",
			  proxy_accept_addr(peer, ip, sizeof ip));
		close(fd);
		return;
	}
	struct proxy_accept *a = calloc(1, sizeof *a);
	if (!a) {
		close(fd);
		return;
	}
	a->w = w;
	a->fd = fd;
	a->kind = kind;
	a->proxy = *o;
	a->next = w->pp_waiting;
	if (w->pp_waiting)
		w->pp_waiting->prev = a;
	w->pp_waiting = a;
	worker_conn_added(w);
	a->io = event_new(w->base, fd, EV_READ | EV_PERSIST, proxy_accept_io, a);
	a->deadline = evtimer_new(w->base, proxy_accept_timeout, a);
	if (!a->io || !a->deadline) {
		proxy_accept_close(a, "out of memory");
		return;
	}
	uint64_t ms = w->cfg->timeouts_ms.client_header;
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
			     .tv_usec = (suseconds_t)(ms % 1000) * 1000};
	evtimer_add(a->deadline, &tv);
	event_add(a->io, NULL);
}

void proxy_accept_drain(struct worker *w)
{
	while (w->pp_waiting)
		proxy_accept_close(w->pp_waiting, "shutting down");
}
