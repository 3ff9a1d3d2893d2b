/*
 * h1_front.h - HTTP/1.1 toward clients: reads request heads strictly,
 * routes them, answers what portier answers itself (errors, redirects,
 * respond services) and streams the rest through an exchange, with
 * keep-alive, pipelining in order, chunked framing both ways, backpressure
 * and Upgrade tunnels.
 */
#pragma once

#include <stdbool.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "proxy/net/peer.h"
#include "proxy/worker.h"

struct h1_conn;

/* h1_conn_new: serve fd (accepted on a listener of `kind`). With ssl, the
 * TLS handshake is already complete and sni is the name the client asked
 * for. Takes ownership of fd and ssl; on failure both are closed. */
struct h1_conn *h1_conn_new(struct worker *w, int fd, SSL *ssl, const char *sni,
			    const struct conn_origin *o, enum listener_kind kind);

/* h1_conn_routes_changed: the worker has a new table; a connection whose
 * last host no longer routes closes (now if idle, else after its request). */
void h1_conn_routes_changed(struct h1_conn *c);

/* h1_conn_drain: finish the current request, then close; close now if idle. */
void h1_conn_drain(struct h1_conn *c);

/* h1_conn_close_now: free it as it stands (after a forced stop). */
void h1_conn_close_now(struct h1_conn *c);
/* h1_spares_free: the ended transactions w keeps for reuse (at worker_join). */
void h1_spares_free(struct worker *w);

/* h1_conn_next: the next connection in the worker's list. */
struct h1_conn *h1_conn_next(const struct h1_conn *c);
