/*
 * proxy_accept.h - accepted connections on a listener with proxy_protocol:
 * only peers in trusted_proxies may speak, and must start with a PROXY
 * header (proxy_proto.h) within timeouts.client_header. The header is read
 * from the raw socket without taking a byte of the client's; then the
 * connection goes on as on any listener, with the client's address.
 */
#pragma once

#include <sys/socket.h>

#include "proxy/net/peer.h"
#include "proxy/worker.h"

struct proxy_accept;

/* proxy_accept_start: fd (ownership taken) was accepted from peer on a
 * listener of kind with proxy_protocol on. An untrusted peer is closed at
 * once; a trusted one waits, counted and listed in w->pp_waiting, for its
 * header, then goes to tls_conn_accept or h1_conn_new. A bad, missing or
 * late header closes the connection. */
void proxy_accept_start(struct worker *w, int fd, const struct conn_origin *o,
			enum listener_kind kind);

/* proxy_accept_drain: close every connection still waiting for its header. */
void proxy_accept_drain(struct worker *w);
