/*
 * h2_front.h - HTTP/2 toward clients (nghttp2): ALPN "h2" on TLS, and
 * prior knowledge on the plain listener when http2.h2c is on. Each stream
 * becomes the same protocol-neutral request the h1 front makes, through
 * the same dispatcher, limits, exchange, headers and access log.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "proxy/net/conn_io.h"
#include "proxy/net/peer.h"
#include "proxy/worker.h"

struct h2_conn;

/* h2_conn_new: serve fd, whose TLS handshake (ssl) chose "h2". Takes
 * ownership of fd and ssl; on failure both are closed. */
struct h2_conn *h2_conn_new(struct worker *w, int fd, SSL *ssl, const char *sni,
			    const struct conn_origin *o);

/* h2_conn_adopt: take over a plain connection (h2c with prior knowledge)
 * whose input starts with the client preface. Takes io; frees it on failure. */
struct h2_conn *h2_conn_adopt(struct worker *w, struct conn_io *io, const struct conn_origin *o);

/* h2_preface_prefix: whether p[0..n) is a prefix of the client preface
 * (n of at least 1), or the whole of it (then followed by frames). */
bool h2_preface_prefix(const char *p, size_t n);

/* h2_conn_routes_changed: the worker has a new table; a connection whose
 * tenant no longer routes says GOAWAY and closes once its streams end. */
void h2_conn_routes_changed(struct h2_conn *c);

/* h2_conn_drain: GOAWAY, finish the open streams, then close. */
void h2_conn_drain(struct h2_conn *c);

/* h2_conn_close_now: free it as it stands (after a forced stop). */
void h2_conn_close_now(struct h2_conn *c);
/* h2_spares_free: the freed streams w keeps for reuse (at worker_join). */
void h2_spares_free(struct worker *w);

/* h2_conn_next: the next connection in the worker's list. */
struct h2_conn *h2_conn_next(const struct h2_conn *c);
